"""The robot, camera, teleop and observer registries, and profile loading wired to them.

Built-in kinds are listed here; plugins add kinds through the entry-point groups
``vla_studio.robots``, ``vla_studio.cameras``, ``vla_studio.teleops`` and
``vla_studio.observers`` (see ``plugins/``).
"""

from __future__ import annotations

from pathlib import Path

from vla_studio.core.profile import StationProfile, load_profile
from vla_studio.core.registry import Registry
from vla_studio.devices.base import Robot, Teleop
from vla_studio.devices.cameras.base import Camera
from vla_studio.devices.observers import StationObserver

ROBOTS: Registry[Robot] = Registry("robot", "vla_studio.robots", {
    "null": "vla_studio.devices.robots.null:NullRobot",
    "sim": "vla_studio.devices.robots.sim:SimRobot",
}, Robot)

CAMERAS: Registry[Camera] = Registry("camera", "vla_studio.cameras", {
    "synthetic": "vla_studio.devices.cameras.synthetic:SyntheticCamera",
    "opencv": "vla_studio.devices.cameras.opencv:OpenCVCamera",
    "realsense": "vla_studio.devices.cameras.realsense:RealSenseCamera",
    "sim": "vla_studio.devices.cameras.sim:SimCamera",
}, Camera)

TELEOPS: Registry[Teleop] = Registry("teleop", "vla_studio.teleops", {
    "scripted": "vla_studio.devices.teleop.scripted:ScriptedTeleop",
    "keyboard": "vla_studio.devices.teleop.keyboard:KeyboardTeleop",
    "gamepad": "vla_studio.devices.teleop.gamepad:GamepadTeleop",
    "spacemouse": "vla_studio.devices.teleop.spacemouse:SpaceMouseTeleop",
}, Teleop)

# Watchers of a run (no built-in kind: e.g. vla-studio-ros2's "ros2" state publisher).
OBSERVERS: Registry[StationObserver] = Registry("observer", "vla_studio.observers", {},
                                                StationObserver)

REGISTRIES: dict[str, Registry] = {"robots": ROBOTS, "cameras": CAMERAS, "teleops": TELEOPS,
                                   "observers": OBSERVERS}


def config_class_for(group: str, type_name: str) -> type:
    """The config dataclass of device kind ``type_name`` in ``group`` (imports it lazily).

    Raises:
        LookupError: unknown kind, or a kind whose module cannot be imported.
    """
    return REGISTRIES[group].load(type_name).config_class


def load_station_profile(path: str | Path) -> StationProfile:
    """Load and validate a station profile against the installed device kinds."""
    return load_profile(path, config_class_for)
