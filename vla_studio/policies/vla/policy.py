"""The reference VLA behind the :class:`~vla_studio.policies.base.Policy` protocol.

``load()`` reads a native checkpoint directory (see :mod:`vla_studio.policies.vla.checkpoint`);
``reset(instruction)`` encodes the instruction once; ``infer(observation)`` resizes each camera's
latest frame, normalises the state and returns the next H actions with a per-step confidence:
the probability the model gave the tokens it chose (the geometric mean over the action
dimensions, so it reads on the same 0..1 scale whatever the action size).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.config import option
from vla_studio.core.types import Feature, Observation
from vla_studio.policies.base import ActionChunk, Policy, PolicyConfig, PolicySpec
from vla_studio.policies.vla import checkpoint
from vla_studio.policies.vla.checkpoint import Checkpoint, CheckpointError
from vla_studio.policies.vla.episodes import resize_rgb
from vla_studio.policies.vla.model import ModelConfig, VLANet
from vla_studio.policies.vla.normalization import ActionBins, StateStats
from vla_studio.policies.vla.tokenizer import WordTokenizer

log = logging.getLogger(__name__)
CONFIDENCE_METHOD = "token_probability"
# PLATFORM.md: under CPU contention two OpenMP threads can run 20x slower than one, and the
# policy shares the machine with the control loop, the cameras and the GUI.
INFERENCE_THREADS = 1


@dataclass(frozen=True)
class VLAPolicyConfig(PolicyConfig):
    """Settings of the reference VLA policy."""

    checkpoint: str = option("", help="checkpoint directory, or a training run directory (uses best/)")
    device: str = option("cpu", help="torch device: cpu, cuda, cuda:N or auto")
    threads: int = option(INFERENCE_THREADS, min=0, help="torch CPU threads (0: leave torch's setting)")


def spec_from_json(spec: Mapping[str, Any]) -> PolicySpec:
    """A :class:`PolicySpec` from the ``spec`` section of ``config.json`` (normalisation added
    by the caller)."""
    action = spec["action_space"]
    kind, names = str(action["kind"]), tuple(action["names"])
    space = ActionSpace.ee_delta() if kind == "ee_delta" else ActionSpace(kind, names)
    state = {k: Feature(str(v.get("dtype", "float32")), tuple(int(s) for s in v["shape"]),
                        tuple(v["names"]) if v.get("names") else None)
             for k, v in dict(spec["state_features"]).items()}
    h, w = (int(v) for v in spec["image_size"])
    return PolicySpec(cameras=tuple(spec["cameras"]), image_size=(h, w), state_features=state,
                      action_space=space, control_rate_hz=float(spec["control_rate_hz"]),
                      chunk_size=int(spec["chunk_size"]))


class VLAPolicy(Policy):
    """The reference VLA policy (kind ``vla``).

    Args:
        config: where the checkpoint is and how to run it.
    """

    config_class = VLAPolicyConfig
    config: VLAPolicyConfig

    def __init__(self, config: VLAPolicyConfig | None = None) -> None:
        super().__init__(config or VLAPolicyConfig(name="vla"))
        self._ckpt: Checkpoint | None = None
        self._spec: PolicySpec | None = None
        self._net: VLANet | None = None
        self._device = torch.device("cpu")
        self._language: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.instruction = ""
        self.unknown_words: list[str] = []

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, config: VLAPolicyConfig | None = None) -> "VLAPolicy":
        """A loaded policy from an in-memory checkpoint (tests, ``untrained_policy``)."""
        policy = cls(config or VLAPolicyConfig(name="vla", checkpoint=str(ckpt.path)))
        policy._activate(ckpt)
        return policy

    @classmethod
    def from_native(cls, native) -> "VLAPolicy":
        """The policy of a checkpoint directory found by the generic loader (the policy panel,
        the child process, ``vla-studio serve``); :meth:`load` verifies and reads it."""
        return cls(VLAPolicyConfig(name="vla", checkpoint=str(native.path)))

    @property
    def checkpoint(self) -> Checkpoint:
        """The loaded checkpoint (:func:`vla_studio.policies.vla.checkpoint.write` saves it)."""
        return self._require()[1]

    # ----- protocol -----------------------------------------------------------------------
    @property
    def spec(self) -> PolicySpec:
        """The checkpoint's spec; before :meth:`load` it is read from ``config.json`` alone."""
        if self._spec is None:
            if not self.config.checkpoint:
                raise CheckpointError("no checkpoint given: set the policy's 'checkpoint' to a "
                                      "directory written by `vla-studio train`")
            root = checkpoint.resolve(self.config.checkpoint)
            config = checkpoint.read_json(root / checkpoint.CONFIG)
            try:
                self._spec = spec_from_json(config["spec"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"{root / checkpoint.CONFIG}: bad spec section ({exc})") from None
        return self._spec

    def load(self) -> None:
        """Read, verify and load the checkpoint. Raises CheckpointError (a ValueError)."""
        if not self.config.checkpoint:
            raise CheckpointError("no checkpoint given: set the policy's 'checkpoint' to a "
                                  "directory written by `vla-studio train`")
        self._activate(checkpoint.load(self.config.checkpoint))

    def reset(self, instruction: str) -> None:
        net, ckpt = self._require()
        self.instruction = instruction
        self.unknown_words = ckpt.tokenizer.unknown_words(instruction)
        if self.unknown_words:
            log.warning("instruction %r has words the policy never saw in training: %s",
                        instruction, ", ".join(self.unknown_words))
        ids = torch.from_numpy(ckpt.tokenizer.encode(instruction)).unsqueeze(0).to(self._device)
        with torch.inference_mode():
            self._language = net.encode_instruction(ids)

    def infer(self, observation: Observation) -> ActionChunk:
        t0 = time.monotonic()
        net, ckpt = self._require()
        if self._language is None:
            raise RuntimeError("call reset(instruction) before infer()")
        images = torch.from_numpy(self.prepare_images(observation)).to(self._device)
        state = torch.from_numpy(self.prepare_state(observation)).to(self._device)
        with torch.inference_mode():
            logits = net(images.float().div_(255.0), state, language=self._language)[0]
            probs = torch.softmax(logits, dim=-1)  # [H, D, bins]
            p, tokens = probs.max(dim=-1)
        p_np = p.cpu().numpy().astype(np.float64)
        actions = ckpt.actions.from_tokens(tokens.cpu().numpy())
        confidence = np.exp(np.log(np.maximum(p_np, 1e-12)).mean(axis=1))
        return ActionChunk(actions, confidence, observation.t, t0, time.monotonic(),
                           extras={"token_probability": p_np,
                                   "confidence_method": CONFIDENCE_METHOD})

    def close(self) -> None:
        self._net = None
        self._language = None

    # ----- helpers --------------------------------------------------------------------------
    def prepare_images(self, observation: Observation) -> np.ndarray:
        """``[1, C, 3, h, w]`` uint8 of the spec's cameras (raises ValueError on a missing one)."""
        spec = self.spec
        out = np.empty((1, len(spec.cameras), 3, *spec.image_size), np.uint8)
        for i, cam in enumerate(spec.cameras):
            frame = observation.frames.get(cam)
            if frame is None or frame.color is None:
                raise ValueError(f"the policy needs a colour frame from camera {cam!r}; the "
                                 f"observation has {', '.join(observation.frames) or 'no camera'}")
            out[0, i] = resize_rgb(frame.color, spec.image_size).transpose(2, 0, 1)
        return out

    def prepare_state(self, observation: Observation) -> np.ndarray:
        """``[1, S]`` float32 normalised state (raises ValueError on a missing feature)."""
        _, ckpt = self._require()
        parts = []
        for key in ckpt.state.keys:
            if key not in observation.state:
                raise ValueError(f"the policy needs state feature {key!r}; the observation has "
                                 f"{', '.join(observation.state) or 'none'}")
            parts.append(np.asarray(observation.state[key], np.float64).reshape(-1))
        flat = np.concatenate(parts) if parts else np.zeros(0)
        return ckpt.state.normalize(flat).astype(np.float32).reshape(1, -1)

    def _activate(self, ckpt: Checkpoint) -> None:
        try:
            spec = spec_from_json(ckpt.spec)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.path / checkpoint.CONFIG}: bad spec section ({exc})") from None
        if self.config.threads > 0:
            torch.set_num_threads(self.config.threads)
        net = VLANet(ckpt.model)
        checkpoint.check_weights(ckpt.path, net.state_dict(), ckpt.weights)
        net.load_state_dict(ckpt.weights)
        self._device = _device(self.config.device)
        net.to(self._device).eval()
        normalization = {"action_q01": ckpt.actions.q01, "action_q99": ckpt.actions.q99,
                         "action_bins": np.asarray(ckpt.actions.bins),
                         "state_mean": ckpt.state.mean, "state_std": ckpt.state.std}
        self._spec = PolicySpec(spec.cameras, spec.image_size, spec.state_features,
                                spec.action_space, spec.control_rate_hz, spec.chunk_size,
                                normalization)
        self._ckpt, self._net, self._language = ckpt, net, None

    def _require(self) -> tuple[VLANet, Checkpoint]:
        if self._net is None or self._ckpt is None:
            raise RuntimeError("the policy is not loaded: call load() first")
        return self._net, self._ckpt


def _device(wanted: str) -> torch.device:
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(wanted)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(f"device {wanted}: no CUDA GPU is available; use cpu")
    return device


# The default station's layout: what an untrained policy of the reference architecture reads.
DEFAULT_CAMERAS = ("front", "wrist")
DEFAULT_STATE = {"ee_pos": (3,), "ee_quat": (4,), "gripper": (1,)}
DEFAULT_RATE_HZ = 20.0
# The simulated station's cube colours (vla_studio.sim.scene.COLOURS; not imported, so the policy
# package does not pull in MuJoCo).
DEFAULT_COLOURS = ("red", "green", "blue", "yellow")


def untrained_policy(seed: int = 0, model: ModelConfig | None = None) -> VLAPolicy:
    """A freshly initialised reference VLA for the default simulated station (for trying the
    policy protocol and for benchmarks; its actions are meaningless but bounded)."""
    words = [f"pick up the {c} cube" for c in DEFAULT_COLOURS] + \
        [f"put the {c} cube in the bowl" for c in DEFAULT_COLOURS]
    tokenizer = WordTokenizer.build(words, (model or ModelConfig()).max_tokens)
    state_dim = sum(int(np.prod(s)) for s in DEFAULT_STATE.values())
    cfg = ModelConfig(**{**(model or ModelConfig()).to_json(), "num_cameras": len(DEFAULT_CAMERAS),
                         "state_dim": state_dim, "action_dim": 7, "vocab_size": tokenizer.size})
    torch.manual_seed(seed)
    net = VLANet(cfg)
    # Half of the station's per-step translation/rotation caps, gripper 0..1.
    q99 = np.array([0.01, 0.01, 0.01, 0.075, 0.075, 0.075, 1.0])
    q01 = np.concatenate([-q99[:6], [0.0]])
    state = StateStats(tuple(DEFAULT_STATE), tuple(int(np.prod(s)) for s in DEFAULT_STATE.values()),
                       np.zeros(state_dim), np.ones(state_dim))
    spec = {"cameras": list(DEFAULT_CAMERAS), "image_size": list(cfg.image_size),
            "state_features": {k: {"dtype": "float32", "shape": list(s), "names": None}
                               for k, s in DEFAULT_STATE.items()},
            "action_space": {"kind": "ee_delta", "names": list(ActionSpace.ee_delta().names)},
            "control_rate_hz": DEFAULT_RATE_HZ, "chunk_size": cfg.chunk_size}
    ckpt = Checkpoint(Path("untrained"), cfg, spec, tokenizer, ActionBins(q01, q99, cfg.bins),
                      state, net.state_dict(), {"untrained": True, "seed": seed})
    return VLAPolicy.from_checkpoint(ckpt, VLAPolicyConfig(name="vla (untrained)", checkpoint=""))
