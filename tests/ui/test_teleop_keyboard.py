"""The keyboard drives the robot from the real main window through the application-wide key
bridge: whichever widget has focus, except a text field; focus loss releases keys; Esc and Space
stay the STOP keys."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QGuiApplication, QKeyEvent
from PySide6.QtWidgets import QApplication, QLineEdit

from vla_studio.core.session import ControlMode
from vla_studio.core.types import SourceKind


def x_of(station) -> float:
    return float(station.robot.get_observation()["ee_pos"][0])


def start_keyboard_run(station, qtbot):
    station.use_teleop("keyboard")
    station.session.start(ControlMode.TELEOP)
    qtbot.waitUntil(lambda: station.loop.snapshot.get() is not None
                    and station.loop.snapshot.get().source == SourceKind.TELEOP, timeout=3000)


def test_held_key_moves_the_robot_whichever_widget_has_focus(main_window, dry_station, qtbot):
    start_keyboard_run(dry_station, qtbot)
    combo = main_window.panels["station"].mode_combo
    combo.setFocus()
    index = combo.currentIndex()
    x0 = x_of(dry_station)
    qtbot.keyPress(combo, Qt.Key.Key_W)
    qtbot.waitUntil(lambda: x_of(dry_station) > x0 + 0.01, timeout=3000)
    qtbot.keyRelease(combo, Qt.Key.Key_W)
    qtbot.waitUntil(lambda: dry_station.loop.snapshot.get().requested is not None
                    and dry_station.loop.snapshot.get().requested[0] == 0.0, timeout=3000)
    assert combo.currentIndex() == index  # the bound key went to the robot, not the combo box


def test_keys_typed_into_a_text_field_do_not_move_the_robot(main_window, dry_station, qtbot):
    field = QLineEdit(main_window)
    main_window.statusBar().addWidget(field)
    field.show()
    start_keyboard_run(dry_station, qtbot)
    field.setFocus()
    qtbot.waitUntil(lambda: field.hasFocus(), timeout=2000)
    x0 = x_of(dry_station)
    qtbot.keyClicks(field, "wwww")
    qtbot.keyPress(field, Qt.Key.Key_W)
    qtbot.wait(200)
    qtbot.keyRelease(field, Qt.Key.Key_W)
    assert field.text() == "wwwww"
    assert x_of(dry_station) == x0
    assert not dry_station.teleops["keyboard"].held_keys()


def test_losing_focus_releases_held_keys(main_window, dry_station, qtbot):
    start_keyboard_run(dry_station, qtbot)
    kb = dry_station.teleops["keyboard"]
    qtbot.keyPress(main_window, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: "d" in kb.held_keys(), timeout=2000)
    QGuiApplication.instance().applicationStateChanged.emit(Qt.ApplicationState.ApplicationInactive)
    assert not kb.held_keys()  # Qt never delivers the release to an inactive window
    y = float(dry_station.robot.get_observation()["ee_pos"][1])
    qtbot.waitUntil(lambda: dry_station.loop.snapshot.get().requested is not None
                    and not np.any(dry_station.loop.snapshot.get().requested[:6]), timeout=3000)
    assert float(dry_station.robot.get_observation()["ee_pos"][1]) <= y + 0.01


def test_auto_repeat_is_one_press_and_gripper_key_toggles_once(main_window, dry_station, qtbot):
    start_keyboard_run(dry_station, qtbot)
    qtbot.keyPress(main_window, Qt.Key.Key_G)
    for kind in (QEvent.Type.KeyRelease, QEvent.Type.KeyPress):  # what Qt sends as a key repeats
        QApplication.sendEvent(main_window, QKeyEvent(kind, Qt.Key.Key_G,
                                                      Qt.KeyboardModifier.NoModifier, "g", True))
    qtbot.keyRelease(main_window, Qt.Key.Key_G)
    qtbot.waitUntil(lambda: dry_station.loop.snapshot.get().action[-1] == 0.0, timeout=3000)
    qtbot.wait(150)
    assert dry_station.loop.snapshot.get().action[-1] == 0.0  # not toggled back by the repeat


def test_escape_and_space_still_stop_with_the_keyboard_driving(main_window, dry_station, qtbot):
    start_keyboard_run(dry_station, qtbot)
    qtbot.keyPress(main_window, Qt.Key.Key_Space)
    assert dry_station.latch.is_tripped and dry_station.latch.event.reason == "Space key"
    dry_station.latch.request_reset()
    dry_station.latch.confirm_reset()
    qtbot.keyPress(main_window, Qt.Key.Key_Escape)
    assert dry_station.latch.is_tripped


def test_closing_the_window_removes_the_key_filter_and_releases_keys(main_window, dry_station,
                                                                     qtbot):
    bridge = main_window.panels["teleop"].keyboard_bridge
    kb = dry_station.teleops["keyboard"]
    assert bridge.installed
    qtbot.keyPress(main_window, Qt.Key.Key_W)
    assert "w" in kb.held_keys()
    main_window.close()
    assert not bridge.installed and not kb.held_keys()
    qtbot.keyPress(main_window, Qt.Key.Key_W)
    assert not kb.held_keys()  # a closed window drives nothing
    main_window.show()
    assert bridge.installed
