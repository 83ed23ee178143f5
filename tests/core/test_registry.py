"""Device/policy registries: built-ins, lazy import, plugins through entry points."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from vla_studio.core.registry import Registry, RegistryError
from vla_studio.core.types import Observation
from vla_studio.devices.base import Robot
from vla_studio.devices.cameras.base import Camera
from vla_studio.devices.registry import CAMERAS, ROBOTS
from vla_studio.policies.base import Policy
from vla_studio.policies.registry import POLICIES


def test_builtin_kinds_are_listed_without_importing_them():
    reg = Registry("robot", "vla_studio.test_robots", {"lazy": "tests.core.lazy_robot_module:Nope"}, Robot)
    assert reg.names() == ["lazy"]
    assert "tests.core.lazy_robot_module" not in sys.modules


def test_unknown_kind_lists_the_installed_ones():
    with pytest.raises(RegistryError, match="installed robot types: .*null"):
        ROBOTS.load("ur5e")


def test_missing_module_says_what_to_install():
    reg = Registry("camera", "vla_studio.test_cameras", {"x": "no_such_driver_pkg.cam:Cam"}, Camera)
    with pytest.raises(RegistryError, match="no_such_driver_pkg.*pip install"):
        reg.load("x")


def test_a_class_of_the_wrong_kind_is_refused():
    reg = Registry("robot", "vla_studio.test_robots", {"cam": "vla_studio.devices.cameras.synthetic:SyntheticCamera"}, Robot)
    with pytest.raises(RegistryError, match="not a Robot subclass"):
        reg.load("cam")


def test_plugin_camera_is_discovered_through_its_entry_point_and_streams():
    info = CAMERAS.infos()["test_pattern"]
    assert info.origin.startswith("plugin vla-studio-example")
    cls = CAMERAS.load("test_pattern")
    cam = cls(cls.config_class(name="pattern", width=64, height=48, fps=50, square=8))
    cam.connect()
    try:
        frame = cam.wait_for_frame(timeout_s=3.0)
        assert frame is not None and frame.color.shape == (48, 64, 3)
        later = cam.wait_for_frame(frame.index, timeout_s=3.0)
        assert later.index > frame.index and later.t_capture > frame.t_capture
    finally:
        cam.disconnect()


def test_plugin_policy_is_discovered_and_produces_chunks():
    assert POLICIES.infos()["circle"].origin.startswith("plugin vla-studio-example")
    cls = POLICIES.load("circle")
    assert issubclass(cls, Policy)
    policy = cls()
    policy.reset("draw a circle")
    chunk = policy.infer(Observation(0, time.monotonic(), {}))
    assert chunk.actions.shape == (policy.spec.chunk_size, 7)
    assert np.all(chunk.actions[:, 6] == 1.0)
    speeds = np.linalg.norm(chunk.actions[:, :2], axis=1)
    assert np.allclose(speeds, speeds[0]) and speeds[0] > 0
