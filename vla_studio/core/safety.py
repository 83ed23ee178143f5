"""The safety layer: latched e-stop, action filter, watchdog helpers and safety counters.

Invariants (DESIGN.md, each proven by a test in ``tests/core/test_safety.py`` and
``tests/core/test_loop.py``):

1. :class:`EStopLatch` can be triggered from any thread; the control loop holds position on its
   next tick (it is woken at once) and flushes queued policy actions. Reset takes two deliberate
   steps and returns the session to PAUSED, never to motion.
2. The stop path is the latch plus the control-loop thread: no Qt, no inference thread involved.
3. Stale teleop or policy input holds; a missing GUI heartbeat during a policy run pauses.
4. :class:`ActionFilter` runs after every source and before the robot.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from vla_studio.core.action_space import EE_DELTA, STATE_EE_POS, STATE_JOINT_POS, ActionSpace
from vla_studio.core.config import option

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


# Flags that mean "the robot was held instead of moved".
HOLD_FLAGS = (SafetyFlag.REJECTED_NONFINITE | SafetyFlag.REJECTED_SHAPE | SafetyFlag.ESTOP
              | SafetyFlag.TELEOP_STALE | SafetyFlag.POLICY_STALE | SafetyFlag.HEARTBEAT_LOST
              | SafetyFlag.STAMP_INVALID)


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

    def __post_init__(self) -> None:
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(
                f"workspace_min {self.workspace_min} must be below workspace_max "
                f"{self.workspace_max} on every axis")


@dataclass(frozen=True)
class StopEvent:
    """One e-stop trigger: when (host monotonic), why, and from where."""

    t: float
    reason: str
    origin: str


class EStopLatch:
    """A latched software e-stop that any thread can trigger.

    ``trigger`` only sets flags and events (no I/O, no Qt, no locks held across callbacks), so it
    is safe from a GUI slot, a device reader thread, a watchdog or a signal handler's thread.

    Reset is deliberate: :meth:`request_reset` arms it and :meth:`confirm_reset` within
    ``confirm_window_s`` clears it. Clearing never restarts motion: listeners (the session) move
    to PAUSED.

    Args:
        confirm_window_s: seconds between the two reset steps.
    """

    def __init__(self, confirm_window_s: float = 5.0) -> None:
        self.confirm_window_s = confirm_window_s
        self._tripped = threading.Event()
        self._lock = threading.Lock()
        self._event: StopEvent | None = None
        self._reset_armed_at: float | None = None
        self._wake: list[threading.Event] = []
        self._listeners: list[Callable[[bool, StopEvent | None], None]] = []
        self.trigger_count = 0
        self.history: list[StopEvent] = []

    @property
    def is_tripped(self) -> bool:
        return self._tripped.is_set()

    @property
    def event(self) -> StopEvent | None:
        """The trigger that latched the stop (the first since the last reset)."""
        return self._event

    def add_wake_event(self, event: threading.Event) -> None:
        """Set ``event`` on every trigger (the control loop waits on it between ticks)."""
        with self._lock:
            self._wake.append(event)

    def add_listener(self, callback: Callable[[bool, StopEvent | None], None]) -> None:
        """Call ``callback(tripped, event)`` after each trigger and reset (from that thread)."""
        with self._lock:
            self._listeners.append(callback)

    def trigger(self, reason: str, origin: str = "") -> None:
        """Latch the stop. Idempotent; every call is counted and logged."""
        now = time.monotonic()
        stop = StopEvent(now, reason, origin)
        with self._lock:
            self.trigger_count += 1
            self.history.append(stop)
            del self.history[:-100]
            first = not self._tripped.is_set()
            # A new stop always disarms a requested reset: the operator asked to reset the stop
            # they had seen, not one that happened after (request -> trigger -> confirm must fail).
            disarmed = self._reset_armed_at is not None
            self._reset_armed_at = None
            if first:
                self._event = stop
                self._tripped.set()
            wake, listeners = list(self._wake), list(self._listeners)
        for ev in wake:
            ev.set()
        if first:
            log.warning("E-STOP latched by %s: %s", origin or "unknown", reason)
            for cb in listeners:
                _call_safely(cb, True, stop)
        elif disarmed:
            log.warning("e-stop reset cancelled: a new stop from %s (%s); request the reset again",
                        origin or "unknown", reason)

    def request_reset(self) -> None:
        """First reset step: arm the reset. Raises RuntimeError when the stop is not latched."""
        with self._lock:
            if not self._tripped.is_set():
                raise RuntimeError("the e-stop is not latched; nothing to reset")
            self._reset_armed_at = time.monotonic()
        log.info("e-stop reset requested; confirm within %.0f s", self.confirm_window_s)

    @property
    def reset_time_left(self) -> float:
        """Seconds left to confirm a requested reset (0 when none is armed)."""
        armed = self._reset_armed_at
        return 0.0 if armed is None else max(0.0, self.confirm_window_s - (time.monotonic() - armed))

    @property
    def reset_armed(self) -> bool:
        return self._tripped.is_set() and self.reset_time_left > 0.0

    def confirm_reset(self) -> bool:
        """Second reset step. Returns True when the stop was cleared."""
        with self._lock:
            armed = self._reset_armed_at
            if not self._tripped.is_set() or armed is None:
                return False
            if time.monotonic() - armed > self.confirm_window_s:
                self._reset_armed_at = None
                return False
            self._tripped.clear()
            self._event = None
            self._reset_armed_at = None
            listeners = list(self._listeners)
        log.warning("e-stop reset; the session is PAUSED")
        for cb in listeners:
            _call_safely(cb, False, None)
        return True


def _call_safely(cb: Callable, *args: object) -> None:
    try:
        cb(*args)
    except Exception:
        log.exception("e-stop listener %r failed", cb)


class Heartbeat:
    """Proof of life from a thread (the GUI beats it from a QTimer)."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self._last


class SafetyCounters:
    """Thread-safe counts of every safety flag, with rate-limited logging.

    Clamps can happen at every tick for seconds on end; each is counted, and logged once when it
    first appears and then at most once per ``log_interval_s`` with the running count.
    """

    def __init__(self, log_interval_s: float = 1.0) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._last_log: dict[str, float] = {}
        self._log_interval_s = log_interval_s

    def record(self, flags: int, detail: str = "") -> None:
        if not flags:
            return
        now = time.monotonic()
        to_log = []
        with self._lock:
            for flag in SafetyFlag:
                if flag and flags & flag:
                    self._counts[flag.name] += 1
                    last = self._last_log.get(flag.name)
                    if last is None or now - last >= self._log_interval_s:
                        self._last_log[flag.name] = now
                        to_log.append((flag, self._counts[flag.name]))
        for flag, count in to_log:
            level = logging.WARNING if flag & (HOLD_FLAGS | SafetyFlag.OVERRUN_ALARM
                                               | SafetyFlag.STEP_QUEUE_FULL) else logging.INFO
            log.log(level, "safety: %s (%d so far)%s", flag.name.lower(), count,
                    f": {detail}" if detail else "")

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._last_log.clear()


@dataclass(frozen=True)
class FilterResult:
    """Outcome of :meth:`ActionFilter.apply`: the action to send (None = reject and hold)."""

    action: np.ndarray | None
    flags: SafetyFlag
    detail: str = ""


class ActionFilter:
    """Makes any requested action safe to send, or rejects it.

    Order: shape/finite guard → speed scale → workspace clip → per-step delta cap → velocity cap →
    gripper clamp to [0, 1]. Caps run after the workspace clip so that pulling an out-of-box pose
    back into the box can never become a jump.

    Args:
        limits: the profile's safety limits.
        space: the robot's action space.
        period_s: control period, to turn velocity caps into per-step caps.
    """

    def __init__(self, limits: SafetyLimits, space: ActionSpace, period_s: float) -> None:
        self.limits, self.space, self.period_s = limits, space, period_s
        self._ws_lo = np.asarray(limits.workspace_min, dtype=np.float64)
        self._ws_hi = np.asarray(limits.workspace_max, dtype=np.float64)

    def apply(self, action: object, state: Mapping[str, np.ndarray]) -> FilterResult:
        """Return the filtered action and the flags raised. Never raises for a bad action."""
        try:
            a = np.array(action, dtype=np.float64, copy=True)
        except (TypeError, ValueError):
            return FilterResult(None, SafetyFlag.REJECTED_SHAPE, f"not numeric: {type(action).__name__}")
        if a.shape != (self.space.dim,):
            return FilterResult(None, SafetyFlag.REJECTED_SHAPE,
                                f"shape {a.shape}, expected ({self.space.dim},)")
        if not np.all(np.isfinite(a)):
            return FilterResult(None, SafetyFlag.REJECTED_NONFINITE, f"non-finite values: {a}")
        if self.space.kind == EE_DELTA:
            flags, detail = self._filter_ee_delta(a, state)
        else:
            flags, detail = self._filter_joint_position(a, state)
        a[-1] = min(1.0, max(0.0, a[-1]))
        return FilterResult(a, flags, detail)

    def _filter_ee_delta(self, a: np.ndarray, state: Mapping[str, np.ndarray]) -> tuple[SafetyFlag, str]:
        lim, flags, notes = self.limits, SafetyFlag.NONE, []
        a[:6] *= lim.speed_scale
        ee = state.get(STATE_EE_POS)
        if ee is not None:
            ee = np.asarray(ee, dtype=np.float64)[:3]
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
        lim, flags = self.limits, SafetyFlag.NONE
        q = np.asarray(state[STATE_JOINT_POS], dtype=np.float64)[: self.space.dim - 1]
        delta = (a[:-1] - q) * lim.speed_scale
        for cap, flag in ((lim.max_joint_delta, SafetyFlag.CAPPED_DELTA),
                          (lim.max_joint_velocity * self.period_s, SafetyFlag.CAPPED_VELOCITY)):
            if np.any(np.abs(delta) > cap + 1e-12):
                flags |= flag
                delta = np.clip(delta, -cap, cap)
        a[:-1] = q + delta
        return flags, ""


def _cap_norm(a: np.ndarray, sl: slice, cap: float, flag: SafetyFlag) -> SafetyFlag:
    norm = float(np.linalg.norm(a[sl]))
    if norm > cap + 1e-12 and math.isfinite(norm):
        a[sl] *= cap / norm
        return flag
    return SafetyFlag.NONE
