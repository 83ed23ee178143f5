"""The fixed-rate control loop: the only thread that talks to the robot.

```
 camera threads --latest()--> +------------------ tick k (period T) ------------------+
 teleop reader  --state-----> | 1 observe  robot state + latest frame per camera       |
 policy runner  <-observe---- | 2 decide   e-stop? paused? heartbeat? arbiter.decide() |
                --chunks----> | 3 filter   ActionFilter (NaN/shape guard, clips, caps) |
                              |   gate     CommandGate: finite, in bounds, valid state |
                              | 4 send     robot.send_action() or robot.hold()         |
                              | 5 emit     Step -> StepQueues (recorder), LatestSlot   |
                              +--------------------------------------------------------+
   EStopLatch.trigger() (any thread) --wake--> loop: robot.hold() at once, flush sources
```
The loop never waits on the GUI, the disk or a model: sources and cameras are read through
latest-value slots, steps leave through non-blocking queues. Between ticks it sleeps on an event
the e-stop latch sets, so a stop reaches the robot immediately rather than at the next tick.

A robot state without a finite pose (``ee_pos`` for end-effector deltas, ``joint_pos`` for joint
targets) never moves the robot: the tick holds at the last valid pose, raises ``STATE_INVALID``
and an alarm on the event bus, and the loop keeps running.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import sys
import threading
import time
from typing import Callable, Mapping, Protocol, TypeVar

import numpy as np

from vla_studio.core.action_space import EE_DELTA, ActionSpace, JointLimits
from vla_studio.core.arbiter import Decision, SourceArbiter
from vla_studio.core.clock import LoopStats
from vla_studio.core.command_gate import CommandGate
from vla_studio.core.events import EventBus, LatestSlot, StepQueue
from vla_studio.core.safety import (ActionFilter, EStopLatch, Heartbeat, SafetyCounters,
                                    SafetyFlag, SafetyLimits)
from vla_studio.core.session import ControlMode, RunState, Session
from vla_studio.core.types import Frame, Observation, SourceKind, StageTiming, Step

log = logging.getLogger(__name__)
T = TypeVar("T")
GIL_SWITCH_INTERVAL_S = 0.001


class RobotLike(Protocol):
    action_space: ActionSpace
    joint_limits: JointLimits | None
    last_sent: np.ndarray | None

    def get_observation(self) -> dict[str, np.ndarray]: ...
    def send_action(self, action: np.ndarray) -> np.ndarray: ...
    def hold(self, state: Mapping[str, np.ndarray]) -> np.ndarray: ...


class CameraLike(Protocol):
    name: str

    def latest(self) -> Frame | None: ...


class ControlLoop:
    """Runs observe → decide → filter → send → emit at a fixed rate on its own thread.

    Args:
        robot: the robot; only this loop's thread calls it once the loop runs.
        cameras: cameras by name, read through ``latest()``.
        arbiter: chooses the action source each tick.
        session: run state (PAUSED / RUNNING / ESTOPPED) and control mode.
        limits: safety limits for the action filter and watchdogs.
        rate_hz: control rate.
        events: where alarms are published (optional).
        heartbeat: GUI heartbeat; when set, a policy run pauses if it goes quiet.
    """

    def __init__(self, robot: RobotLike, cameras: Mapping[str, CameraLike], arbiter: SourceArbiter,
                 session: Session, limits: SafetyLimits, rate_hz: float, *,
                 events: EventBus | None = None, heartbeat: Heartbeat | None = None) -> None:
        self.robot, self.cameras, self.arbiter, self.session = robot, dict(cameras), arbiter, session
        self.latch: EStopLatch = session.latch
        self.limits, self.rate_hz, self.period_s = limits, rate_hz, 1.0 / rate_hz
        self.events = events or EventBus()
        self.heartbeat = heartbeat
        space = robot.action_space
        joint_limits = None if space.kind == EE_DELTA else robot.joint_limits
        self.filter = ActionFilter(limits, space, self.period_s, joint_limits)
        self.gate = CommandGate(limits, space, self.period_s, joint_limits)
        self.stats = LoopStats(rate_hz)
        self.counters = SafetyCounters()
        self.snapshot: LatestSlot[Step] = LatestSlot()
        self._subs: list[StepQueue[Step]] = []
        self._subs_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_valid_state: Mapping[str, np.ndarray] | None = None
        self._state_alarm = ""  # the state problem the operator was told about ("" = none)
        self._last_emit_ms = 0.0
        self._flushed_for_stop = False
        self._queue_alarm_raised: set[str] = set()
        self._calls: collections.deque[tuple[Callable[[], object], concurrent.futures.Future]] = collections.deque()
        self.latch.add_wake_event(self._wake)

    # ----- lifecycle -------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the loop thread (the robot must already be connected)."""
        if self.is_running:
            return
        # CPython hands the GIL over every 5 ms by default: a woken loop thread (or a stop) could
        # wait that long behind a Python-heavy thread. 1 ms keeps stop latency well inside a tick.
        if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="control-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the loop thread; the last command it sent is a hold."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.error("control loop did not stop within 5 s")

    def call_on_loop(self, fn: Callable[[], T], timeout_s: float = 30.0) -> T:
        """Run ``fn`` on the loop thread between ticks and return its result.

        The loop thread owns the robot; anything else that must touch it (a simulator reset
        between episodes) goes through here instead of racing the loop. Runs ``fn`` directly
        when the loop is not running. Exceptions from ``fn`` are re-raised in the caller.
        """
        if not self.is_running or threading.current_thread() is self._thread:
            return fn()
        return self.post_to_loop(fn).result(timeout=timeout_s)

    def post_to_loop(self, fn: Callable[[], T]) -> "concurrent.futures.Future[T]":
        """Like :meth:`call_on_loop` without waiting: the future gets ``fn``'s result (or
        exception) after the next tick. Runs ``fn`` at once when the loop is not running."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        if not self.is_running or threading.current_thread() is self._thread:
            fut.set_running_or_notify_cancel()
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to whoever reads the future
                fut.set_exception(exc)
            return fut
        self._calls.append((fn, fut))
        return fut

    def _run_calls(self) -> None:
        while self._calls:
            fn, fut = self._calls.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller
                fut.set_exception(exc)

    def subscribe(self, name: str, maxsize: int) -> StepQueue[Step]:
        """A queue that receives every step from now on (never blocks the loop)."""
        q: StepQueue[Step] = StepQueue(name, maxsize)
        with self._subs_lock:
            self._subs = [*self._subs, q]
        return q

    def unsubscribe(self, q: StepQueue[Step]) -> None:
        q.close()
        with self._subs_lock:
            self._subs = [s for s in self._subs if s is not q]

    # ----- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        period = self.period_s
        next_t = time.monotonic()
        tick = 0
        try:
            while not self._stop.is_set():
                while True:
                    remaining = next_t - time.monotonic()
                    if remaining <= 0:
                        break
                    if self._wake.wait(remaining):
                        self._wake.clear()
                        if self._stop.is_set():
                            return
                        if self.latch.is_tripped:
                            self._stop_now()
                start = time.monotonic()
                self._tick(tick, start, (start - next_t) * 1000.0, next_t)
                tick += 1
                next_t += period
                behind = time.monotonic() - next_t
                if behind > period:  # more than a whole period late: skip, never burst
                    skipped = int(behind // period)
                    self.stats.skipped_ticks += skipped
                    next_t += skipped * period
        except Exception:
            log.exception("control loop crashed; latching the e-stop")
            self.latch.trigger("control loop crashed", "control-loop")
        finally:
            self._hold_safely()
            self._run_calls()  # nothing may wait forever on a loop that has stopped

    def _stop_now(self) -> None:
        """E-stop path between ticks: hold immediately and drop queued actions."""
        self._hold_safely()
        self.arbiter.flush()
        self._flushed_for_stop = True

    def _hold_safely(self) -> None:
        try:
            self.robot.hold(self._last_valid_state or {})
        except Exception:
            log.exception("robot hold failed")

    def _tick(self, tick: int, start: float, jitter_ms: float, scheduled: float) -> None:
        flags = SafetyFlag.NONE
        if self._calls:
            self._run_calls()
        # 1 observe
        try:
            state = self.robot.get_observation()
        except Exception as exc:
            self.latch.trigger(f"robot state unavailable: {exc}", "control-loop")
            state = {}
        state_problem = self.gate.state_problem(state)
        if state_problem:
            flags |= SafetyFlag.STATE_INVALID
        else:
            self._last_valid_state = state
        self._state_alarm_update(state_problem)
        frames = {name: cam.latest() for name, cam in self.cameras.items()}
        obs = Observation(tick, start, state, frames)
        t1 = time.monotonic()
        # 2 decide
        decision = self._decide(obs, start)
        flags |= decision.flags
        t2 = time.monotonic()
        # 3 filter, then the gate: the last word before the robot
        action, detail = None, ""
        if decision.action is not None:
            result = self.filter.apply(decision.action, state)
            action, detail = result.action, result.detail
            flags |= result.flags
        if action is not None:
            refused = self.gate.check(action, state)
            if refused:
                action, detail = None, f"command gate: {refused}"
                flags |= SafetyFlag.GATE_REJECTED
        t3 = time.monotonic()
        # 4 send (the latch is checked again: a stop during observe/decide wins)
        source = decision.source
        hold_reason = decision.reason
        if self.latch.is_tripped and action is not None:
            action, flags, hold_reason = None, flags | SafetyFlag.ESTOP, "e-stop"
        try:
            if action is None:
                # Hold where the robot last was for sure: a NaN or missing pose is no place to hold.
                sent = self.robot.hold(state if not state_problem else self._last_valid_state or {})
                source = SourceKind.HOLD
                hold_reason = hold_reason or detail or state_problem or "held"
            else:
                sent = self.robot.send_action(action)
        except Exception as exc:
            log.exception("robot send failed")
            self.latch.trigger(f"robot command failed: {exc}", "control-loop")
            sent = np.full(self.robot.action_space.dim, np.nan)  # nothing known to be received
            source, hold_reason = SourceKind.HOLD, f"robot error: {exc}"
        t4 = time.monotonic()
        # 5 emit
        overran = (t4 + self._last_emit_ms / 1000.0) - scheduled > self.period_s
        if overran and self.stats.overrun_streak + 1 == self.limits.overrun_alarm_streak:
            flags |= SafetyFlag.OVERRUN_ALARM
            self.events.emit("loop.overrun", f"control loop overran {self.limits.overrun_alarm_streak} "
                             "ticks in a row: the machine is overloaded", logging.WARNING)
        timing = StageTiming((t1 - start) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3,
                             self._last_emit_ms, jitter_ms)
        step = Step(tick, start, obs, sent, decision.action, source, int(flags), hold_reason,
                    timing, decision.extras)
        for q in self._subs:
            if not q.offer(step) and not q.closed:  # a queue closed by unsubscribe is no alarm
                self._queue_full(q, step)
                flags |= SafetyFlag.STEP_QUEUE_FULL
        self.snapshot.put(step)
        self.counters.record(flags, detail)
        t5 = time.monotonic()
        self._last_emit_ms = (t5 - t4) * 1e3
        self.stats.record(start, timing, overran)

    def _decide(self, obs: Observation, now: float) -> Decision:
        if self.latch.is_tripped:
            if not self._flushed_for_stop:
                self.arbiter.flush()
                self._flushed_for_stop = True
            ev = self.latch.event
            return Decision(None, SourceKind.HOLD, f"e-stop: {ev.reason if ev else ''}", SafetyFlag.ESTOP)
        self._flushed_for_stop = False
        try:
            self.arbiter.observe(obs)
        except Exception:
            log.exception("action source observe failed")
        snap = self.session.snapshot
        if snap.state != RunState.RUNNING:
            return Decision(None, SourceKind.HOLD, f"paused: {snap.reason}")
        if (snap.mode == ControlMode.POLICY and self.heartbeat is not None
                and self.heartbeat.age(now) * 1000.0 > self.limits.gui_heartbeat_timeout_ms):
            self.session.pause("GUI heartbeat lost during a policy run")
            self.arbiter.flush()
            self.events.emit("safety.heartbeat", "The window stopped responding during a policy "
                             "run; the run is paused.", logging.WARNING)
            return Decision(None, SourceKind.HOLD, "GUI heartbeat lost", SafetyFlag.HEARTBEAT_LOST)
        try:
            return self.arbiter.decide(snap.mode, obs, now, self.period_s)
        except Exception as exc:
            log.exception("action source failed")
            return Decision(None, SourceKind.HOLD, f"source error: {exc}")

    def _state_alarm_update(self, problem: str) -> None:
        """Tell the operator once when the robot state becomes unusable, and once when it heals."""
        if problem == self._state_alarm:
            return
        if problem and not self._state_alarm:
            self.events.emit("safety.state_invalid", f"Robot state unusable: {problem}.",
                             logging.ERROR, detail=problem)
        elif not problem:
            self.events.emit("safety.state_valid", "The robot state is valid again.", logging.INFO)
        self._state_alarm = problem

    def _queue_full(self, q: StepQueue[Step], step: Step) -> None:
        if q.name not in self._queue_alarm_raised:
            self._queue_alarm_raised.add(q.name)
            self.events.emit("loop.queue_full", f"{q.name} cannot keep up: steps are being dropped "
                             f"(first at tick {step.index})", logging.ERROR, queue=q.name)
