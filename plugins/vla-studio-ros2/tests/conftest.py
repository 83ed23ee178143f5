"""Fixtures of the ROS 2 bridge's tests: a fake arm node with its Zenoh router, on loopback.

Run with the repository's test settings: ``python -m pytest -p tests.conftest
plugins/vla-studio-ros2/tests``.
"""

from __future__ import annotations

import pytest

from ros2_processes import FakeArmProcess


@pytest.fixture
def fake_arm(tmp_path):
    arm = FakeArmProcess(tmp_path / "fake_arm.log")
    arm.start()
    yield arm
    arm.stop()


@pytest.fixture
def pattern_arm(tmp_path):
    """The fake arm publishing known values (joint positions, pixels) for delivery checks."""
    arm = FakeArmProcess(tmp_path / "pattern_arm.log", pattern=True)
    arm.start()
    yield arm
    arm.stop()
