"""Fixtures of the Franka driver's tests: franky-sim on loopback, and a connected driver.

Run with the repository's test settings (headless Qt/MuJoCo, no silent skips):
``python -m pytest -p tests.conftest plugins/vla-studio-franka/tests``.
"""

from __future__ import annotations

import dataclasses

import pytest

from franka_sim_process import FrankaSimProcess
from vla_studio_franka.robot import FrankaConfig, FrankaRobot


@pytest.fixture(scope="session")
def franka_sim(tmp_path_factory):
    """One franky-sim child process for the session (each test connects afresh)."""
    sim = FrankaSimProcess(tmp_path_factory.mktemp("franky-sim") / "server.log")
    sim.start()
    yield sim
    sim.stop()


def franka_config(sim: FrankaSimProcess, **changes) -> FrankaConfig:
    base = FrankaConfig(name="fr3", hostname=sim.hostname, realtime="ignore",
                        relative_dynamics_factor=0.2)
    return dataclasses.replace(base, **changes)


@pytest.fixture
def connect_franka(franka_sim):
    """``connect_franka(action_kind="ee_delta", **config)``: a connected FrankaRobot, recovered
    and disconnected after the test."""
    robots: list[FrankaRobot] = []

    def connect(action_kind: str = "ee_delta", **changes) -> FrankaRobot:
        robot = FrankaRobot(franka_config(franka_sim, **changes), action_kind)
        robot.control_period_s = 0.05
        robot.connect()
        robots.append(robot)
        return robot

    yield connect
    for robot in robots:
        if robot.is_connected and robot.fault:
            robot.recover()
        robot.disconnect()
