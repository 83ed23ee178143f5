"""The loop with a broken robot state, and the command gate in front of the robot."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.waiting import wait_until
from vla_studio.core.arbiter import FixedActionSource, SourceArbiter
from vla_studio.core.events import EventBus
from vla_studio.core.loop import ControlLoop
from vla_studio.core.safety import EStopLatch, FilterResult, SafetyFlag, SafetyLimits
from vla_studio.core.session import ControlMode, Session
from vla_studio.core.types import SourceKind
from vla_studio.devices.robots.null import NullRobot

RATE = 50.0
MOVE = np.array([0.001, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


class RecordingRobot(NullRobot):
    """A NullRobot that keeps every command it received and can report a broken state."""

    def __init__(self, action_kind: str = "ee_delta") -> None:
        super().__init__(action_kind=action_kind)
        self.received: list[np.ndarray] = []
        self.broken: dict | None = None  # replaces keys of the state while set
        self.drop: set[str] = set()  # keys left out of the state while set
        self._received_lock = threading.Lock()

    def get_observation(self) -> dict[str, np.ndarray]:
        obs = super().get_observation()
        obs.update(self.broken or {})
        return {k: v for k, v in obs.items() if k not in self.drop}

    def _send(self, action: np.ndarray) -> np.ndarray:
        with self._received_lock:
            self.received.append(np.array(action))
        return super()._send(action)

    def commands(self) -> list[np.ndarray]:
        with self._received_lock:
            return list(self.received)


def make_loop(robot: RecordingRobot, source_action: np.ndarray):
    latch = EStopLatch()
    session = Session(latch)
    limits = SafetyLimits()
    arbiter = SourceArbiter(limits)
    arbiter.set_teleop(FixedActionSource(source_action))
    events = EventBus()
    seen = []
    events.subscribe(seen.append)
    robot.connect()
    loop = ControlLoop(robot, {}, arbiter, session, limits, RATE, events=events)
    return loop, session, latch, seen


@pytest.fixture
def loops():
    made = []
    yield made
    for loop in made:
        loop.stop()


def test_nan_in_the_ee_pos_never_becomes_a_nan_command(loops):
    robot = RecordingRobot()
    loop, session, latch, seen = make_loop(robot, MOVE)
    loops.append(loop)
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_until(lambda: robot.sends - robot.holds > 3)
    robot.broken = {"ee_pos": np.array([np.nan, 0.0, 0.3], np.float32)}
    assert wait_until(lambda: loop.counters.snapshot().get("STATE_INVALID", 0) >= 5)
    step = loop.snapshot.get()
    assert step.source == SourceKind.HOLD and step.safety_flags & SafetyFlag.STATE_INVALID
    assert "ee_pos" in step.hold_reason
    assert all(np.all(np.isfinite(c)) for c in robot.commands()), "a NaN command reached the robot"
    assert loop.counters.snapshot().get("CLIPPED_WORKSPACE", 0) == 0  # not disguised as a clip
    assert [e.kind for e in seen].count("safety.state_invalid") == 1
    robot.broken = None  # the state heals: the operator is told, and motion resumes
    moves = robot.sends - robot.holds
    assert wait_until(lambda: robot.sends - robot.holds > moves + 3)
    assert wait_until(lambda: "safety.state_valid" in [e.kind for e in seen])
    assert [e.kind for e in seen].count("safety.state_valid") == 1


def test_a_flickering_state_is_one_alarm_not_one_per_tick(loops):
    robot = RecordingRobot()
    loop, session, latch, seen = make_loop(robot, MOVE)
    loops.append(loop)
    flip = {"n": 0}
    original = robot.get_observation

    def flickering() -> dict:
        flip["n"] += 1
        obs = original()
        if flip["n"] % 2:
            obs["ee_pos"] = np.full(3, np.nan, np.float32)
        return obs

    robot.get_observation = flickering
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_until(lambda: loop.counters.snapshot().get("STATE_INVALID", 0) >= 20)
    kinds = [e.kind for e in seen]
    assert kinds.count("safety.state_invalid") == 1 and "safety.state_valid" not in kinds


def test_missing_joint_pos_holds_at_the_last_valid_pose_and_the_loop_keeps_running(loops):
    robot = RecordingRobot("joint_position")
    target = np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    loop, session, latch, seen = make_loop(robot, target)
    loops.append(loop)
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_until(lambda: robot.sends - robot.holds > 3)
    robot.drop = {"joint_pos"}
    assert wait_until(lambda: loop.counters.snapshot().get("STATE_INVALID", 0) >= 5)
    assert loop.is_running and not latch.is_tripped
    step = loop.snapshot.get()
    assert step.source == SourceKind.HOLD and "joint_pos" in step.hold_reason
    assert "joint_pos" in next(e for e in seen if e.kind == "safety.state_invalid").message
    last_valid = loop._last_valid_state["joint_pos"]
    np.testing.assert_allclose(robot.commands()[-1][:7], last_valid, atol=1e-6)
    robot.broken = {"joint_pos": np.full(7, np.nan, np.float32)}  # NaN instead of missing
    robot.drop = set()
    ticks = loop.stats.snapshot().ticks
    assert wait_until(lambda: loop.stats.snapshot().ticks > ticks + 5)
    assert all(np.all(np.isfinite(c)) for c in robot.commands())
    assert loop.is_running


def test_the_gate_holds_a_command_the_filter_let_through(loops):
    robot = RecordingRobot()
    loop, session, latch, seen = make_loop(robot, MOVE)
    loops.append(loop)
    jump = np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # 30 cm in one step
    loop.filter.apply = lambda action, state: FilterResult(jump.copy(), SafetyFlag.NONE)  # a bug
    session.start(ControlMode.TELEOP)
    loop.start()
    assert wait_until(lambda: loop.counters.snapshot().get("GATE_REJECTED", 0) >= 3)
    step = loop.snapshot.get()
    assert step.source == SourceKind.HOLD and step.hold_reason.startswith("command gate:")
    assert robot.sends == robot.holds, "the gate let a 30 cm jump reach the robot"
