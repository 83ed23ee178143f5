"""Where keys go: an Esc that closes a menu, popup or dialog only closes it (the STOP button,
Esc on the window and Space during a run still stop); after Record the drive keys reach the robot,
not the instruction field; clicking a field types there, clicking a camera takes the keys back;
the status bar says where keys go."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication

from tests.ui.conftest import open_window
from vla_studio.core.session import ControlMode, RunState
from vla_studio.data.recording import RecorderState


def robot_menu(window):
    return next(a.menu() for a in window.menuBar().actions() if a.text() == "&Robot")


def test_escape_that_closes_a_menu_does_not_stop(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    menu = robot_menu(window)
    menu.popup(window.mapToGlobal(QPoint(40, 40)))
    qtbot.waitUntil(menu.isVisible, timeout=2000)
    assert QApplication.activePopupWidget() is menu
    qtbot.keyClick(menu, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not menu.isVisible(), timeout=2000)
    assert not dry_station.latch.is_tripped
    qtbot.keyClick(window, Qt.Key.Key_Escape)  # on the window itself Esc still stops
    assert dry_station.latch.is_tripped and dry_station.latch.event.reason == "Esc key"
    assert dry_station.latch.trigger_count == 1


def test_the_stop_action_shows_its_keys_without_binding_them(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    action = window.actions_by_id["estop.trigger"]
    assert action.text() == "&STOP\tEsc, or Space during a run" and action.shortcut().isEmpty()
    action.trigger()  # the menu entry itself still stops
    assert dry_station.latch.is_tripped


def test_escape_that_closes_a_dialog_does_not_stop(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    window.actions_by_id["help.shortcuts"].trigger()  # a non-modal dialog
    dialog = next(w for w in QApplication.topLevelWidgets()
                  if w.objectName() == "shortcutsDialog" and w.isVisible())
    qtbot.waitExposed(dialog)
    qtbot.keyClick(dialog.table, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=2000)
    assert not dry_station.latch.is_tripped
    closed = []

    def press_escape_in_the_modal_dialog() -> None:
        modal = QApplication.activeModalWidget()
        if modal is None:
            QTimer.singleShot(50, press_escape_in_the_modal_dialog)
            return
        qtbot.keyClick(modal.focusWidget() or modal, Qt.Key.Key_Escape)
        closed.append(modal.windowTitle())

        def still_open() -> None:  # never leave exec() blocked: fail the test instead
            if modal.isVisible():
                closed.append("Esc did not close it")
                modal.close()
        QTimer.singleShot(3000, modal, still_open)

    QTimer.singleShot(50, press_escape_in_the_modal_dialog)
    window.actions_by_id["data.export_rlds"].trigger()  # modal: returns once Esc closed it
    assert closed == ["Export RLDS dataset"]
    assert not dry_station.latch.is_tripped


def test_escape_in_the_instruction_completer_only_closes_it(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dock = window.panels["recorder"]
    dock.recorder.history.add("stack the green cube")
    dock.instruction.setFocus()
    qtbot.waitUntil(dock.instruction.hasFocus, timeout=2000)
    qtbot.keyClicks(dock.instruction, "st")
    popup = dock.instruction.completer().popup()
    qtbot.waitUntil(popup.isVisible, timeout=2000)
    qtbot.keyClick(popup, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not popup.isVisible(), timeout=2000)
    assert not dry_station.latch.is_tripped
    qtbot.keyClick(dock.instruction, Qt.Key.Key_Escape)  # Esc while typing still stops
    assert dry_station.latch.is_tripped


def test_after_ctrl_r_drive_keys_reach_the_robot_not_the_instruction(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dock = window.panels["recorder"]
    kb = dry_station.teleops["keyboard"]
    dock.instruction.clear()
    dock.instruction.setFocus()
    qtbot.waitUntil(dock.instruction.hasFocus, timeout=2000)
    qtbot.keyClicks(dock.instruction, "push the cube")
    assert window.status_keys.text() == "Keys: typing into Instruction · click a camera to drive"
    qtbot.keyClick(dock.instruction, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: dock.recorder.status().state == RecorderState.RECORDING, timeout=10000)
    qtbot.waitUntil(lambda: window.status_keys.text() == "Keys: drive the robot (keyboard)",
                    timeout=3000)
    target = QApplication.focusWidget()
    assert target is not dock.instruction
    qtbot.keyPress(target, Qt.Key.Key_W)
    assert "w" in kb.held_keys()
    qtbot.keyRelease(target, Qt.Key.Key_W)
    assert dock.instruction.text() == "push the cube"
    assert dock.recorder.status().episode.labels.instruction == "push the cube"
    dock.run_command("record.discard")
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=10000)


def test_clicking_a_field_types_there_and_clicking_a_camera_takes_the_keys_back(qtbot,
                                                                               dry_station):
    window = open_window(qtbot, dry_station)
    dock = window.panels["recorder"]
    kb = dry_station.teleops["keyboard"]
    dry_station.use_teleop("keyboard")
    dry_station.session.start(ControlMode.TELEOP)
    qtbot.waitUntil(lambda: dry_station.session.state == RunState.RUNNING, timeout=2000)
    qtbot.mouseClick(dock.notes, Qt.MouseButton.LeftButton)  # deliberate: typing goes there
    qtbot.waitUntil(dock.notes.hasFocus, timeout=2000)
    assert window.status_keys.text() == "Keys: typing into Notes · click a camera to drive"
    qtbot.keyClicks(dock.notes, "wd")
    assert dock.notes.text() == "wd" and not kb.held_keys()
    pane = next(iter(window.cameras.panes.values()))
    qtbot.mouseClick(pane, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(pane.hasFocus, timeout=2000)
    assert window.status_keys.text() == "Keys: drive the robot (keyboard)"
    qtbot.keyPress(pane, Qt.Key.Key_D)
    assert "d" in kb.held_keys() and dock.notes.text() == "wd"
    qtbot.keyRelease(pane, Qt.Key.Key_D)


def test_the_status_bar_says_which_device_drives(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dry_station.use_teleop("gamepad")
    qtbot.waitUntil(lambda: window.status_keys.text() == "Keys: shortcuts · gamepad drives",
                    timeout=3000)
