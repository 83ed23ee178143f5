"""Fixtures of the ROS 2 bridge's tests: a fake arm node with its Zenoh router, on loopback.

Run with the repository's test settings: ``python -m pytest -p tests.conftest
plugins/vla-studio-ros2/tests``.
"""

from __future__ import annotations

import os

import pytest

from ros2_processes import FakeArmProcess

# The window test needs Qt: the Qt-free run (VLA_STUDIO_NO_QT=1) leaves it to the GUI suite.
collect_ignore = ["test_ros2_window.py"] if os.environ.get("VLA_STUDIO_NO_QT") == "1" else []


@pytest.fixture(scope="session")
def fake_arm_process(tmp_path_factory):
    """One fake arm node (and router) for the session: starting one takes ~2.5 s."""
    arm = FakeArmProcess(tmp_path_factory.mktemp("fake-arm") / "fake_arm.log")
    arm.start()
    yield arm
    arm.stop()


@pytest.fixture
def fake_arm(fake_arm_process):
    """The session's fake arm, back at its start state (pose, joints, no stop, nothing heard)."""
    assert fake_arm_process.command("reset") == "ok reset"
    fake_arm_process.estop_events.clear()
    return fake_arm_process


@pytest.fixture
def pattern_arm(tmp_path):
    """The fake arm publishing known values (joint positions, pixels) for delivery checks."""
    arm = FakeArmProcess(tmp_path / "pattern_arm.log", pattern=True)
    arm.start()
    yield arm
    arm.stop()
