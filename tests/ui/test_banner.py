"""The banner over the cameras tells the operator the truth: REC with the elapsed time (there and
on every camera pane), HOLDING in amber when an unplugged device holds the arm, a crashed
control loop as such, what to do when a start is refused; e-stops reach the Events dock."""

from __future__ import annotations

import logging
import re

from PySide6.QtCore import Qt

from tests.ui.conftest import open_window
from vla_studio.core.session import ControlMode
from vla_studio.data.recording import RecorderState
from vla_studio.ui.widgets.camera_hud import RecordingMarker


def markers(window) -> list[RecordingMarker]:
    return [m for _, m in window.rec_markers]


def red_pixels_top_right(pane) -> int:
    """Strongly red pixels in the pane's top-right corner (where the REC marker is drawn)."""
    image = pane.grab().toImage()
    w = image.width()
    count = 0
    for x in range(max(0, w - 120), w, 2):
        for y in range(0, 40, 2):
            c = image.pixelColor(x, y)
            count += c.red() > 200 and c.green() < 110 and c.blue() < 110
    return count


def test_recording_shows_rec_and_elapsed_time_in_the_banner_and_on_every_pane(qtbot,
                                                                              dry_station):
    window = open_window(qtbot, dry_station)
    dock = window.panels["recorder"]
    panes = list(window.cameras.panes.values())
    assert not window.banner.rec.isVisible() and all(not m.text for m in markers(window))
    before = [red_pixels_top_right(p) for p in panes]
    dock.instruction.setText("push the cube")
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.recorder.status().state == RecorderState.RECORDING, timeout=10000)
    qtbot.waitUntil(lambda: re.match(r"● REC 0:0[1-9]", window.banner.rec.text()) is not None,
                    timeout=5000)
    assert window.banner.rec.isVisible() and "push the cube" in window.banner.rec.text()
    assert window.banner.rec.property("state") == "recording"
    for pane, marker in window.rec_markers:
        assert re.match(r"● REC 0:0\d", marker.text), marker.text
    qtbot.waitUntil(lambda: all(red_pixels_top_right(p) > b + 5 for p, b in zip(panes, before)),
                    timeout=3000)
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)  # stop and save
    qtbot.waitUntil(lambda: not window.banner.rec.isVisible(), timeout=5000)
    assert all(not m.text for m in markers(window))


def test_a_hold_from_an_unplugged_device_reads_holding_in_amber(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dry_station.use_teleop("spacemouse")  # none is plugged in here
    dry_station.session.start(ControlMode.TELEOP)
    qtbot.waitUntil(lambda: window.run_state.text().startswith("HOLDING"), timeout=5000)
    assert window.run_state.property("state") == "holding"  # amber, never a green RUNNING
    assert "Plug in a 3Dconnexion SpaceMouse" in window.banner.hint.text()
    dry_station.use_teleop("keyboard")  # a device that sends: the banner says RUNNING again
    qtbot.waitUntil(lambda: window.run_state.text() == "RUNNING · teleop (keyboard)",
                    timeout=5000)
    assert window.run_state.property("state") == "running"


def test_a_crashed_control_loop_says_so_not_like_a_normal_stop(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dry_station.latch.trigger("control loop crashed: ZeroDivisionError: division by zero",
                              "control-loop")
    dry_station.events.emit("loop.crashed", "The control loop crashed (ZeroDivisionError); the "
                            "robot is held.", logging.ERROR)
    qtbot.waitUntil(lambda: window.run_state.text() == "LOOP CRASHED", timeout=3000)
    assert window.run_state.property("state") == "crashed"
    assert window.banner.hint.text() == "Control loop crashed — robot held; restart the station"
    assert "Control loop crashed — robot held; restart the station" in window.estop.status.text()
    assert "ZeroDivisionError" in window.estop.status.text()
    assert not window.estop.reset_button.isVisible()  # nothing to reset into: restart instead
    assert window.status_stop.text() == "LOOP CRASHED"
    events = window.panels["events"]
    qtbot.waitUntil(lambda: "loop.crashed" in events.kinds(), timeout=3000)
    assert events.cell(events.kinds().index("loop.crashed"), "Message").font().bold()
    dry_station.latch.request_reset()  # even a reset does not make a dead loop look fine
    dry_station.latch.confirm_reset()
    qtbot.wait(100)
    assert window.run_state.text() == "LOOP CRASHED"


def test_the_crash_event_alone_is_enough(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dry_station.events.emit("loop.crashed", "The control loop crashed; the robot is held.",
                            logging.ERROR)
    qtbot.waitUntil(lambda: window.run_state.text() == "LOOP CRASHED", timeout=3000)


def test_a_normal_stop_reads_e_stopped_with_the_reset(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    qtbot.mouseClick(window.estop.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.run_state.text() == "E-STOPPED", timeout=3000)
    assert window.estop.reset_button.isVisible() and "crashed" not in window.estop.status.text()


def test_start_while_latched_says_in_the_banner_what_to_do(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dry_station.latch.trigger("test stop", "test")
    qtbot.waitUntil(lambda: window.run_state.text() == "E-STOPPED", timeout=3000)
    window.actions_by_id["run.start_teleop"].trigger()  # F5
    hint = window.banner.hint
    assert hint.isVisible() and hint.property("state") == "refused"
    assert hint.text().startswith("Cannot start: the e-stop is latched (test stop)")
    assert "Reset…, then Confirm reset; then F5 again" in hint.text()


def test_estop_latches_and_resets_appear_in_the_events_dock(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    events = window.panels["events"]
    qtbot.mouseClick(window.estop.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "safety.estop" in events.kinds(), timeout=3000)
    row = events.kinds().index("safety.estop")
    assert events.cell(row, "Message").text() == "E-stop latched by gui: STOP button"
    assert events.cell(row, "Message").foreground().color().name() == "#ff5c5c"
    reset = window.estop.reset_button
    qtbot.mouseClick(reset, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(reset, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "safety.reset" in events.kinds(), timeout=3000)
    assert "reset" in events.cell(events.kinds().index("safety.reset"), "Message").text()
    dry_station.latch.trigger("pad STOP", "gamepad")  # from any thread, any origin
    qtbot.waitUntil(lambda: events.kinds().count("safety.estop") == 2, timeout=3000)
    assert events.cell(len(events.events) - 1, "Message").text() == \
        "E-stop latched by gamepad: pad STOP"


def test_each_event_is_listed_once(qtbot, dry_station):
    """Events published while the window is being built (the first teleop device) come through
    the bridge; the dock's start-up history must not list them a second time."""
    window = open_window(qtbot, dry_station)
    events = window.panels["events"]
    qtbot.waitUntil(lambda: "teleop.active" in events.kinds(), timeout=3000)
    qtbot.wait(100)
    assert events.kinds().count("teleop.active") == 1
