"""A small convolutional chunking policy: the built-in torch policy benchmarks and demos run.

It is a real model of realistic cost, not a trained one: a shared convolutional encoder per
camera, a state encoder and a hashed bag-of-words instruction embedding feed an MLP head that
outputs a chunk of ``chunk_size`` actions (standardised; the action statistics of the checkpoint
turn them into robot units). :func:`write_small_conv` writes a freshly initialised one as a
native checkpoint, so ``vla-studio bench policy`` measures the whole path (native loader, child
process, wire protocol, chunk execution) without downloading anything.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vla_studio.core.action_space import EE_DELTA_NAMES, ActionSpace
from vla_studio.core.config import option
from vla_studio.core.types import Feature, Observation
from vla_studio.policies.base import ActionChunk, Policy, PolicyConfig, PolicySpec
from vla_studio.policies.errors import PolicyLoadError, one_line
from vla_studio.policies.native import (CONFIG_FILE, NORMALIZATION_FILE, TYPE_KEY, WEIGHTS_FILE,
                                        NativeCheckpoint, build_config)

if TYPE_CHECKING:
    import torch

POLICY_TYPE = "small_conv"
VOCAB = 1024


@dataclass(frozen=True)
class SmallConvConfig(PolicyConfig):
    cameras: tuple[str, ...] = option(("front", "wrist"), help="cameras read, in order")
    image_size: tuple[int, int] = option((224, 224), help="(height, width) images are resized to")
    state_keys: tuple[str, ...] = option(("ee_pos", "gripper"), help="robot state features read")
    state_dims: tuple[int, ...] = option((3, 1), help="values of each state feature")
    action_kind: str = option("ee_delta", choices=("ee_delta", "joint_position"))
    action_names: tuple[str, ...] = option(EE_DELTA_NAMES, help="action vector element names")
    control_rate_hz: float = option(20.0, min=1.0, help="the rate its chunks are timed for")
    chunk_size: int = option(10, min=1, max=200, help="actions per chunk")
    width: int = option(32, min=4, max=256, help="channels of the first conv layer")
    threads: int = option(1, min=1, max=64, help="torch threads (1: no contention with the loop)")


def _build_module(c: SmallConvConfig) -> "torch.nn.Module":
    import torch
    from torch import nn

    w = c.width

    class SmallConvNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            chans = [3, w, 2 * w, 4 * w, 8 * w, 8 * w]
            for a, b in zip(chans, chans[1:]):
                layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(8, b), nn.ReLU()]
            self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            feat = chans[-1]
            self.state = nn.Sequential(nn.Linear(max(1, sum(c.state_dims)), 128), nn.ReLU())
            self.words = nn.EmbeddingBag(VOCAB, 128, mode="mean")
            self.head = nn.Sequential(nn.Linear(feat * max(1, len(c.cameras)) + 256, 512),
                                      nn.ReLU(), nn.Linear(512, c.chunk_size * len(c.action_names)))

        def forward(self, images: torch.Tensor, state: torch.Tensor,
                    words: torch.Tensor) -> torch.Tensor:
            n = images.shape[0]  # images: [n_cams, 3, H, W]
            feats = self.encoder(images).reshape(1, -1) if n else images.new_zeros(1, 0)
            x = torch.cat([feats, self.state(state), self.words(words[None])], dim=1)
            return self.head(x).reshape(c.chunk_size, len(c.action_names))

    return SmallConvNet()


class SmallConvPolicy(Policy):
    """The built-in small torch policy (see the module docstring)."""

    config_class = SmallConvConfig
    config: SmallConvConfig

    def __init__(self, config: SmallConvConfig | None = None,
                 checkpoint: NativeCheckpoint | None = None) -> None:
        super().__init__(config or SmallConvConfig(name=POLICY_TYPE))
        self.checkpoint = checkpoint
        self._module: Any = None
        self._words: Any = None
        c = self.config
        if len(c.state_keys) != len(c.state_dims):
            raise PolicyLoadError(f"state_keys {list(c.state_keys)} and state_dims "
                                  f"{list(c.state_dims)} differ in length")
        space = (ActionSpace(c.action_kind, tuple(c.action_names)) if c.action_kind == "ee_delta"
                 else ActionSpace.joint_position(tuple(c.action_names[:-1])))
        norm = checkpoint.flat_normalization() if checkpoint else {}
        self._spec = PolicySpec(
            cameras=tuple(c.cameras), image_size=tuple(c.image_size),  # type: ignore[arg-type]
            state_features={k: Feature("float32", (d,)) for k, d in zip(c.state_keys, c.state_dims)},
            action_space=space, control_rate_hz=c.control_rate_hz, chunk_size=c.chunk_size,
            normalization=norm)
        self._act_mean = norm.get("action/mean", np.zeros(space.dim))
        self._act_std = norm.get("action/std", np.ones(space.dim))

    @classmethod
    def from_native(cls, checkpoint: NativeCheckpoint) -> "SmallConvPolicy":
        return cls(build_config(SmallConvConfig, checkpoint), checkpoint)

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def load(self) -> None:
        import torch

        torch.set_num_threads(self.config.threads)
        module = _build_module(self.config)
        if self.checkpoint is not None:
            try:
                module.load_state_dict(self.checkpoint.tensors(), strict=True)
            except RuntimeError as exc:  # missing/unexpected keys, wrong shapes
                raise PolicyLoadError(f"{self.checkpoint.path}: the weights do not match its "
                                      f"config ({one_line(exc)})") from None
        self._module = module.eval()
        self.reset("")

    def reset(self, instruction: str) -> None:
        import torch

        ids = [zlib.crc32(w.encode()) % VOCAB for w in instruction.lower().split()] or [0]
        self._words = torch.tensor(ids, dtype=torch.long)

    def infer(self, observation: Observation) -> ActionChunk:
        import torch

        if self._module is None:
            raise RuntimeError("SmallConvPolicy.infer before load()")
        t0 = time.monotonic()
        c = self.config
        imgs = [np.asarray(observation.frames[cam].color) for cam in c.cameras]  # type: ignore[union-attr]
        images = (torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0 if imgs
                  else torch.zeros(0, 3, *c.image_size))
        state = np.concatenate([np.asarray(observation.state[k], np.float32).reshape(-1)
                                for k in c.state_keys]) if c.state_keys else np.zeros(1, np.float32)
        with torch.inference_mode():
            out = self._module(images, torch.from_numpy(state)[None], self._words)
        actions = out.numpy().astype(np.float64) * self._act_std + self._act_mean
        return ActionChunk(actions, None, observation.t, t0, time.monotonic())


def write_small_conv(directory: str | Path, config: SmallConvConfig | None = None, *,
                     seed: int = 0, action_std: float = 0.002) -> Path:
    """Write a freshly initialised :class:`SmallConvPolicy` as a native checkpoint.

    ``action_std`` scales its (random) outputs: small steps, so a benchmark run stays well inside
    a workspace. The gripper keeps mean 1 (open).
    """
    import torch
    from safetensors.torch import save_file

    c = config or SmallConvConfig(name=POLICY_TYPE)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    module = _build_module(c)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()},
              str(directory / WEIGHTS_FILE))
    table = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(c).items()}
    (directory / CONFIG_FILE).write_text(json.dumps(
        {TYPE_KEY: POLICY_TYPE, "format_version": 1, "config": table}, indent=2))
    dim = len(c.action_names)
    mean = [0.0] * (dim - 1) + [1.0]
    std = [action_std] * (dim - 1) + [0.0]
    (directory / NORMALIZATION_FILE).write_text(json.dumps(
        {"action": {"mean": mean, "std": std}}, indent=2))
    return directory
