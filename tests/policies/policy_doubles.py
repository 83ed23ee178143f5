"""Policies for the runner, loader and server tests (registered in the policy registry on import).

* ``test_scripted``: deterministic chunks whose actions encode which observation tick and chunk
  index they belong to, with an optional delay; instructions make it misbehave on purpose
  ("crash" segfaults the process it runs in, "hang" never answers, "fail" raises).
* ``test_tiny_torch``: a small torch model that loads from a native checkpoint directory.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.config import option
from vla_studio.core.types import Feature, Observation
from vla_studio.policies.base import ActionChunk, Policy, PolicyConfig, PolicySpec
from vla_studio.policies.native import NativeCheckpoint, build_config
from vla_studio.policies.registry import POLICIES

SCRIPTED = "test_scripted"
# Ends a "hang" in this process (an in-process test lets its stuck thread go); a child never sees it.
HANG_RELEASE = threading.Event()
TINY_TORCH = "test_tiny_torch"


@dataclass(frozen=True)
class ScriptedConfig(PolicyConfig):
    chunk: int = option(8, min=1)
    delay_s: float = option(0.0, min=0.0)
    rate_hz: float = option(20.0)
    cameras: tuple[str, ...] = option(())
    state_keys: tuple[str, ...] = option(("ee_pos",))
    confidence: float = option(-1.0, help="< 0: no confidence in the chunk")
    action_kind: str = option("ee_delta")


class ScriptedPolicy(Policy):
    """Action ``i`` of the chunk for observation tick ``k`` is ``[k * 1e-4 + i * 1e-6, 0, ..., 1]``
    in x, so a test can read which chunk and index reached the robot; the gripper stays open."""

    config_class = ScriptedConfig
    config: ScriptedConfig

    def __init__(self, config: ScriptedConfig | None = None) -> None:
        super().__init__(config or ScriptedConfig(name=SCRIPTED))
        self.instruction = ""
        self.resets = 0
        self.calls = 0

    @property
    def spec(self) -> PolicySpec:
        c = self.config
        space = (ActionSpace.ee_delta() if c.action_kind == "ee_delta"
                 else ActionSpace.joint_position(tuple(f"j{i}" for i in range(6))))
        return PolicySpec(tuple(c.cameras), (32, 32),
                          {k: Feature("float32", (3,) if k == "ee_pos" else (1,)) for k in c.state_keys},
                          space, c.rate_hz, c.chunk)

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.resets += 1

    def infer(self, observation: Observation) -> ActionChunk:
        t0 = time.monotonic()
        self.calls += 1
        if self.instruction == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.instruction == "hang":
            HANG_RELEASE.wait()
        if self.instruction == "fail":
            raise RuntimeError("scripted failure")
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        c = self.config
        actions = np.zeros((c.chunk, self.spec.action_space.dim))
        actions[:, 0] = observation.tick * 1e-4 + np.arange(c.chunk) * 1e-6
        actions[:, -1] = 1.0
        conf = np.full(c.chunk, c.confidence) if c.confidence >= 0 else None
        return ActionChunk(actions, conf, observation.t, t0, time.monotonic())


def decode_action(action: np.ndarray) -> tuple[int, int]:
    """(observation tick, chunk index) of an action made by :class:`ScriptedPolicy`."""
    x = float(action[0])
    tick = int(np.floor(x * 1e4 + 1e-6))
    return tick, int(round((x - tick * 1e-4) * 1e6))


@dataclass(frozen=True)
class TinyTorchConfig(PolicyConfig):
    hidden: int = option(16, min=1)
    chunk: int = option(4, min=1)


class TinyTorchPolicy(Policy):
    """state [ee_pos, gripper] -> MLP -> chunk of ee_delta actions, de-standardised."""

    config_class = TinyTorchConfig
    config: TinyTorchConfig

    def __init__(self, config: TinyTorchConfig, checkpoint: NativeCheckpoint | None = None) -> None:
        super().__init__(config)
        self.checkpoint = checkpoint
        self.module = None

    @classmethod
    def from_native(cls, checkpoint: NativeCheckpoint) -> "TinyTorchPolicy":
        return cls(build_config(TinyTorchConfig, checkpoint), checkpoint)

    @staticmethod
    def build(config: TinyTorchConfig):
        import torch

        return torch.nn.Sequential(torch.nn.Linear(4, config.hidden), torch.nn.Tanh(),
                                   torch.nn.Linear(config.hidden, config.chunk * 7))

    @property
    def spec(self) -> PolicySpec:
        norm = self.checkpoint.flat_normalization() if self.checkpoint else {}
        return PolicySpec((), (0, 0), {"ee_pos": Feature("float32", (3,)),
                                       "gripper": Feature("float32", (1,))},
                          ActionSpace.ee_delta(), 20.0, self.config.chunk, norm)

    def load(self) -> None:
        self.module = self.build(self.config)
        self.module.load_state_dict(self.checkpoint.tensors())

    def reset(self, instruction: str) -> None:
        pass

    def infer(self, observation: Observation) -> ActionChunk:
        import torch

        t0 = time.monotonic()
        x = np.concatenate([observation.state["ee_pos"], observation.state["gripper"]]).astype(np.float32)
        with torch.no_grad():
            out = self.module(torch.from_numpy(x)[None]).numpy().reshape(self.config.chunk, 7)
        stats = self.checkpoint.normalization.get("action", {})
        out = out * stats.get("std", 1.0) + stats.get("mean", 0.0)
        return ActionChunk(out.astype(np.float64), None, observation.t, t0, time.monotonic())


def write_tiny_torch(directory: Path, *, seed: int = 0, pt: bool = False) -> Path:
    """A native checkpoint of :class:`TinyTorchPolicy` (or ``tiny.pt`` + ``tiny.json`` with
    ``pt=True``); returns what to load."""
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = TinyTorchConfig(name="tiny")
    state = {k: v.contiguous() for k, v in TinyTorchPolicy.build(config).state_dict().items()}
    table = {"policy_type": TINY_TORCH, "config": {"hidden": 16, "chunk": 4}}
    (directory / "normalization.json").write_text(json.dumps(
        {"action": {"mean": [0, 0, 0, 0, 0, 0, 1.0], "std": [0.01] * 6 + [0.0]}}))
    if pt:
        torch.save(state, directory / "tiny.pt")
        (directory / "tiny.json").write_text(json.dumps(table))
        return directory / "tiny.pt"
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(table))
    return directory


POLICIES.register(SCRIPTED, "tests.policies.policy_doubles:ScriptedPolicy")
POLICIES.register(TINY_TORCH, "tests.policies.policy_doubles:TinyTorchPolicy")
