"""A stop no driver call can block (DESIGN.md safety invariant 5): the latch's relay thread,
emergency_hold, deadlines on robot calls, and a loop that survives a stuck driver or a crash."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from tests.waiting import wait_until
from vla_studio.core.arbiter import FixedActionSource, SourceArbiter
from vla_studio.core.events import EventBus
from vla_studio.core.loop import ControlLoop
from vla_studio.core.robot_calls import RobotUnresponsive
from vla_studio.core.safety import EStopLatch, SafetyFlag, SafetyLimits
from vla_studio.core.session import ControlMode, Session
from vla_studio.core.types import SourceKind
from vla_studio.devices.robots.null import NullRobot

RATE = 50.0
MOVE = np.array([0.001, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


class BlockingRobot(NullRobot):
    """A NullRobot whose next send can be made to block (a stuck network or USB driver)."""

    def __init__(self) -> None:
        super().__init__()
        self.block_next = threading.Event()
        self.blocked = threading.Event()  # set while a send is blocked
        self.unblock = threading.Event()
        self.fail_sends = False

    def _send(self, action: np.ndarray) -> np.ndarray:
        if self.fail_sends:
            raise ConnectionError("robot refused the command")
        if self.block_next.is_set():
            self.block_next.clear()
            self.blocked.set()
            self.unblock.wait(30.0)
            self.blocked.clear()
        return super()._send(action)


@pytest.fixture
def rig():
    robot = BlockingRobot()
    robot.connect()
    latch = EStopLatch()
    session = Session(latch)
    limits = SafetyLimits(robot_deadline_ms=100.0)
    arbiter = SourceArbiter(limits)
    arbiter.set_teleop(FixedActionSource(MOVE))
    events = EventBus()
    seen = []
    events.subscribe(seen.append)
    loop = ControlLoop(robot, {}, arbiter, session, limits, RATE, events=events)
    yield robot, latch, session, loop, seen
    robot.unblock.set()
    loop.stop()


def test_the_latch_calls_emergency_hold_from_its_own_thread():
    latch = EStopLatch()
    calls = []
    latch.add_emergency_hold(lambda: calls.append(threading.current_thread().name))
    latch.start()
    try:
        trigger = threading.Thread(target=latch.trigger, args=("test", "gui"), name="gui")
        trigger.start()
        trigger.join()
        assert wait_until(lambda: calls == ["estop-relay"])
        latch.trigger("again", "gui")  # already latched: no second delivery
        time.sleep(0.05)
        assert calls == ["estop-relay"]
    finally:
        latch.stop()
    assert not any(t.name == "estop-relay" for t in threading.enumerate())


def test_the_stop_reaches_a_robot_whose_send_action_is_blocked(rig):
    robot, latch, session, loop, seen = rig
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_until(lambda: robot.sends - robot.holds > 3)
    robot.block_next.set()
    assert robot.blocked.wait(2.0)
    threading.Thread(target=latch.trigger, args=("operator stop", "gui")).start()
    assert wait_until(lambda: robot.emergency_times, timeout=1.0), \
        "the stop waited for the blocked driver call"
    assert robot.blocked.is_set()  # delivered while the loop thread was still stuck
    assert robot.emergency_held
    # past the deadline a fresh loop thread carries on without the robot
    ticks = loop.stats.snapshot().ticks
    assert wait_until(lambda: loop.stats.snapshot().ticks > ticks + 5)
    step = loop.snapshot.get()
    assert step.safety_flags & SafetyFlag.ROBOT_UNRESPONSIVE
    assert step.hold_reason.startswith("robot not responding")
    assert np.all(np.isnan(step.action))  # nothing reached the robot on that tick
    assert any(t.name == "control-loop-stuck" for t in threading.enumerate())
    moves = robot.sends - robot.holds
    robot.unblock.set()  # the driver answers at last: the stuck thread leaves, holds resume
    holds = robot.holds
    assert wait_until(lambda: robot.holds > holds + 3)
    assert wait_until(lambda: all(t.name != "control-loop-stuck" for t in threading.enumerate()))
    assert robot.sends - robot.holds <= moves + 1  # only the blocked send itself completed
    assert loop.is_running


def test_a_robot_call_that_misses_its_deadline_latches_the_stop(rig):
    robot, latch, session, loop, seen = rig
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_until(lambda: robot.sends - robot.holds > 3)
    robot.block_next.set()
    assert wait_until(lambda: latch.is_tripped, timeout=2.0)
    assert latch.event.origin == "robot-deadline"
    assert "send_action() did not return within 100 ms" in latch.event.reason
    assert wait_until(lambda: robot.emergency_times)
    event = next(e for e in seen if e.kind == "robot.unresponsive")
    assert event.level == logging.ERROR and "send_action()" in event.message


def test_loop_calls_fail_fast_while_a_robot_call_is_stuck(rig):
    robot, latch, session, loop, seen = rig
    session.start(ControlMode.TELEOP)
    loop.start()
    robot.block_next.set()
    assert robot.blocked.wait(2.0)
    assert wait_until(lambda: any(t.name == "control-loop-stuck" for t in threading.enumerate()))
    with pytest.raises(RobotUnresponsive, match="send_action"):
        loop.call_on_loop(lambda: robot.reset_episode(), timeout_s=2.0)


def test_emergency_hold_turns_every_command_into_a_hold_until_released():
    robot = NullRobot()
    robot.connect()
    robot.send_action(MOVE)
    pos = robot.get_observation()["ee_pos"].copy()
    threading.Thread(target=robot.emergency_hold).start()
    assert wait_until(lambda: robot.emergency_held)
    for _ in range(5):
        sent = robot.send_action(MOVE)
    np.testing.assert_array_equal(robot.get_observation()["ee_pos"], pos)
    np.testing.assert_array_equal(sent, [0, 0, 0, 0, 0, 0, 1.0])
    robot.release_emergency_hold()
    robot.send_action(MOVE)
    assert robot.get_observation()["ee_pos"][0] > pos[0]


def test_the_loop_releases_the_emergency_hold_only_after_a_reset(rig):
    robot, latch, session, loop, seen = rig
    loop.start()
    latch.trigger("test", "test")
    assert wait_until(lambda: robot.emergency_held)
    time.sleep(0.1)
    assert robot.emergency_held  # still latched: the driver stays held
    latch.request_reset()
    assert latch.confirm_reset()
    assert wait_until(lambda: not robot.emergency_held)
    session.start(ControlMode.TELEOP)
    moves = robot.sends - robot.holds
    assert wait_until(lambda: robot.sends - robot.holds > moves + 2)


def test_a_loop_crash_holds_the_robot_latches_and_publishes_loop_crashed(rig):
    robot, latch, session, loop, seen = rig
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_until(lambda: robot.sends - robot.holds > 3)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the loop")

    holds = robot.holds
    loop.counters.record = broken
    assert wait_until(lambda: not loop.is_running)
    assert latch.is_tripped
    assert latch.event.reason.startswith("control loop crashed")
    assert "ZeroDivisionError" in latch.event.reason
    event = next(e for e in seen if e.kind == "loop.crashed")
    assert event.level == logging.ERROR and "held" in event.message
    assert robot.holds > holds  # the loop's last word was a hold
    assert wait_until(lambda: robot.emergency_times)  # and the relay sent the emergency hold


def test_a_robot_that_keeps_failing_is_logged_once_with_a_summary(rig, caplog):
    robot, latch, session, loop, seen = rig
    robot.fail_sends = True
    with caplog.at_level(logging.INFO, logger="vla_studio.core.loop"):
        loop.start()
        assert wait_until(lambda: loop.stats.snapshot().ticks > 20)
        failures = [r for r in caplog.records if r.name == "vla_studio.core.loop"
                    and "robot command failed" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in failures]
        assert failures[0].exc_info is not None  # the first one carries the traceback
        robot.fail_sends = False
        assert wait_until(lambda: any("robot command failed cleared" in r.getMessage()
                                      for r in caplog.records), timeout=5.0)
    assert loop.snapshot.get().source == SourceKind.HOLD
