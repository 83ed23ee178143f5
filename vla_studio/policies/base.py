"""The policy protocol: what a VLA (or any policy) must provide to run in VLA Studio.

Policies see observations, never the robot. ``infer`` may take tens of milliseconds; the policy
runner calls it on its own inference thread and the control loop only ever reads finished chunks.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.config import option
from vla_studio.core.types import Feature, Observation

if TYPE_CHECKING:
    from vla_studio.policies.native import NativeCheckpoint


@dataclass(frozen=True)
class PolicyConfig:
    """Base config of policies (subclasses add checkpoint paths and options)."""

    name: str = option("", help="display name")


@dataclass(frozen=True)
class PolicySpec:
    """What a policy consumes and produces.

    Attributes:
        cameras: camera names it reads, in order.
        image_size: ``(height, width)`` it expects images resized to.
        state_features: state features it reads.
        action_space: the actions it outputs.
        control_rate_hz: the rate it was trained at.
        chunk_size: actions per chunk (H).
        normalization: statistics used to (de)normalize, as plain arrays.
    """

    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    state_features: Mapping[str, Feature]
    action_space: ActionSpace
    control_rate_hz: float
    chunk_size: int = 1
    normalization: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionChunk:
    """A policy's answer to one observation.

    Attributes:
        actions: ``[H, D]`` actions, first to execute first.
        confidence: ``[H]`` per-step confidence in [0, 1], or None when the policy has no notion.
        t_observation: tick time of the observation the chunk was computed from.
        t_start: host monotonic time inference started.
        t_end: host monotonic time inference finished.
        extras: anything else worth recording (token probabilities, samples...).
    """

    actions: np.ndarray
    confidence: np.ndarray | None
    t_observation: float
    t_start: float
    t_end: float
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.actions.ndim != 2:
            raise ValueError(f"actions must be [H, D], got shape {self.actions.shape}")
        if self.confidence is not None and self.confidence.shape != (self.actions.shape[0],):
            raise ValueError(f"confidence must be [H]={self.actions.shape[0]}, got {self.confidence.shape}")

    @property
    def latency_ms(self) -> float:
        return (self.t_end - self.t_start) * 1000.0


class Policy(abc.ABC):
    """Base class of policies. Construction does no heavy work; :meth:`load` does."""

    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config

    @property
    @abc.abstractmethod
    def spec(self) -> PolicySpec: ...

    @classmethod
    def from_native(cls, checkpoint: "NativeCheckpoint") -> "Policy":
        """Build this policy from a native checkpoint directory (``config.json`` naming this
        policy type, ``model.safetensors``, normalisation JSON); see
        :mod:`vla_studio.policies.native`. Construction stays light: the loader calls
        :meth:`load` next, which reads ``checkpoint.tensors()``.

        The default serves policies without weights: it builds :attr:`config_class` from the
        ``config`` table of ``config.json``. Policies with weights override it.
        """
        from vla_studio.policies.native import build_config  # keeps base.py free of I/O imports

        return cls(build_config(cls.config_class, checkpoint))

    def load(self) -> None:
        """Load weights (may take seconds). Raise ValueError with a clear message on bad files."""

    @abc.abstractmethod
    def reset(self, instruction: str) -> None:
        """Start a new episode with this language instruction."""

    @abc.abstractmethod
    def infer(self, observation: Observation) -> ActionChunk:
        """Compute an action chunk for ``observation`` (called on the inference thread)."""

    def close(self) -> None:
        """Release resources."""
