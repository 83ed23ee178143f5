"""Records that cross thread boundaries: features, frames, observations, steps.

Everything here is immutable once built (frozen dataclasses holding arrays that nobody writes to
after construction), so a Step can be handed to the recorder, the GUI snapshot and a policy at the
same time without copies or locks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


class SourceKind(str, enum.Enum):
    """Who chose the action a step sent to the robot."""

    HOLD = "hold"  # nothing eligible: the loop held position
    TELEOP = "teleop"
    POLICY = "policy"
    INTERVENTION = "intervention"  # a human took over during a policy run


@dataclass(frozen=True)
class Feature:
    """Schema of one array-valued feature, known before any device connects.

    Attributes:
        dtype: numpy dtype name, e.g. ``"float32"`` or ``"uint8"``.
        shape: static shape of one sample.
        names: optional per-element names for 1-D features (``("x", "y", "z")``).
        unit: physical unit, for display and metadata.
    """

    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        np.dtype(self.dtype)  # raises TypeError on a bad dtype name
        if self.names is not None and (len(self.shape) != 1 or len(self.names) != self.shape[0]):
            raise ValueError(f"names {self.names} do not match shape {self.shape}")


@dataclass(frozen=True)
class Frame:
    """One camera frame with honest timing.

    Attributes:
        camera: camera name from the station profile.
        index: sequence number assigned by the capture thread (gaps mean drops).
        t_capture: host ``time.monotonic()`` when the frame was received.
        color: ``HxWx3`` uint8 RGB, or None for a depth-only camera.
        depth: ``HxW`` uint16 depth in device units (see the camera's depth scale), or None.
        t_device: device timestamp in seconds when the device provides one.
    """

    camera: str
    index: int
    t_capture: float
    color: np.ndarray | None = None
    depth: np.ndarray | None = None
    t_device: float | None = None


@dataclass(frozen=True)
class Observation:
    """What the loop observed at one tick: robot state plus the latest frame of each camera."""

    tick: int
    t: float
    state: Mapping[str, np.ndarray]
    frames: Mapping[str, Frame | None] = field(default_factory=dict)


@dataclass(frozen=True)
class StageTiming:
    """Milliseconds spent in each stage of one control tick, plus the tick's start jitter."""

    observe_ms: float
    decide_ms: float
    filter_ms: float
    send_ms: float
    emit_ms: float
    jitter_ms: float

    @property
    def total_ms(self) -> float:
        return self.observe_ms + self.decide_ms + self.filter_ms + self.send_ms + self.emit_ms


@dataclass(frozen=True)
class Step:
    """One control tick, as recorded and displayed.

    Attributes:
        index: tick counter since the loop started.
        t: host monotonic time at the start of the tick.
        observation: what was observed before deciding.
        action: the action the robot actually received (after the safety filter), or the hold
            action when the loop held position; all NaN when nothing is known to have reached
            the robot (a driver error, or a driver stuck in an earlier call).
        requested: the action the source asked for before filtering (None when holding).
        source: who chose the action.
        safety_flags: bitwise OR of :class:`vla_studio.core.safety.SafetyFlag` raised this tick.
        hold_reason: why the loop held, empty when it did not.
        timing: per-stage timing of this tick.
        extras: source-specific arrays such as ``policy_action`` and ``confidence``.
    """

    index: int
    t: float
    observation: Observation
    action: np.ndarray
    requested: np.ndarray | None
    source: SourceKind
    safety_flags: int
    hold_reason: str
    timing: StageTiming
    extras: Mapping[str, Any] = field(default_factory=dict)
