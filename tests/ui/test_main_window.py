"""The main window shell: actions table, docks, STOP (button, Esc, Space), reset, status, layout."""

from __future__ import annotations

import threading
import time

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDockWidget, QLineEdit

from vla_studio.core.arbiter import FixedActionSource
from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.types import SourceKind
from vla_studio.ui.actions import ACTIONS
from vla_studio.ui.docks import DOCKS
from vla_studio.ui.main_window import MainWindow

MOVE = np.array([0.001, 0, 0, 0, 0, 0, 1.0])


def test_every_action_and_dock_of_the_tables_exists(main_window):
    for spec in ACTIONS:
        assert spec.id in main_window.actions_by_id
    menu_titles = [a.text() for a in main_window.menuBar().actions()]
    assert {s.menu.split("/")[0] for s in ACTIONS} <= set(menu_titles)
    docks = {d.objectName() for d in main_window.findChildren(QDockWidget)}
    assert {f"dock.{d.id}" for d in DOCKS} <= docks


def test_stop_button_latches_the_estop(qtbot, main_window):
    qtbot.mouseClick(main_window.estop.stop_button, Qt.MouseButton.LeftButton)
    assert main_window.station.latch.is_tripped
    assert main_window.station.latch.event.origin == "gui"
    qtbot.waitUntil(lambda: main_window.run_state.text() == "E-STOPPED", timeout=2000)
    assert "E-STOP LATCHED" in main_window.estop.status.text()


def test_escape_latches_the_estop_even_while_typing(qtbot, main_window):
    field = QLineEdit(main_window)
    field.show()
    field.setFocus()
    qtbot.keyClick(field, Qt.Key.Key_Escape)
    assert main_window.station.latch.is_tripped


def test_space_stops_only_while_a_run_is_active(qtbot, main_window):
    station = main_window.station
    qtbot.keyClick(main_window, Qt.Key.Key_Space)
    assert not station.latch.is_tripped  # paused: Space is just a key
    station.set_teleop_source(FixedActionSource(MOVE))
    station.session.start(ControlMode.TELEOP)
    qtbot.keyClick(main_window, Qt.Key.Key_Space)
    assert station.latch.is_tripped


def test_two_step_reset_from_the_estop_widget_returns_to_paused(qtbot, main_window):
    station = main_window.station
    station.latch.trigger("test", "test")
    main_window.estop.refresh()
    reset = main_window.estop.reset_button
    assert reset.isVisible()
    qtbot.mouseClick(reset, Qt.MouseButton.LeftButton)
    assert station.latch.is_tripped and reset.text().startswith("Confirm reset")
    qtbot.mouseClick(reset, Qt.MouseButton.LeftButton)
    assert not station.latch.is_tripped
    assert station.session.state == RunState.PAUSED


def test_station_panel_start_drives_the_robot_and_status_bar_shows_the_loop(qtbot, main_window):
    station = main_window.station
    station.set_teleop_source(FixedActionSource(MOVE))
    panel = main_window.panels["station"]
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: station.loop.snapshot.get().source == SourceKind.TELEOP, timeout=3000)
    qtbot.waitUntil(lambda: main_window.run_state.text().startswith("RUNNING"), timeout=2000)
    qtbot.waitUntil(lambda: "/20 Hz" in main_window.status_loop.text(), timeout=2000)
    qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
    assert station.session.state == RunState.PAUSED


def test_start_while_stopped_explains_why(qtbot, main_window):
    main_window.station.latch.trigger("test", "test")
    panel = main_window.panels["station"]
    panel.start_run()
    assert "reset it first" in panel.error_label.text()


def test_camera_panes_show_live_frames(qtbot, main_window):
    grid = main_window.cameras
    qtbot.waitUntil(lambda: all(p.shown_index >= 0 for p in grid.panes.values()), timeout=5000)
    first = {n: p.shown_index for n, p in grid.panes.items()}
    qtbot.waitUntil(lambda: all(p.shown_index > first[n] for n, p in grid.panes.items()), timeout=5000)


def test_layout_is_saved_and_restored(qtbot, dry_station):
    window = MainWindow(dry_station, reset_layout=True)
    qtbot.addWidget(window)
    window.show()
    window.docks["events"].hide()
    window.close()
    assert QSettings().value("main_window/state") is not None
    again = MainWindow(dry_station)
    qtbot.addWidget(again)
    again.show()
    assert again.docks["events"].isHidden()
    again.reset_layout()
    assert not again.docks["events"].isHidden()
    again.close()


def test_frozen_gui_and_hung_policy_still_stop_the_robot_within_one_period(qtbot, main_window):
    """Safety invariant 2: the stop path needs neither the Qt event loop nor the model."""
    station = main_window.station
    robot = station.robot
    release = threading.Event()
    fresh = FixedActionSource(MOVE, kind=SourceKind.POLICY)
    station.set_policy_source(fresh)
    hung_model = threading.Thread(target=release.wait, name="hung-model", daemon=True)
    hung_model.start()
    station.session.start(ControlMode.POLICY)
    qtbot.waitUntil(lambda: station.loop.snapshot.get().source == SourceKind.POLICY, timeout=3000)

    holds_before = len(robot.hold_times)
    gamepad = threading.Timer(0.1, station.latch.trigger, args=("pad STOP", "gamepad"))
    gamepad.start()
    time.sleep(0.4)  # the GUI thread is frozen: no events, no heartbeat, no repaint
    t_trigger = station.latch.event.t
    holds = [t for t in robot.hold_times[holds_before:] if t >= t_trigger]
    assert holds, "the robot never received the stop"
    assert holds[0] - t_trigger <= station.loop.period_s
    release.set()


def test_station_panel_follows_a_teleop_device_chosen_elsewhere(qtbot, main_window):
    station = main_window.station
    panel = main_window.panels["station"]
    names = list(station.teleops)
    assert len(names) >= 2
    station.use_teleop(names[1])
    qtbot.waitUntil(lambda: panel.teleop_combo.currentText() == names[1], timeout=2000)
    assert station.active_teleop == names[1]
