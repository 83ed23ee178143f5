"""Episode metadata: the device that drove (keyboard, gamepad, the scripted expert) is recorded
with the episode and shown in the Recorder dock and the Episodes list, not "teleop" for all; the
operator's name defaults to the one typed last time."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt

from tests.ui.conftest import open_window
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.recording import EpisodeState, RecorderState


def record(qtbot, window, instruction: str, steps: int = 5) -> None:
    dock = window.panels["recorder"]
    dock.instruction.setText(instruction)
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.recorder.status().state == RecorderState.RECORDING, timeout=10000)
    qtbot.waitUntil(lambda: dock.recorder.status().episode.steps >= steps, timeout=10000)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=5000)
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=10000)
    assert dock.recorder.wait_idle()
    assert dock.recorder.last_episode.state == EpisodeState.SAVED


def test_the_device_that_drove_is_recorded_and_shown(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dock, browser = window.panels["recorder"], window.panels["episodes"]
    dry_station.use_teleop("keyboard")
    qtbot.waitUntil(lambda: dock.device.text() == "keyboard", timeout=3000)
    record(qtbot, window, "push the cube with the keys")
    dry_station.use_teleop("gamepad")  # unplugged here: the arm holds, the episode still counts
    qtbot.waitUntil(lambda: dock.device.text() == "gamepad", timeout=3000)
    record(qtbot, window, "push the cube with the pad")
    with EpisodeReader(dock.recorder.last_episode.path) as ep:
        assert ep.attrs["teleop_device"] == "gamepad"
    assert "· gamepad ·" in dock.last_label.text()
    qtbot.waitUntil(lambda: browser.model.rowCount() == 2, timeout=10000)
    column = browser.model.COLUMNS.index("Source")
    shown = {browser.proxy.index(r, 1).data(): browser.proxy.index(r, column).data()
             for r in range(browser.proxy.rowCount())}
    # The gamepad never moved the arm (nothing plugged in): its episode held throughout.
    assert shown == {"push the cube with the keys": "keyboard",
                     "push the cube with the pad": "gamepad (no motion)"}
    browser.filter_edit.setText("keyboard")
    assert browser.proxy.rowCount() == 1


def test_the_operator_name_defaults_to_the_last_one_typed(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dock = window.panels["recorder"]
    assert dock.operator.text() == ""
    qtbot.mouseClick(dock.operator, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dock.operator.hasFocus, timeout=2000)
    qtbot.keyClicks(dock.operator, "ada")
    assert QSettings().value("recorder/operator") == "ada"
    window.close()
    from vla_studio.ui.station_recorder import release_recorder

    release_recorder(dry_station)  # a new session of the app: a new recorder
    again = open_window(qtbot, dry_station)
    dock = again.panels["recorder"]
    assert dock.operator.text() == "ada"
    record(qtbot, again, "wave")
    with EpisodeReader(dock.recorder.last_episode.path) as ep:
        assert ep.attrs["operator"] == "ada"
