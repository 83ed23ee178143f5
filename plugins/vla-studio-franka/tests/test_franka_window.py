"""An operator at the example Franka station (examples/franka_sim.toml) in the real window, against
franky-sim: the keyboard and a (virtual) gamepad drive the arm, an episode records, STOP halts
the arm with the key still held; a reflex shows in the banner and Robot > Recover robot, then the
two-step reset, lets the operator drive again.

GUI tests (pytest-qt, offscreen): scripts/test.sh runs them with the GUI suite, not with the
Qt-free plugin tests (see conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from vla_studio.core.session import RunState
from vla_studio.core.types import SourceKind
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.recording import EpisodeState, RecorderState
from vla_studio.devices.teleop.virtual_gamepad import VirtualGamepad
from vla_studio.station import Station

from franka_stations import franka_sim_profile
from tests.ui import conftest as ui_conftest

isolated_settings = ui_conftest.isolated_settings  # autouse: QSettings of the test's own
open_window = ui_conftest.open_window


@pytest.fixture
def franka_window(qtbot, franka_sim, tmp_path):
    station = Station.from_profile(franka_sim_profile(franka_sim.hostname, tmp_path))
    station.start()
    window = open_window(qtbot, station)
    yield window
    window.close()
    if station.robot.is_connected and station.robot.fault:
        station.robot.recover()
    station.close()


def ee(window) -> np.ndarray | None:
    step = window.station.loop.snapshot.get()
    pos = None if step is None else step.observation.state.get("ee_pos")
    return None if pos is None else np.asarray(pos, dtype=float)


def beyond(window, axis: int, start: np.ndarray, distance: float) -> bool:
    pos = ee(window)
    return pos is not None and pos[axis] > start[axis] + distance


def at_rest(window, qtbot, ms: int = 300) -> bool:
    """Whether the tool moved less than 0.5 mm while the robot's own clock advanced ``ms``
    (franky-sim's time lags wall time on a busy machine)."""
    robot = window.station.robot
    before, t0 = ee(window), robot.robot_time_s
    qtbot.waitUntil(lambda: robot.robot_time_s - t0 >= ms / 1000.0, timeout=20_000)
    after = ee(window)
    return before is not None and after is not None and np.linalg.norm(after - before) < 5e-4


def start_teleop(window, qtbot, deadman: bool = False) -> np.ndarray:
    """F5, as the operator does; returns the tool position once the loop drives (or, with
    ``deadman``, holds until the gamepad's deadman is pressed)."""
    qtbot.keyClick(window, Qt.Key.Key_F5)

    def driving() -> bool:
        step = window.station.loop.snapshot.get()
        waiting = deadman and "deadman" in step.hold_reason
        return (step.source == SourceKind.TELEOP or waiting) and ee(window) is not None
    try:
        qtbot.waitUntil(driving, timeout=10_000)
    except Exception:
        step = window.station.loop.snapshot.get()
        raise AssertionError(f"not driving: {window.station.session.snapshot}, "
                             f"{step.source}, {step.hold_reason!r}") from None
    return ee(window)


def test_keyboard_and_gamepad_drive_the_franka_an_episode_records_and_stop_halts_it(
        franka_window, qtbot):
    window, station = franka_window, franka_window.station
    dock, teleop = window.panels["recorder"], window.panels["teleop"]
    assert station.active_teleop == "keyboard"
    dock.instruction.setFocus()  # the operator clicks into the field and types
    dock.instruction.clear()
    qtbot.keyClicks(dock.instruction, "push the block forward")
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.recorder.status().state == RecorderState.RECORDING,
                    timeout=10_000)
    start = start_teleop(window, qtbot)  # a new episode starts paused: F5 drives
    qtbot.keyPress(window, Qt.Key.Key_W)  # forward: +x
    qtbot.waitUntil(lambda: beyond(window, 0, start, 0.02), timeout=15_000)
    qtbot.keyRelease(window, Qt.Key.Key_W)
    # no cameras: the window shows the Franka's own state in their place
    view = window.cameras.robot_state
    assert view is not None and view.isVisible()
    def shown_x() -> float:  # "x +0.584  y -0.000  z +0.521  m"
        words = view.rows["ee_pos"].text().split()
        return float(words[words.index("x") + 1]) if "x" in words else float("nan")
    qtbot.waitUntil(lambda: abs(shown_x() - ee(window)[0]) < 0.005, timeout=2000)
    assert view.rows["gripper_width"].text().endswith(" m")
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)  # stop and save
    qtbot.waitUntil(lambda: dock.recorder.last_episode is not None and
                    dock.recorder.last_episode.state == EpisodeState.SAVED, timeout=20_000)
    with EpisodeReader(dock.recorder.last_episode.path) as episode:
        assert episode.num_steps >= 5
        assert episode.attrs["robot_type"] == "franka"
        assert episode.attrs["language_instruction"] == "push the block forward"
        x = episode.step("observation/state/ee_pos")[:, 0]
        assert x[-1] > x[0] + 0.015  # the recorded state shows the push

    pad = VirtualGamepad("xbox", "Operator Pad")
    pad.attach()
    try:
        teleop.device_combo.setCurrentIndex(teleop.device_combo.findData("gamepad"))
        assert station.active_teleop == "gamepad"
        qtbot.waitUntil(lambda: station.teleops["gamepad"].get_state().connected, timeout=5000)
        start = start_teleop(window, qtbot, deadman=True)
        pad.set_axis("left_x", -1.0)  # stick left: +y, but a real robot needs the deadman
        qtbot.wait(400)
        assert not beyond(window, 1, start, 0.002)
        assert "deadman" in station.loop.snapshot.get().hold_reason
        pad.center()  # the operator lets go, holds the deadman (LB), then pushes the stick
        pad.set_button("left_shoulder", True)
        qtbot.wait(100)
        pad.set_axis("left_x", -1.0)
        qtbot.waitUntil(lambda: beyond(window, 1, start, 0.015), timeout=15_000)
        assert station.robot.emergency_stops == 0
        qtbot.mouseClick(window.estop.stop_button, Qt.MouseButton.LeftButton)
        assert station.latch.is_tripped and station.session.state == RunState.ESTOPPED
        qtbot.waitUntil(lambda: station.robot.emergency_stops >= 1, timeout=1000)
        # the stick and the deadman are still held: the arm comes to rest and stays there
        qtbot.waitUntil(lambda: at_rest(window, qtbot), timeout=10_000)
        assert at_rest(window, qtbot, 500)
        assert "E-STOP LATCHED" in window.estop.status.text()
    finally:
        pad.detach()


def test_a_reflex_shows_in_the_banner_and_recover_robot_lets_the_operator_drive_again(
        franka_window, franka_sim, qtbot):
    window, station = franka_window, franka_window.station
    events: list[str] = []
    station.events.subscribe(lambda e: events.append(e.kind))
    start = start_teleop(window, qtbot)
    qtbot.keyPress(window, Qt.Key.Key_W)
    qtbot.waitUntil(lambda: beyond(window, 0, start, 0.01), timeout=15_000)
    franka_sim.command("reflex", "cartesian_reflex")
    qtbot.waitUntil(lambda: station.latch.is_tripped, timeout=3000)
    qtbot.keyRelease(window, Qt.Key.Key_W)
    qtbot.waitUntil(lambda: "cartesian_reflex" in window.estop.status.text(), timeout=2000)
    banner = window.estop.status.text()
    assert "E-STOP LATCHED" in banner and "Recover robot" in banner
    assert window.banner.run_state.text() == "E-STOPPED"
    fault = window.cameras.robot_state.fault
    qtbot.waitUntil(lambda: "cartesian_reflex" in fault.text() and fault.isVisible(), timeout=2000)

    recover = window.actions_by_id["robot.recover"]
    assert recover.text().replace("&", "") == "Recover robot"
    recover.trigger()  # Robot > Recover robot
    qtbot.waitUntil(lambda: "robot.recovered" in events, timeout=5000)
    assert station.robot.fault == "" and station.latch.is_tripped  # the stop stays latched
    qtbot.waitUntil(lambda: not fault.isVisible(), timeout=2000)
    qtbot.mouseClick(window.estop.reset_button, Qt.MouseButton.LeftButton)  # Reset...
    qtbot.mouseClick(window.estop.reset_button, Qt.MouseButton.LeftButton)  # Confirm
    qtbot.waitUntil(lambda: station.session.state == RunState.PAUSED, timeout=2000)
    held = start_teleop(window, qtbot)
    qtbot.keyPress(window, Qt.Key.Key_W)
    qtbot.waitUntil(lambda: beyond(window, 0, held, 0.01), timeout=15_000)
    qtbot.keyRelease(window, Qt.Key.Key_W)
    assert not station.latch.is_tripped
