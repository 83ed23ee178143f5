"""The Franka driver against franky-sim (libfranka's protocol on loopback, a MuJoCo FR3): state,
joint and Cartesian moves, the gripper, the watchdog, emergency holds, and faults raised by
libfranka itself (a reflex and a communication-constraint violation injected on the wire)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vla_studio.core.action_space import JOINT_POSITION
from vla_studio.devices.base import DeviceError
from vla_studio.devices.registry import ROBOTS
from vla_studio_franka.robot import FrankaConfig, FrankaRobot

from franka_rest import at_rest
from tests.waiting import wait_until

PERIOD = 0.05


def obs(robot) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in robot.get_observation().items()}


def ticks(robot, action, n: int) -> None:
    """``n`` control ticks of ``action`` at 20 Hz, as the loop does (observe, then send)."""
    for _ in range(n):
        robot.get_observation()
        robot.send_action(np.asarray(action, dtype=np.float64))
        time.sleep(PERIOD)


def drive_until(robot, action, predicate, timeout_s: float = 15.0) -> bool:
    """Control ticks of ``action`` at 20 Hz until ``predicate(observation)`` holds.

    franky-sim's physics runs in a Python 1 kHz loop that slows down when the machine is busy
    (simulated time then lags wall time): waits are for conditions, never fixed durations.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate(obs(robot)):
            return True
        robot.send_action(np.asarray(action, dtype=np.float64))
        time.sleep(PERIOD)
    return bool(predicate(obs(robot)))


def settle(robot) -> dict[str, np.ndarray]:
    """Hold, and wait until the arm has come to rest (simulated time may lag wall time)."""
    robot.hold(obs(robot))
    assert wait_until(lambda: at_rest(robot), timeout=15.0, interval=0.0)
    return obs(robot)


def test_kind_is_registered_and_its_schema_is_known_before_connecting():
    cls = ROBOTS.load("franka")
    assert cls is FrankaRobot and not cls.simulated
    robot = FrankaRobot(FrankaConfig(name="fr3"), JOINT_POSITION)  # no robot is contacted
    assert robot.action_space.dim == 8
    assert set(robot.observation_features) >= {"joint_pos", "ee_pos", "ee_quat", "ee_wrench",
                                                "gripper", "gripper_width"}
    limits = robot.joint_limits
    assert len(limits.names) == 7 and limits.lower[3] < limits.upper[3] < 0.0
    assert not robot.is_connected
    with pytest.raises(DeviceError, match="not connected"):
        robot.get_observation()


def test_a_missing_robot_fails_connect_with_what_to_check():
    # a loopback address nobody serves: the connection is refused at once
    robot = FrankaRobot(FrankaConfig(name="fr3", hostname="127.255.0.9", realtime="ignore"))
    with pytest.raises(DeviceError, match="cannot connect to the Franka at 127.255.0.9.*FCI"):
        robot.connect()
    assert not robot.is_connected


def test_state_has_joints_pose_gripper_and_the_external_wrench(connect_franka, franka_sim):
    robot = connect_franka()
    franka_sim.command("wrench", "1.5", "-2", "3", "0.1", "0.2", "-0.3")
    assert wait_until(lambda: obs(robot)["ee_wrench"][0] > 1.0, timeout=2.0)
    state = obs(robot)
    for key, feature in robot.observation_features.items():
        assert state[key].shape == feature.shape, key
        assert np.all(np.isfinite(state[key])), key
    np.testing.assert_allclose(state["ee_wrench"], [1.5, -2, 3, 0.1, 0.2, -0.3], atol=1e-5)
    # franky-sim starts the FR3 at its ready pose: the tool ~0.55 m ahead, pointing down
    assert 0.3 < state["ee_pos"][0] < 0.8 and 0.2 < state["ee_pos"][2] < 0.8
    assert abs(abs(state["ee_quat"][1]) - 1.0) < 0.05  # (w, x, y, z): x ~ +-1, tool down
    assert 0.0 <= state["gripper"][0] <= 1.0 and 0.0 < state["gripper_width"][0] < 0.09
    franka_sim.command("wrench", "0", "0", "0", "0", "0", "0")


def test_small_joint_move_reaches_its_target(connect_franka):
    robot = connect_franka(JOINT_POSITION)
    q0 = obs(robot)["joint_pos"]
    target = q0.copy()
    target[0] += 0.05
    target[6] -= 0.05
    assert drive_until(robot, [*target, 1.0],
                       lambda o: np.abs(o["joint_pos"] - target).max() < 0.01)
    np.testing.assert_allclose(robot.last_sent[:7], target)


def test_small_cartesian_move_follows_the_deltas(connect_franka):
    robot = connect_franka()
    p0 = obs(robot)["ee_pos"]
    assert drive_until(robot, [0.002, 0, 0, 0, 0, 0, 1.0],
                       lambda o: o["ee_pos"][0] > p0[0] + 0.03)
    state = settle(robot)
    moved = state["ee_pos"] - p0
    assert abs(moved[1]) < 0.005 and abs(moved[2]) < 0.005, moved  # straight along x
    assert drive_until(robot, [0, 0, -0.002, 0, 0, 0, 1.0],
                       lambda o: o["ee_pos"][2] < state["ee_pos"][2] - 0.01)
    assert abs(obs(robot)["ee_pos"][0] - state["ee_pos"][0]) < 0.005


def test_gripper_homes_at_connect_then_moves_and_grasps(connect_franka):
    robot = connect_franka(gripper_homing=True)
    width = lambda: float(obs(robot)["gripper_width"][0])  # noqa: E731
    reading = robot._gripper.latest()
    assert reading is not None and 0.07 < reading.max_width <= 0.081  # homing measured it
    ticks(robot, [0, 0, 0, 0, 0, 0, 0.5], 2)
    assert wait_until(lambda: abs(width() - 0.5 * reading.max_width) < 0.003, timeout=5.0)
    ticks(robot, [0, 0, 0, 0, 0, 0, 0.0], 2)  # close: a grasp
    assert wait_until(lambda: width() < 0.005, timeout=5.0)
    ticks(robot, [0, 0, 0, 0, 0, 0, 1.0], 2)
    assert wait_until(lambda: obs(robot)["gripper"][0] > 0.95, timeout=5.0)


def test_the_driver_holds_by_itself_when_commands_stop(connect_franka):
    robot = connect_franka(watchdog_periods=3.0)
    ticks(robot, [0.004, 0, 0, 0, 0, 0, 1.0], 6)  # moving, then VLA Studio goes silent
    assert wait_until(lambda: robot.watchdog_holds == 1, timeout=2.0)
    assert wait_until(lambda: at_rest(robot), timeout=15.0, interval=0.0)  # the arm stops
    assert at_rest(robot, 0.5)  # and stays
    assert robot.watchdog_holds == 1  # held once; it does not keep re-stopping a still arm


def test_emergency_hold_stops_a_running_move_and_no_later_command_restarts_it(connect_franka):
    robot = connect_franka()
    p0 = obs(robot)["ee_pos"]
    assert drive_until(robot, [0.006, 0, 0, 0, 0, 0, 1.0], lambda o: o["ee_pos"][0] > p0[0] + 0.01)
    robot.emergency_hold()  # as the e-stop relay does, from another thread
    assert wait_until(lambda: at_rest(robot), timeout=15.0, interval=0.0)
    held = obs(robot)["ee_pos"]
    ticks(robot, [0.006, 0, 0, 0, 0, 0, 1.0], 6)  # ticks already past their e-stop check
    time.sleep(0.2)
    assert np.linalg.norm(obs(robot)["ee_pos"] - held) < 0.001  # they would have gone 36 mm
    np.testing.assert_allclose(robot.last_sent[:6], 0.0)  # each one became a hold
    robot.release_emergency_hold()
    assert drive_until(robot, [0.006, 0, 0, 0, 0, 0, 1.0],
                       lambda o: o["ee_pos"][0] > held[0] + 0.01)  # moves again once released


@pytest.mark.parametrize("error", ["cartesian_reflex", "communication_constraints_violation"])
def test_a_libfranka_fault_holds_the_robot_with_one_line_until_recovered(
        connect_franka, franka_sim, error):
    robot = connect_franka()
    ticks(robot, [0.004, 0, 0, 0, 0, 0, 1.0], 4)
    franka_sim.command("reflex", error)  # the controller aborts the motion: libfranka raises
    assert wait_until(lambda: bool((robot.get_observation(), robot.fault)[1]), timeout=2.0)
    assert error in robot.fault and "\n" not in robot.fault
    assert "Recover robot" in robot.fault
    with pytest.raises(DeviceError, match=error):  # told once to the loop, which latches
        robot.hold(obs(robot))
    robot.hold(obs(robot))  # then it holds quietly
    with pytest.raises(DeviceError, match=error):  # and every motion command is refused
        robot.send_action(np.array([0.004, 0, 0, 0, 0, 0, 1.0]))
    robot.recover()
    assert robot.fault == ""
    held = obs(robot)["ee_pos"]
    assert drive_until(robot, [0.004, 0, 0, 0, 0, 0, 1.0],
                       lambda o: o["ee_pos"][0] > held[0] + 0.01)


def test_a_fault_the_watchdog_may_meet_first_still_reaches_the_loop(connect_franka, franka_sim):
    # 0.5 s of silence before the watchdog holds: time for the reflex to be in place first
    robot = connect_franka(watchdog_periods=10.0)
    ticks(robot, [0.004, 0, 0, 0, 0, 0, 1.0], 4)
    franka_sim.command("reflex", "cartesian_reflex")  # and the loop goes silent: the watchdog
    assert wait_until(lambda: robot.watchdog_holds == 1, timeout=3.0)  # holds the aborted motion
    # Whether its stop motion met the reflex or the next observation does, the loop is told
    # exactly once (a fault the watchdog met used to count as told and never latched the stop).
    assert wait_until(lambda: bool((robot.get_observation(), robot.fault)[1]), timeout=2.0)
    with pytest.raises(DeviceError, match="cartesian_reflex"):
        robot.hold(obs(robot))
    robot.hold(obs(robot))
    robot.recover()
    assert robot.fault == ""
