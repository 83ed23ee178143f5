"""An operator's first minutes on the default station (the MuJoCo tabletop), in the real window:
the keyboard and a (virtual) gamepad drive the simulated arm and its gripper, unplugging the pad
holds the arm, and the pad's STOP latches the e-stop."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.types import SourceKind
from vla_studio.devices.teleop.virtual_gamepad import VirtualGamepad


def ee(station) -> np.ndarray:
    return np.asarray(station.robot.get_observation()["ee_pos"], dtype=float).copy()


def gripper(station) -> float:
    return float(np.asarray(station.robot.get_observation()["gripper"]).reshape(-1)[0])


def drive(station, device: str, qtbot) -> None:
    station.use_teleop(device)
    station.session.start(ControlMode.TELEOP)
    qtbot.waitUntil(lambda: station.loop.snapshot.get().source == SourceKind.TELEOP, timeout=5000)


def test_keyboard_moves_the_simulated_arm_and_closes_the_gripper(sim_window, qtbot):
    station = sim_window.station
    assert station.active_teleop == "keyboard"  # the first teleop of the profile is active
    drive(station, "keyboard", qtbot)
    start = ee(station)
    qtbot.keyPress(sim_window, Qt.Key.Key_W)
    qtbot.waitUntil(lambda: ee(station)[0] > start[0] + 0.02, timeout=5000)
    qtbot.keyRelease(sim_window, Qt.Key.Key_W)
    assert gripper(station) > 0.8  # starts open
    qtbot.keyClick(sim_window, Qt.Key.Key_G)
    qtbot.waitUntil(lambda: gripper(station) < 0.3, timeout=5000)


def test_gamepad_drives_the_arm_unplugging_holds_and_stop_latches(sim_window, qtbot):
    station = sim_window.station
    pad = VirtualGamepad("xbox", "Operator Pad")
    pad.attach()
    try:
        drive(station, "gamepad", qtbot)
        start = ee(station)
        pad.set_axis("left_x", -1.0)  # stick left: the arm moves to the robot's left (+y)
        qtbot.waitUntil(lambda: ee(station)[1] > start[1] + 0.02, timeout=5000)
        pad.detach()  # the cable is pulled with the stick still pushed
        qtbot.waitUntil(lambda: station.loop.snapshot.get().source == SourceKind.HOLD, timeout=2000)
        held = ee(station)
        qtbot.wait(300)
        assert np.linalg.norm(ee(station) - held) < 0.002  # no drift while unplugged
        pad.attach()  # plugged back in: STOP on the pad latches the e-stop
        pad.center()
        qtbot.waitUntil(lambda: station.teleops["gamepad"].get_state().connected, timeout=5000)
        pad.set_button("b", True)
        qtbot.waitUntil(lambda: station.latch.is_tripped, timeout=3000)
        assert station.session.state == RunState.ESTOPPED
        assert station.latch.event.origin == "teleop:gamepad"
    finally:
        pad.detach()
