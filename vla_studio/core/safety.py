"""The safety layer: flags, limits, action filter, watchdog helpers and safety counters.

Invariants (DESIGN.md, each proven by a test in ``tests/core/test_safety.py``,
``tests/core/test_command_gate.py`` and ``tests/core/test_loop.py``):

1. :class:`~vla_studio.core.estop.EStopLatch` (re-exported here) can be triggered from any
   thread; the control loop holds position on its next tick and flushes queued policy actions.
   Reset takes two deliberate steps and returns the session to PAUSED, never to motion.
2. The stop path is the latch plus the control-loop thread: no Qt, no inference thread involved.
3. Stale teleop or policy input holds; a missing GUI heartbeat during a policy run pauses.
4. :class:`ActionFilter` runs after every source and before the robot; then the
   :class:`~vla_studio.core.command_gate.CommandGate` checks the final command.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from vla_studio.core.alarms import DEFAULT_CLEAR_AFTER_S, RepeatedAlarm
from vla_studio.core.action_space import (EE_DELTA, STATE_EE_POS, STATE_JOINT_POS, ActionSpace,
                                          JointLimits)
from vla_studio.core.config import option
from vla_studio.core.estop import EStopLatch, StopEvent

__all__ = ["ActionFilter", "EStopLatch", "FilterResult", "HOLD_FLAGS", "Heartbeat",
           "SafetyCounters", "SafetyFlag", "SafetyLimits", "StopEvent", "require_joint_limits"]

log = logging.getLogger(__name__)


class SafetyFlag(enum.IntFlag):
    """Events the safety layer raises; a step stores the OR of those raised during its tick."""

    NONE = 0
    REJECTED_NONFINITE = 1 << 0  # NaN or inf in the action: rejected, held
    REJECTED_SHAPE = 1 << 1  # wrong shape or type: rejected, held
    CLIPPED_WORKSPACE = 1 << 2  # target outside the workspace box: clipped to it
    CAPPED_DELTA = 1 << 3  # per-step displacement above the cap: scaled down
    CAPPED_VELOCITY = 1 << 4  # velocity above the cap: scaled down
    ESTOP = 1 << 5  # e-stop latched: held
    TELEOP_STALE = 1 << 6  # teleop input older than the timeout: held
    POLICY_STALE = 1 << 7  # policy action older than the timeout: held
    HEARTBEAT_LOST = 1 << 8  # GUI heartbeat missing during a policy run: paused
    OVERRUN_ALARM = 1 << 9  # too many consecutive overruns
    STEP_QUEUE_FULL = 1 << 10  # a step subscriber (recorder) could not keep up
    STAMP_INVALID = 1 << 11  # a proposal stamped in the future (or NaN): held
    STATE_INVALID = 1 << 12  # robot state missing or non-finite: no motion, held
    GATE_REJECTED = 1 << 13  # the final command failed the command gate: held
    CLIPPED_JOINT_LIMITS = 1 << 14  # joint target outside the robot's joint limits: clipped
    ROBOT_UNRESPONSIVE = 1 << 15  # a robot call missed its deadline / is still stuck: no I/O


# Flags that mean "the robot was held instead of moved".
HOLD_FLAGS = (SafetyFlag.REJECTED_NONFINITE | SafetyFlag.REJECTED_SHAPE | SafetyFlag.ESTOP
              | SafetyFlag.TELEOP_STALE | SafetyFlag.POLICY_STALE | SafetyFlag.HEARTBEAT_LOST
              | SafetyFlag.STAMP_INVALID | SafetyFlag.STATE_INVALID | SafetyFlag.GATE_REJECTED
              | SafetyFlag.ROBOT_UNRESPONSIVE)


_WARNING_FLAGS = HOLD_FLAGS | SafetyFlag.OVERRUN_ALARM | SafetyFlag.STEP_QUEUE_FULL
_BITS = tuple(flag for flag in SafetyFlag if flag)


@dataclass(frozen=True)
class SafetyLimits:
    """Limits from the station profile's ``[safety]`` table (robot base frame, SI units)."""

    workspace_min: tuple[float, float, float] = option(
        (-1.0, -1.0, 0.0), help="lower corner of the end-effector workspace box, metres")
    workspace_max: tuple[float, float, float] = option(
        (1.0, 1.0, 1.0), help="upper corner of the end-effector workspace box, metres")
    max_delta_translation: float = option(0.03, min=0.0, help="end-effector metres per step")
    max_delta_rotation: float = option(0.2, min=0.0, help="end-effector radians per step")
    max_linear_velocity: float = option(0.5, min=0.0, help="end-effector m/s")
    max_angular_velocity: float = option(2.0, min=0.0, help="end-effector rad/s")
    max_joint_delta: float = option(0.1, min=0.0, help="joint radians per step")
    max_joint_velocity: float = option(1.5, min=0.0, help="joint rad/s")
    speed_scale: float = option(1.0, min=0.0, max=1.0, help="global factor on every motion")
    teleop_timeout_ms: float = option(100.0, min=1.0, help="older teleop input holds the robot")
    policy_timeout_ms: float = option(500.0, min=1.0, help="older policy actions hold the robot")
    gui_heartbeat_timeout_ms: float = option(500.0, min=1.0, help="pauses a policy run")
    overrun_alarm_streak: int = option(10, min=1, help="consecutive overruns that raise an alarm")
    robot_deadline_ms: float = option(
        200.0, min=1.0, max=10000.0,
        help="a robot call (state, command, hold) slower than this latches the e-stop")

    def __post_init__(self) -> None:
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(
                f"workspace_min {self.workspace_min} must be below workspace_max "
                f"{self.workspace_max} on every axis")


class Heartbeat:
    """Proof of life from a thread (the GUI beats it from a QTimer)."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self._last


class SafetyCounters:
    """Counts of every safety flag, each logged once per streak.

    Clamps can happen at every tick for minutes; each is counted, logged when a streak starts
    and summarised once it has been absent for ``clear_after_s`` (see
    :class:`~vla_studio.core.alarms.RepeatedAlarm`), never every tick or every second.
    :meth:`record` is called by one thread (the loop) every tick, flags or not, so that clears
    are noticed; :meth:`snapshot` may be called from any thread.
    """

    def __init__(self, clear_after_s: float = DEFAULT_CLEAR_AFTER_S) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._alarms = {
            flag: RepeatedAlarm(log, f"safety: {flag.name.lower()}",
                                logging.WARNING if flag & _WARNING_FLAGS else logging.INFO,
                                clear_after_s)
            for flag in SafetyFlag if flag}
        self._active: list[RepeatedAlarm] = []

    def record(self, flags: int, detail: str = "", now: float | None = None) -> None:
        """Count the flags of one tick (``now``: its time, host monotonic)."""
        if not flags and not self._active:
            return  # the common tick: nothing raised, nothing to clear
        now = time.monotonic() if now is None else now
        raised_flags = [flag for flag in _BITS if flags & flag]
        if raised_flags:
            with self._lock:
                for flag in raised_flags:
                    self._counts[flag.name] += 1
        raised = [self._alarms[flag] for flag in raised_flags]
        for alarm in raised:
            if alarm.occurred(detail, now):
                self._active.append(alarm)
        for alarm in list(self._active):
            if alarm not in raised and alarm.quiet(now):
                self._active.remove(alarm)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


@dataclass(frozen=True)
class FilterResult:
    """Outcome of :meth:`ActionFilter.apply`: the action to send (None = reject and hold)."""

    action: np.ndarray | None
    flags: SafetyFlag
    detail: str = ""


class ActionFilter:
    """Makes any requested action safe to send, or rejects it.

    Order: shape/finite guard → state guard → speed scale → workspace clip (end effector) or
    joint-limit clip (joints) → per-step delta cap → velocity cap → gripper clamp to [0, 1].
    Caps run after the clips so that pulling an out-of-range pose back in can never jump.

    Args:
        limits: the profile's safety limits.
        space: the robot's action space.
        period_s: control period, to turn velocity caps into per-step caps.
        joint_limits: the robot's joint limits (required for joint-position actions).

    Raises:
        ValueError: joint-position actions without joint limits, or limits for other joints.
    """

    def __init__(self, limits: SafetyLimits, space: ActionSpace, period_s: float,
                 joint_limits: JointLimits | None = None) -> None:
        self.limits, self.space, self.period_s = limits, space, period_s
        self._ws_lo = np.asarray(limits.workspace_min, dtype=np.float64)
        self._ws_hi = np.asarray(limits.workspace_max, dtype=np.float64)
        self.joint_limits = joint_limits
        if space.kind != EE_DELTA:
            jl = require_joint_limits(space, joint_limits)
            self._q_lo = np.asarray(jl.lower, dtype=np.float64)
            self._q_hi = np.asarray(jl.upper, dtype=np.float64)
            # The tightest of the profile's step cap, the profile's speed and the robot's spec.
            self.joint_step_cap = np.minimum(
                limits.max_joint_delta,
                np.minimum(limits.max_joint_velocity, np.asarray(jl.max_velocity)) * period_s)

    def apply(self, action: object, state: Mapping[str, np.ndarray]) -> FilterResult:
        """The filtered action and the flags raised; never raises for a bad action or state."""
        try:
            a = np.array(action, dtype=np.float64, copy=True)
        except (TypeError, ValueError):
            return FilterResult(None, SafetyFlag.REJECTED_SHAPE, f"not numeric: {type(action).__name__}")
        if a.shape != (self.space.dim,):
            return FilterResult(None, SafetyFlag.REJECTED_SHAPE,
                                f"shape {a.shape}, expected ({self.space.dim},)")
        if not np.all(np.isfinite(a)):
            return FilterResult(None, SafetyFlag.REJECTED_NONFINITE, f"non-finite values: {a}")
        problem = self.space.state_problem(state)
        if problem:  # a NaN or missing pose would turn every clip and cap into NaN
            return FilterResult(None, SafetyFlag.STATE_INVALID, problem)
        if self.space.kind == EE_DELTA:
            flags, detail = self._filter_ee_delta(a, state)
        else:
            flags, detail = self._filter_joint_position(a, state)
        a[-1] = min(1.0, max(0.0, a[-1]))
        return FilterResult(a, flags, detail)

    def _filter_ee_delta(self, a: np.ndarray, state: Mapping[str, np.ndarray]) -> tuple[SafetyFlag, str]:
        lim, flags, notes = self.limits, SafetyFlag.NONE, []
        a[:6] *= lim.speed_scale
        ee = np.asarray(state[STATE_EE_POS], dtype=np.float64).reshape(-1)[:3]
        target = ee + a[:3]
        clipped = np.clip(target, self._ws_lo, self._ws_hi)
        if not np.array_equal(clipped, target):
            flags |= SafetyFlag.CLIPPED_WORKSPACE
            notes.append(f"target {np.round(target, 3)} clipped to workspace")
            a[:3] = clipped - ee
        for sl, step_cap, vel_cap in ((slice(0, 3), lim.max_delta_translation, lim.max_linear_velocity),
                                      (slice(3, 6), lim.max_delta_rotation, lim.max_angular_velocity)):
            flags |= _cap_norm(a, sl, step_cap, SafetyFlag.CAPPED_DELTA)
            flags |= _cap_norm(a, sl, vel_cap * self.period_s, SafetyFlag.CAPPED_VELOCITY)
        return flags, "; ".join(notes)

    def _filter_joint_position(self, a: np.ndarray, state: Mapping[str, np.ndarray]) -> tuple[SafetyFlag, str]:
        lim, flags, notes = self.limits, SafetyFlag.NONE, []
        n = self.space.dim - 1
        q = np.asarray(state[STATE_JOINT_POS], dtype=np.float64).reshape(-1)[:n]
        target = np.clip(a[:-1], self._q_lo, self._q_hi)
        if not np.array_equal(target, a[:-1]):
            flags |= SafetyFlag.CLIPPED_JOINT_LIMITS
            notes.append(f"joint target {np.round(a[:-1], 3)} clipped to the joint limits")
        delta = (target - q) * lim.speed_scale
        for cap, flag in ((lim.max_joint_delta, SafetyFlag.CAPPED_DELTA),
                          (self.joint_step_cap, SafetyFlag.CAPPED_VELOCITY)):
            if np.any(np.abs(delta) > cap + 1e-12):
                flags |= flag
                delta = np.clip(delta, -cap, cap)
        a[:-1] = q + delta
        return flags, "; ".join(notes)


def require_joint_limits(space: ActionSpace, joint_limits: JointLimits | None) -> JointLimits:
    """``joint_limits``, checked to fit ``space``; raises ValueError naming the fix."""
    joints = space.names[:-1]
    if joint_limits is None:
        raise ValueError(f"{space.kind} actions need the robot's joint limits, and this robot "
                         "declares none: implement Robot.joint_limits in its driver")
    if tuple(joint_limits.names) != tuple(joints):
        raise ValueError(f"the robot's joint limits are for joints {joint_limits.names}, its "
                         f"action space has {joints}: make Robot.joint_limits follow the "
                         "action order")
    return joint_limits


def _cap_norm(a: np.ndarray, sl: slice, cap: float, flag: SafetyFlag) -> SafetyFlag:
    norm = float(np.linalg.norm(a[sl]))
    if norm > cap + 1e-12 and math.isfinite(norm):
        a[sl] *= cap / norm
        return flag
    return SafetyFlag.NONE
