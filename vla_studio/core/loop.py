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
   EStopLatch.trigger() (any thread) --signal--> "estop-relay": robot.emergency_hold()
                                     --wake----> loop: robot.hold() at once, flush sources
```
The loop never waits on the GUI, the disk or a model: sources and cameras are read through
latest-value slots, steps leave through non-blocking queues. Between ticks it sleeps on an event
the e-stop latch sets, so a stop reaches the robot immediately rather than at the next tick.

Robot calls run on the loop thread under a deadline (``safety.robot_deadline_ms``, see
:mod:`vla_studio.core.robot_calls`): a call that misses it latches the e-stop (the latch's relay
thread sends the driver's ``emergency_hold()``, which needs no loop) and a fresh loop thread
takes over, ticking without the robot (``ROBOT_UNRESPONSIVE``) until the stuck call returns.

A robot state without a finite pose (``ee_pos`` for end-effector deltas, ``joint_pos`` for joint
targets) never moves the robot: the tick holds at the last valid pose, raises ``STATE_INVALID``
and an alarm on the event bus, and the loop keeps running. If the loop itself crashes, the robot
is held, the e-stop latches ("control loop crashed: ...") and ``loop.crashed`` is published.

Lock-step (simulation only, :mod:`vla_studio.core.lockstep`): instead of :meth:`ControlLoop.start`,
:meth:`ControlLoop.start_lockstep` starts the same watchdog and e-stop relay but no loop thread;
a driver calls :meth:`ControlLoop.step_once` with the simulated tick time and runs the very same
tick (observe, decide, filter, gate, send, emit) on its own thread, which then owns the robot::

    driver thread:  cameras render for t --> step_once(t): _tick(...) --> clock advances by T
                    (waits first while a step queue is nearly full: backpressure, never a drop)

Nothing waits for the wall clock: a tick runs as soon as the previous one is done, so simulated
time runs as fast as the machine allows. Stage times stay host-measured; overruns do not exist
(the simulation waits for the loop). The real-time path above is untouched by it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
import time
from typing import Callable, Mapping, Protocol, TypeVar

import numpy as np

from vla_studio.core.action_space import EE_DELTA, ActionSpace, JointLimits
from vla_studio.core.alarms import RepeatedAlarm
from vla_studio.core.arbiter import Decision, SourceArbiter
from vla_studio.core.clock import LoopStats
from vla_studio.core.command_gate import CommandGate
from vla_studio.core.events import EventBus, LatestSlot, StepQueue
from vla_studio.core.loop_calls import LoopCallQueue
from vla_studio.core.loop_lockstep import LockstepTicks
from vla_studio.core.robot_calls import CallAbandoned, RobotCall, RobotCalls, RobotUnresponsive
from vla_studio.core.safety import (ActionFilter, EStopLatch, Heartbeat, SafetyCounters,
                                    SafetyFlag, SafetyLimits)
from vla_studio.core.session import ControlMode, RunState, Session
from vla_studio.core.types import Frame, Observation, SourceKind, StageTiming, Step

log = logging.getLogger(__name__)
T = TypeVar("T")
# CPython hands the GIL to a waiting thread only after this long (5 ms by default). A woken loop
# thread or e-stop relay competes with every Python-busy thread (GUI, models, devices): measured
# with `bench estop` (GUI + busy thread + busy policy, 2 cores), 1 ms gave a stop p99 of 8-12 ms,
# 0.2 ms gives 2-3 ms, for 5-9 % less throughput when three pure-Python threads contend.
GIL_SWITCH_INTERVAL_S = 0.0002
OVERRUN_CLEAR_AFTER_S = 5.0  # overrun alarms closer together than this are one alarm


class RobotLike(Protocol):
    action_space: ActionSpace
    joint_limits: JointLimits | None
    last_sent: np.ndarray | None
    emergency_held: bool

    def get_observation(self) -> dict[str, np.ndarray]: ...
    def send_action(self, action: np.ndarray) -> np.ndarray: ...
    def hold(self, state: Mapping[str, np.ndarray]) -> np.ndarray: ...
    def emergency_hold(self) -> None: ...
    def release_emergency_hold(self) -> None: ...


class CameraLike(Protocol):
    name: str

    def latest(self) -> Frame | None: ...


class ControlLoop(LockstepTicks):
    """Runs observe → decide → filter → gate → send → emit at a fixed rate on its own thread.

    Args:
        robot: the robot; only this loop's thread calls it once the loop runs (and the e-stop
            relay calls its ``emergency_hold``).
        cameras: cameras by name, read through ``latest()``.
        arbiter: chooses the action source each tick.
        session: run state (PAUSED / RUNNING / ESTOPPED) and control mode.
        limits: safety limits for the action filter, the gate and the watchdogs.
        rate_hz: control rate.
        events: where alarms are published (optional).
        heartbeat: GUI heartbeat; when set, a policy run pauses if it goes quiet.

    Raises:
        ValueError: joint-position actions from a robot without (matching) joint limits.
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
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._abandoned: list[threading.Thread] = []  # loop threads stuck in a robot call
        self._lockstep_owner: threading.Thread | None = None  # the driver's thread (lock-step)
        self._started_relay = False
        self._io = RobotCalls(limits.robot_deadline_ms / 1000.0, self._robot_call_missed)
        self._tick_index = 0
        self._last_valid_state: Mapping[str, np.ndarray] | None = None
        # told once when the state becomes unusable, once when it has been valid for a second
        self._state_alarm = RepeatedAlarm(log, "robot state unusable", announce=False)
        self._last_emit_ms = 0.0
        self._flushed_for_stop = False
        # Triggers the loop has acted on (held and flushed for). A stop that is latched and
        # reset before this thread looks at the latch leaves it clear, but not this count.
        self._seen_triggers = self.latch.trigger_count
        self._queue_alarm_raised: set[str] = set()
        self._calls = LoopCallQueue()
        # Conditions that can repeat every tick: logged once, summarised when they clear.
        self._command_alarm = RepeatedAlarm(log, "robot command failed", logging.ERROR)
        self._observe_alarm = RepeatedAlarm(log, "action source observe() failed")
        self._source_alarm = RepeatedAlarm(log, "action source failed")
        self._overrun_alarm = RepeatedAlarm(log, "control loop overrun alarms", logging.WARNING,
                                            OVERRUN_CLEAR_AFTER_S, announce=False)
        self.latch.add_wake_event(self._wake)

    # ----- lifecycle -------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the loop thread, the robot-deadline watchdog and the e-stop relay (the robot
        must already be connected)."""
        with self._lifecycle:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._lockstep_owner is not None:
                raise RuntimeError("the loop is in lock-step; stop() it before starting its thread")
            # See GIL_SWITCH_INTERVAL_S: a stop must not wait behind Python-heavy threads.
            if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
                sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
            self._stop.clear()
            self._io.start()
            self.latch.add_emergency_hold(self.robot.emergency_hold)
            if not self.latch.relay_running:
                self.latch.start()
                self._started_relay = True
            self._spawn()

    def _spawn(self) -> None:
        """Start a loop thread (with ``_lifecycle`` held)."""
        # Started before it is published: a caller that finds ``_thread`` not yet alive would
        # take the loop for stopped and run its call directly, past a stuck robot call.
        thread = threading.Thread(target=self._run, name="control-loop", daemon=True)
        thread.start()
        self._thread = thread

    def stop(self) -> None:
        """Stop and join the loop thread; the last command it sent is a hold."""
        self._stop.set()
        self._wake.set()
        with self._lifecycle:
            thread, self._thread = self._thread, None
            abandoned, self._abandoned = self._abandoned, []
            owner, self._lockstep_owner = self._lockstep_owner, None
        if owner is not None and owner is threading.current_thread() and self._io.stuck is None:
            if self._hold_safely():  # lock-step: the last command is a hold, as in real time
                self._finish_calls()
        if thread is not None:
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.error("control loop did not stop within 5 s")
        for stuck in abandoned:
            stuck.join(timeout=0.5)
            if stuck.is_alive():
                log.error("a robot call is still stuck in the driver; its thread is left behind")
        self._io.stop()
        self.latch.remove_emergency_hold(self.robot.emergency_hold)
        if self._started_relay:
            self._started_relay = False
            self.latch.stop()

    def call_on_loop(self, fn: Callable[[], T], timeout_s: float = 30.0) -> T:
        """Run ``fn`` on the loop thread between ticks and return its result.

        The loop thread owns the robot; anything else that must touch it (a simulator reset
        between episodes) goes through here instead of racing the loop. Runs ``fn`` directly
        when the loop is not running. Exceptions from ``fn`` are re-raised in the caller;
        while a robot call is stuck the call fails with RobotUnresponsive.
        """
        return self.post_to_loop(fn).result(timeout=timeout_s)

    def post_to_loop(self, fn: Callable[[], T]) -> "concurrent.futures.Future[T]":
        """Like :meth:`call_on_loop` without waiting: the future gets ``fn``'s result (or
        exception) after the next tick. Runs ``fn`` at once when the loop is not running."""
        owner = self._lockstep_owner
        if owner is not None:  # lock-step: the driver's thread owns the robot between ticks
            if threading.current_thread() is owner:
                return LoopCallQueue.run_now(fn)
            return self._calls.post(fn)  # run before the driver's next tick
        if not self.is_running or threading.current_thread() is self._thread:
            return LoopCallQueue.run_now(fn)
        return self._calls.post(fn)

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
        abandoned = False
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
                        if self._stop_unseen():
                            self._stop_now()
                start = time.monotonic()
                self._tick(self._tick_index, start, (start - next_t) * 1000.0, next_t)
                self._tick_index += 1
                next_t += period
                behind = time.monotonic() - next_t
                if behind > period:  # more than a whole period late: skip, never burst
                    skipped = int(behind // period)
                    self.stats.skipped_ticks += skipped
                    next_t += skipped * period
        except CallAbandoned:
            abandoned = True  # a fresh loop thread owns the robot now: touch nothing
        except Exception as exc:
            self._crashed(exc)
        finally:
            if not abandoned and self._hold_safely():
                self._finish_calls()  # nothing may wait forever on a loop that has stopped

    def _crashed(self, exc: Exception) -> None:
        """The loop cannot go on: latch the stop (the relay holds the robot) and say so."""
        what = f"{type(exc).__name__}: {exc}"
        log.exception("control loop crashed; latching the e-stop")
        self.latch.trigger(f"control loop crashed: {what}", "control-loop")
        self.events.emit("loop.crashed", f"The control loop crashed ({what}). The robot is held "
                         "and the e-stop is latched; restart VLA Studio to move it again (the "
                         "log has the details).", logging.ERROR, error=what)

    def _robot_call_missed(self, call: RobotCall, now: float) -> None:
        """Watchdog thread: ``call`` is past its deadline. Stop the robot without the loop, and
        let a fresh loop thread carry on (the stuck one leaves when the driver returns)."""
        ms = self._io.deadline_s * 1000.0  # the profile's; lock-step may allow more
        self.latch.trigger(f"robot {call.name}() did not return within {ms:g} ms", "robot-deadline")
        self.events.emit("robot.unresponsive", f"The robot driver's {call.name}() has not "
                         f"returned within {ms:g} ms: the e-stop is latched and the robot was sent "
                         "its emergency hold. Check the robot and its connection.",
                         logging.ERROR, call=call.name)
        with self._lifecycle:
            if self._stop.is_set() or self._thread is None:
                return
            self._thread.name = "control-loop-stuck"
            self._abandoned.append(self._thread)
            self._spawn()

    def _stop_unseen(self) -> bool:
        """A stop is latched, or one came (and maybe went) since the loop last acted on one."""
        return self.latch.is_tripped or self.latch.trigger_count != self._seen_triggers

    def _stop_now(self) -> None:
        """E-stop path between ticks: hold immediately and drop queued actions."""
        triggers = self.latch.trigger_count  # before the flush: a later trigger is seen again
        if not self._hold_safely():
            raise CallAbandoned("hold")
        self.arbiter.flush()
        self._flushed_for_stop = True
        self._seen_triggers = triggers

    def _hold_safely(self) -> bool:
        """Hold at the last valid pose. Returns False when this thread was abandoned."""
        try:
            self._io.call("hold", self.robot.hold, self._last_valid_state or {})
        except CallAbandoned:
            return False
        except RobotUnresponsive:
            pass  # the emergency hold went out when the stuck call missed its deadline
        except Exception as exc:
            self._command_alarm.occurred(f"hold: {exc}", exc_info=True)
        return True

    def _finish_calls(self) -> None:
        stuck = self._io.stuck
        if stuck is None:
            self._calls.run_all()
        else:
            self._calls.fail_all(RobotUnresponsive(
                f"the robot is not responding ({stuck.name}() has not returned); nothing was done"))

    def _tick(self, tick: int, start: float, jitter_ms: float, scheduled: float | None,
              host_start: float | None = None) -> Step:
        """One tick at tick time ``start``. ``scheduled`` is when it was due (None in lock-step:
        no deadline); ``host_start`` is the host time stage timings count from when ``start``
        is on another clock (lock-step)."""
        h0 = start if host_start is None else host_start
        flags = SafetyFlag.NONE
        triggers = self.latch.trigger_count
        if self._calls:
            self._finish_calls()
        if self.robot.emergency_held and not self.latch.is_tripped and self._io.stuck is None:
            self._release_emergency_hold()
        # 1 observe
        state: Mapping[str, np.ndarray] = {}
        unresponsive = state_problem = ""
        try:
            state = self._io.call("get_observation", self.robot.get_observation)
        except RobotUnresponsive as exc:
            unresponsive = str(exc)
        except Exception as exc:
            self.latch.trigger(f"robot state unavailable: {exc}", "control-loop")
            state_problem = f"the robot's get_observation() failed ({exc}); the robot is held"
        if unresponsive:
            flags |= SafetyFlag.ROBOT_UNRESPONSIVE
        else:
            state_problem = state_problem or self.gate.state_problem(state)
            if state_problem:
                flags |= SafetyFlag.STATE_INVALID
            else:
                self._last_valid_state = state
            self._state_alarm_update(state_problem, start)
        frames = {name: cam.latest() for name, cam in self.cameras.items()}
        obs = Observation(tick, start, state, frames)
        t1 = time.monotonic()
        # 2 decide
        decision = self._decide(obs, start, triggers)
        flags |= decision.flags
        t2 = time.monotonic()
        # 3 filter, then the gate: the last word before the robot
        action, detail = None, ""
        if decision.action is not None and not unresponsive:
            result = self.filter.apply(decision.action, state)
            action, detail = result.action, result.detail
            flags |= result.flags
        if action is not None:
            refused = self.gate.check(action, state)
            if refused:
                action, detail = None, f"command gate: {refused}"
                flags |= SafetyFlag.GATE_REJECTED
        t3 = time.monotonic()
        # 4 send (the latch is checked again: a stop during observe/decide wins, even one that
        # was reset already; the wait after this tick flushes for it)
        source, hold_reason = decision.source, decision.reason
        if action is not None and (self.latch.is_tripped or self.latch.trigger_count != triggers):
            action, flags, hold_reason = None, flags | SafetyFlag.ESTOP, "e-stop"
        sent = None
        if not unresponsive:
            try:
                if action is None:
                    # Hold where the robot last was for sure: a NaN or missing pose is no place
                    # to hold at.
                    hold_state = state if not state_problem else self._last_valid_state or {}
                    sent = self._io.call("hold", self.robot.hold, hold_state)
                    hold_reason = hold_reason or detail or state_problem or "held"
                else:
                    sent = self._io.call("send_action", self.robot.send_action, action)
                self._command_alarm.quiet(start)
            except RobotUnresponsive as exc:
                unresponsive = str(exc)
                flags |= SafetyFlag.ROBOT_UNRESPONSIVE
            except Exception as exc:
                self._command_alarm.occurred(str(exc), start, exc_info=True)
                self.latch.trigger(f"robot command failed: {exc}", "control-loop")
                hold_reason = f"robot error: {exc}"
        if unresponsive:
            hold_reason = f"robot not responding: {unresponsive}"
        if sent is None:  # nothing is known to have reached the robot
            sent, source = np.full(self.robot.action_space.dim, np.nan), SourceKind.HOLD
        elif action is None:
            source = SourceKind.HOLD
        t4 = time.monotonic()
        # 5 emit
        overran = scheduled is not None and \
            (t4 + self._last_emit_ms / 1000.0) - scheduled > self.period_s
        if overran and self.stats.overrun_streak + 1 == self.limits.overrun_alarm_streak:
            flags |= SafetyFlag.OVERRUN_ALARM
            if self._overrun_alarm.occurred(now=t4):  # told once; later streaks are counted
                self.events.emit("loop.overrun", "control loop overran "
                                 f"{self.limits.overrun_alarm_streak} ticks in a row: the machine "
                                 "is overloaded", logging.WARNING)
        elif not overran:
            self._overrun_alarm.quiet(t4)
        timing = StageTiming((t1 - h0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3,
                             self._last_emit_ms, jitter_ms)
        step = Step(tick, start, obs, sent, decision.action, source, int(flags), hold_reason,
                    timing, decision.extras)
        for q in self._subs:
            if not q.offer(step) and not q.closed:  # a queue closed by unsubscribe is no alarm
                self._queue_full(q, step)
                flags |= SafetyFlag.STEP_QUEUE_FULL
        self.snapshot.put(step)
        self.counters.record(flags, detail, start)
        t5 = time.monotonic()
        self._last_emit_ms = (t5 - t4) * 1e3
        self.stats.record(start, timing, overran)
        return step

    def _release_emergency_hold(self) -> None:
        """The e-stop was reset: let the driver accept motion again (the session is PAUSED)."""
        try:
            self._io.call("release_emergency_hold", self.robot.release_emergency_hold)
        except RobotUnresponsive:
            pass
        except Exception as exc:
            self._command_alarm.occurred(f"release_emergency_hold: {exc}", exc_info=True)

    def _decide(self, obs: Observation, now: float, triggers: int) -> Decision:
        tripped = self.latch.is_tripped
        if tripped or triggers != self._seen_triggers:
            if not self._flushed_for_stop or triggers != self._seen_triggers:
                self.arbiter.flush()
                self._flushed_for_stop = True
                self._seen_triggers = triggers
            ev = self.latch.event
            # A stop latched and reset since the last tick: this tick still holds, as for any.
            reason = f"e-stop: {ev.reason}" if tripped and ev else "e-stop (reset already)"
            return Decision(None, SourceKind.HOLD, reason, SafetyFlag.ESTOP)
        self._flushed_for_stop = False
        try:
            self.arbiter.observe(obs)
            self._observe_alarm.quiet(now)
        except Exception as exc:
            self._observe_alarm.occurred(str(exc), now, exc_info=True)
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
            decision = self.arbiter.decide(snap.mode, obs, now, self.period_s)
            self._source_alarm.quiet(now)
            return decision
        except Exception as exc:
            self._source_alarm.occurred(str(exc), now, exc_info=True)
            return Decision(None, SourceKind.HOLD, f"source error: {exc}")

    def _state_alarm_update(self, problem: str, now: float) -> None:
        """Tell the operator once when the robot state becomes unusable, and once when it has
        been valid again for a while (a state that flickers is one alarm, not one per tick)."""
        if problem:
            if self._state_alarm.occurred(problem, now):
                self.events.emit("safety.state_invalid", f"Robot state unusable: {problem}.",
                                 logging.ERROR, detail=problem)
        elif self._state_alarm.quiet(now):
            self.events.emit("safety.state_valid", "The robot state is valid again.", logging.INFO)

    def _queue_full(self, q: StepQueue[Step], step: Step) -> None:
        if q.name not in self._queue_alarm_raised:
            self._queue_alarm_raised.add(q.name)
            self.events.emit("loop.queue_full", f"{q.name} cannot keep up: steps are being dropped "
                             f"(first at tick {step.index})", logging.ERROR, queue=q.name)
