"""Fixtures of the Franka driver's tests: franky-sim on loopback, and a connected driver.

Run with the repository's test settings (headless Qt/MuJoCo, no silent skips):
``python -m pytest -p tests.conftest plugins/vla-studio-franka/tests``.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from franka_rest import at_rest
from franka_sim_process import SIM_NICE, FrankaSimProcess
from vla_studio_franka.robot import FrankaConfig, FrankaRobot

from tests.waiting import wait_until

# The window tests need Qt: the Qt-free run (VLA_STUDIO_NO_QT=1) leaves them to the GUI suite.
collect_ignore = ["test_franka_window.py"] if os.environ.get("VLA_STUDIO_NO_QT") == "1" else []


@pytest.fixture(scope="session")
def franka_sim_process(tmp_path_factory):
    """One franky-sim child process for the session (each test connects afresh).

    Both ends of libfranka's 1 kHz exchange run ahead of ordinary work, as they do on a real
    cell (the robot's controller on its own hardware, libfranka's thread with realtime priority
    on a PREEMPT_RT kernel): franky-sim (see ``franka_sim_process``) and this process's threads
    started from now on, which include franky's motion threads. On a busy 2-core machine
    franky otherwise misses state packets, extrapolates over the gap and its motion planner
    fails (Ruckig -101/-110/-111, measured). Without the permission both run as they are.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, 0, SIM_NICE)  # this thread; new threads inherit it
    except OSError:
        pass
    sim = FrankaSimProcess(tmp_path_factory.mktemp("franky-sim") / "server.log")
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def franka_sim(franka_sim_process):
    """The session's franky-sim, with the arm put back on its start pose at rest first.

    Each test starts from the same pose, as on a test cell: otherwise each began where the
    previous one left the arm, and their moves added up (to near full reach, where the
    simulated joints spun at 10-20 rad/s and franky's planner failed).
    """
    franka_sim_process.command("home")
    return franka_sim_process


def franka_config(sim: FrankaSimProcess, **changes) -> FrankaConfig:
    base = FrankaConfig(name="fr3", hostname=sim.hostname, realtime="ignore",
                        relative_dynamics_factor=0.2, planner_restarts=3)  # as the example
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
        # The arm may still be settling from the previous test's motion (simulated time lags
        # on a busy machine): each test starts from rest.
        assert wait_until(lambda: at_rest(robot), timeout=15.0, interval=0.0), "arm not at rest"
        return robot

    yield connect
    for robot in robots:
        if robot.is_connected and robot.fault:
            robot.recover()
        robot.disconnect()
