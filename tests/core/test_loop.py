"""The control loop: stages, arbitration, watchdogs and the e-stop path (safety invariants 1-4)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.waiting import wait_until as wait_for
from vla_studio.core.arbiter import ActionSource, FixedActionSource, Proposal, SourceArbiter
from vla_studio.core.events import EventBus
from vla_studio.core.loop import ControlLoop
from vla_studio.core.safety import EStopLatch, Heartbeat, SafetyFlag, SafetyLimits
from vla_studio.core.session import ControlMode, RunState, Session
from vla_studio.core.types import Observation, SourceKind
from vla_studio.devices.robots.null import NullRobot, NullRobotConfig

MOVE = np.array([0.001, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
RATE = 50.0
PERIOD = 1.0 / RATE


class StaleSource(ActionSource):
    """A source whose input stopped arriving ``age_s`` ago (an unplugged device)."""

    def __init__(self, age_s: float, kind: SourceKind = SourceKind.TELEOP) -> None:
        self.kind, self.age_s = kind, age_s

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        return Proposal(MOVE, now - self.age_s)


class HungPolicySource(ActionSource):
    """A policy whose inference thread is stuck forever after its first chunk."""

    kind = SourceKind.POLICY

    def __init__(self) -> None:
        self.release = threading.Event()
        self.first_chunk_at = time.monotonic()
        self.flushed = threading.Event()
        self._thread = threading.Thread(target=self.release.wait, name="hung-model", daemon=True)
        self._thread.start()

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        return Proposal(MOVE, self.first_chunk_at)  # the chunk never gets refreshed

    def flush(self) -> None:
        self.flushed.set()

    def close(self) -> None:
        self.release.set()
        self._thread.join()


class FreshPolicySource(ActionSource):
    """A policy that keeps proposing a move stamped at the tick (its chunks keep arriving)."""

    kind = SourceKind.POLICY

    def __init__(self) -> None:
        self.flushed = threading.Event()

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        return Proposal(MOVE, now)

    def flush(self) -> None:
        self.flushed.set()


class FutureStampSource(ActionSource):
    """A source that stamps with a clock running ``ahead_s`` ahead of the host's (a remote
    server's clock passed through unconverted)."""

    def __init__(self, ahead_s: float, kind: SourceKind = SourceKind.TELEOP) -> None:
        self.kind, self.ahead_s = kind, ahead_s

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        return Proposal(MOVE, time.monotonic() + self.ahead_s)


@pytest.fixture
def rig():
    robot = NullRobot()
    robot.connect()
    latch = EStopLatch()
    session = Session(latch)
    limits = SafetyLimits(teleop_timeout_ms=100, policy_timeout_ms=300, gui_heartbeat_timeout_ms=200,
                          overrun_alarm_streak=3)
    arbiter = SourceArbiter(limits)
    events = EventBus()
    loop = ControlLoop(robot, {}, arbiter, session, limits, RATE, events=events)
    yield robot, latch, session, arbiter, loop, events
    loop.stop()


def test_loop_emits_every_step_with_stage_timing_and_sent_action(rig):
    robot, latch, session, arbiter, loop, _ = rig
    arbiter.set_teleop(FixedActionSource(MOVE))
    q = loop.subscribe("test", 1000)
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_for(lambda: q.qsize() >= 10)
    loop.stop()
    steps = [q.get(0) for _ in range(q.qsize())]
    assert [s.index for s in steps] == list(range(steps[0].index, steps[0].index + len(steps)))
    moving = [s for s in steps if s.source == SourceKind.TELEOP]
    assert moving, "the teleop source never drove the robot"
    np.testing.assert_allclose(moving[-1].action, MOVE)
    assert all(s.timing.total_ms >= 0 and s.t > 0 for s in steps)
    assert robot.sends >= len(steps)
    assert loop.stats.snapshot().ticks >= len(steps)


def test_paused_session_holds_the_robot(rig):
    robot, latch, session, arbiter, loop, _ = rig
    arbiter.set_teleop(FixedActionSource(MOVE))
    loop.start()
    assert wait_for(lambda: robot.holds >= 5)
    step = loop.snapshot.get()
    assert step.source == SourceKind.HOLD and step.hold_reason.startswith("paused")
    assert robot.sends == robot.holds


def test_estop_halts_robot_within_one_tick_and_flushes_the_policy(rig):
    robot, latch, session, arbiter, loop, _ = rig
    policy = FreshPolicySource()  # the policy keeps moving the robot until the stop
    arbiter.set_policy(policy)
    session.start(ControlMode.POLICY)
    loop.start()
    assert wait_for(lambda: robot.sends - robot.holds > 5)
    holds_before = len(robot.hold_times)
    threading.Thread(target=latch.trigger, args=("test stop", "test")).start()
    assert wait_for(lambda: latch.is_tripped)
    t_trigger = latch.event.t
    assert wait_for(lambda: any(t >= t_trigger for t in robot.hold_times[holds_before:]))
    first_hold = next(t for t in robot.hold_times[holds_before:] if t >= t_trigger)
    assert first_hold - t_trigger <= PERIOD
    assert policy.flushed.wait(1.0)
    sends_at_stop = robot.sends - robot.holds
    time.sleep(5 * PERIOD)
    assert robot.sends - robot.holds == sends_at_stop, "the robot moved after the stop"
    assert loop.snapshot.get().safety_flags & SafetyFlag.ESTOP


def test_stale_teleop_input_holds_and_is_counted(rig):
    robot, latch, session, arbiter, loop, _ = rig
    arbiter.set_teleop(StaleSource(age_s=0.5))
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_for(lambda: loop.counters.snapshot().get("TELEOP_STALE", 0) >= 3)
    step = loop.snapshot.get()
    assert step.source == SourceKind.HOLD and "stale" in step.hold_reason
    assert robot.sends == robot.holds


@pytest.mark.parametrize("kind", [SourceKind.TELEOP, SourceKind.POLICY])
def test_proposal_stamped_in_the_future_holds_and_is_flagged(rig, kind):
    robot, latch, session, arbiter, loop, _ = rig
    source = FutureStampSource(ahead_s=3600.0, kind=kind)  # "always fresh" is a clock bug
    if kind == SourceKind.POLICY:
        arbiter.set_policy(source)
    else:
        arbiter.set_teleop(source)
    session.start(ControlMode.POLICY if kind == SourceKind.POLICY else ControlMode.TELEOP)
    loop.start()
    assert wait_for(lambda: loop.counters.snapshot().get("STAMP_INVALID", 0) >= 3)
    step = loop.snapshot.get()
    assert step.source == SourceKind.HOLD and "future" in step.hold_reason
    assert step.safety_flags & SafetyFlag.STAMP_INVALID
    assert robot.sends == robot.holds, "a future-stamped proposal moved the robot"


def test_stale_policy_chunk_holds(rig):
    robot, latch, session, arbiter, loop, _ = rig
    policy = HungPolicySource()  # its only chunk ages past policy_timeout_ms
    arbiter.set_policy(policy)
    session.start(ControlMode.POLICY)
    loop.start()
    assert wait_for(lambda: loop.counters.snapshot().get("POLICY_STALE", 0) >= 3)
    assert loop.snapshot.get().source == SourceKind.HOLD
    policy.close()


def test_missing_gui_heartbeat_pauses_a_policy_run(rig):
    robot, latch, session, arbiter, loop, events = rig
    arbiter.set_policy(FreshPolicySource())
    loop.heartbeat = Heartbeat()  # beaten once, then the "GUI" goes silent
    seen = []
    events.subscribe(seen.append)
    session.start(ControlMode.POLICY)
    loop.start()
    assert wait_for(lambda: session.state == RunState.PAUSED, timeout=2.0)
    assert "heartbeat" in session.snapshot.reason
    # the counter is written at the end of the tick that paused: wait for it, do not race it
    assert wait_for(lambda: loop.counters.snapshot().get("HEARTBEAT_LOST") == 1)
    assert any(e.kind == "safety.heartbeat" for e in seen)


def test_heartbeat_is_not_required_for_teleop(rig):
    robot, latch, session, arbiter, loop, _ = rig
    arbiter.set_teleop(FixedActionSource(MOVE))
    loop.heartbeat = Heartbeat()
    session.start(ControlMode.TELEOP)
    loop.start()
    time.sleep(0.4)  # twice the heartbeat timeout
    assert session.state == RunState.RUNNING


def test_intervention_overrides_the_policy(rig):
    robot, latch, session, arbiter, loop, _ = rig
    policy = FixedActionSource(MOVE, kind=SourceKind.POLICY)
    human = FixedActionSource(np.array([0, 0.002, 0, 0, 0, 0, 0.0]))
    arbiter.set_policy(policy)
    arbiter.set_teleop(human)
    q = loop.subscribe("test", 1000)
    session.start(ControlMode.POLICY)
    loop.start()
    assert wait_for(lambda: q.qsize() > 3)
    human.takeover = True
    assert wait_for(lambda: loop.snapshot.get().source == SourceKind.INTERVENTION)
    np.testing.assert_allclose(loop.snapshot.get().action, [0, 0.002, 0, 0, 0, 0, 0.0])
    human.takeover = False
    assert wait_for(lambda: loop.snapshot.get().source == SourceKind.POLICY)


def test_nan_action_is_rejected_held_and_counted(rig):
    robot, latch, session, arbiter, loop, _ = rig
    arbiter.set_teleop(FixedActionSource(np.array([np.nan, 0, 0, 0, 0, 0, 1.0])))
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_for(lambda: loop.counters.snapshot().get("REJECTED_NONFINITE", 0) >= 2)
    step = loop.snapshot.get()
    assert step.source == SourceKind.HOLD and np.all(np.isfinite(step.action))
    assert np.isnan(step.requested[0])  # what was asked is kept for the record


def test_full_subscriber_queue_never_blocks_the_loop(rig):
    robot, latch, session, arbiter, loop, events = rig
    seen = []
    events.subscribe(seen.append)
    q = loop.subscribe("slow recorder", maxsize=2)  # never consumed
    loop.start()
    assert wait_for(lambda: loop.stats.snapshot().ticks >= 20)
    assert q.dropped >= 10
    assert [e.kind for e in seen].count("loop.queue_full") == 1
    assert loop.counters.snapshot()["STEP_QUEUE_FULL"] >= 10


def test_robot_state_failure_latches_the_estop(rig):
    robot, latch, session, arbiter, loop, _ = rig

    def broken() -> dict:
        raise ConnectionError("cable unplugged")

    loop.start()
    assert wait_for(lambda: robot.holds > 2)
    robot.get_observation = broken
    assert wait_for(lambda: latch.is_tripped)
    assert "cable unplugged" in latch.event.reason


def test_overrun_streak_raises_one_alarm(rig):
    _, latch, session, arbiter, _, _ = rig
    slow = NullRobot(NullRobotConfig(name="slow", send_delay_ms=30.0))  # 30 ms > 20 ms period
    slow.connect()
    events = EventBus()
    seen = []
    events.subscribe(seen.append)
    loop = ControlLoop(slow, {}, arbiter, session, SafetyLimits(overrun_alarm_streak=3), RATE,
                       events=events)
    loop.start()
    assert wait_for(lambda: loop.stats.overruns >= 6)
    loop.stop()
    assert sum(e.kind == "loop.overrun" for e in seen) >= 1
    assert loop.stats.skipped_ticks >= 1  # late ticks are skipped, never burst


def test_call_on_loop_runs_on_the_loop_thread_and_reraises(rig):
    _, _, _, _, loop, _ = rig
    loop.start()
    assert loop.call_on_loop(lambda: threading.current_thread().name) == "control-loop"
    with pytest.raises(ZeroDivisionError):
        loop.call_on_loop(lambda: 1 / 0)


def test_stop_joins_the_thread_and_leaves_the_robot_holding(rig):
    robot, _, _, _, loop, _ = rig
    loop.start()
    assert wait_for(lambda: robot.holds > 0)
    loop.stop()
    assert not loop.is_running
    assert not any(t.name == "control-loop" for t in threading.enumerate())


class BurstySlowRobot(NullRobot):
    """Slow (30 ms > the 20 ms period) on four sends out of six: overrun streaks come and go."""

    def __init__(self) -> None:
        super().__init__(NullRobotConfig(name="bursty"))
        self._n = 0

    def _send(self, action: np.ndarray) -> np.ndarray:
        self._n += 1
        if self._n % 6 < 4:
            time.sleep(0.03)
        return super()._send(action)


def test_repeated_overrun_streaks_raise_one_event_and_are_all_counted(rig):
    _, latch, session, arbiter, _, _ = rig
    robot = BurstySlowRobot()
    robot.connect()
    events = EventBus()
    seen = []
    events.subscribe(seen.append)
    loop = ControlLoop(robot, {}, arbiter, session, SafetyLimits(overrun_alarm_streak=2), RATE,
                       events=events)
    loop.start()
    try:
        assert wait_for(lambda: loop.counters.snapshot().get("OVERRUN_ALARM", 0) >= 4, timeout=10)
    finally:
        loop.stop()
    assert [e.kind for e in seen].count("loop.overrun") == 1


class GatedPolicySource(ActionSource):
    """A policy that moves every tick; when ``gate`` is set, its next ``propose`` waits for
    ``release`` (so a test can trip and reset the latch in the middle of one tick)."""

    kind = SourceKind.POLICY

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.flushes = 0

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        if self.gate.is_set():
            self.gate.clear()
            self.entered.set()
            self.release.wait(2.0)
        return Proposal(MOVE, now)

    def flush(self) -> None:
        self.flushes += 1


def test_a_stop_reset_within_one_tick_still_holds_and_flushes(rig):
    """A stop latched and reset before the loop thread looked at the latch (here: while the
    tick was deciding) still holds that tick and flushes every source: the loop notices every
    trigger, not only a latch it finds tripped."""
    robot, latch, session, arbiter, loop, _ = rig
    policy = GatedPolicySource()
    arbiter.set_policy(policy)
    q = loop.subscribe("test", 10_000)
    session.start(ControlMode.POLICY)
    loop.start()
    assert wait_for(lambda: robot.sends - robot.holds > 3)
    policy.gate.set()
    assert policy.entered.wait(2.0)  # the loop thread is inside this tick's propose
    flushes_before = policy.flushes
    latch.trigger("test stop", "test")
    latch.request_reset()
    assert latch.confirm_reset() and not latch.is_tripped
    moves_before = robot.sends - robot.holds
    policy.release.set()
    assert wait_for(lambda: policy.flushes > flushes_before, timeout=1.0), \
        "the loop never flushed its sources for a stop that was reset within one tick"
    time.sleep(3 * PERIOD)
    assert robot.sends - robot.holds == moves_before, "the tick of the stop moved the robot"
    steps = [q.get(0) for _ in range(q.qsize())]
    assert any(s.safety_flags & SafetyFlag.ESTOP for s in steps)
    assert session.state == RunState.PAUSED
