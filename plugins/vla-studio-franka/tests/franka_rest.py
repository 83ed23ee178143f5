"""Waiting for the simulated arm to come to rest, on the robot's own clock (tests only)."""

from __future__ import annotations

import time

import numpy as np


def at_rest(robot, seconds: float = 0.2, wall_timeout_s: float = 20.0) -> bool:
    """Whether the tool moved less than 0.2 mm while the robot's clock advanced ``seconds``.

    franky-sim's simulated time lags wall time on a busy machine (a quarter of real time was
    measured): a wall-clock window would see a slowly decelerating arm as still. The window is
    robot time (``RobotState.time``, ``FrankaRobot.robot_time_s``).
    """
    before = np.asarray(robot.get_observation()["ee_pos"], dtype=np.float64)
    t0, deadline = robot.robot_time_s, time.monotonic() + wall_timeout_s
    after = before
    while robot.robot_time_s - t0 < seconds:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
        after = np.asarray(robot.get_observation()["ee_pos"], dtype=np.float64)
    return float(np.linalg.norm(after - before)) < 0.0002
