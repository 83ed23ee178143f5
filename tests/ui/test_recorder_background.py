"""The GUI thread never waits for the recorder: Record, Stop and the start-up recovery run on the
dock's ``recorder-jobs`` thread, the dock says "starting…" / "saving…" meanwhile and refuses a
second click, and a refusal is shown right under the buttons."""

from __future__ import annotations

import logging

import pytest
from PySide6.QtCore import Qt

from tests.data.recording_processes import committed, read_until, start_child
from tests.profiles import changed_profile
from tests.ui.conftest import open_window
from vla_studio.data.recording import RecorderState
from vla_studio.paths import resource
from vla_studio.station import Station


@pytest.fixture
def slow_camera_station(tmp_path):
    """A station whose one camera delivers a frame a second: an episode only starts on a frame
    taken after the scene reset, so starting one takes about a second (like a sim reset or a
    camera that is slow to become ready)."""
    profile = changed_profile(resource("stations", "dry_run.toml"), tmp_path, cameras=[
        {"type": "synthetic", "name": "front", "width": 64, "height": 48, "fps": 1.0}])
    station = Station.from_profile(profile)
    station.start()
    assert station.cameras["front"].wait_for_frame(timeout_s=5.0) is not None
    yield station
    station.close()


def test_record_returns_at_once_says_starting_and_refuses_a_second_click(qtbot,
                                                                         slow_camera_station):
    window = open_window(qtbot, slow_camera_station)
    dock = window.panels["recorder"]
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=5000)
    dock.instruction.setText("wave at the camera")
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    # The click returned while the episode is still starting: the GUI thread did not wait.
    assert dock.recorder.status().state == RecorderState.IDLE
    assert dock.state_label.text() == "STARTING…"
    assert dock.record_button.text() == "Starting…" and not dock.record_button.isEnabled()
    assert not dock.discard_button.isEnabled()
    window.actions_by_id["record.toggle"].trigger()  # Ctrl+R meanwhile: refused, and said so
    assert "Still starting" in dock.message.text() and dock.message.isVisible()
    qtbot.waitUntil(lambda: window.banner.rec.text().startswith("● REC starting"), timeout=2000)
    qtbot.waitUntil(lambda: dock.recorder.status().state == RecorderState.RECORDING,
                    timeout=10000)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=5000)
    assert "already being recorded" not in dock.message.text()
    assert dock.record_button.isEnabled() and "Stop" in dock.record_button.text()
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    assert dock.state_label.text() == "SAVING…"  # the outcome comes back through the event loop
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=10000)
    assert dock.recorder.status().state == RecorderState.IDLE
    assert dock.recorder.wait_idle() and dock.recorder.last_episode.path.exists()


def test_a_refused_record_says_why_right_under_the_button(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dock = window.panels["recorder"]
    dock.instruction.clear()
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=5000)
    assert "needs a language instruction" in dock.message.text() and dock.message.isVisible()
    assert dock.message.parentWidget() is dock.record_button.parentWidget()
    below = dock.message.y() - (dock.record_button.y() + dock.record_button.height())
    assert 0 <= below < 60, below
    dock.instruction.setText("pick up the cube")
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=10000)
    assert not dock.message.isVisible()  # a successful start clears the refusal
    dock.run_command("record.discard")
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=10000)


def test_interrupted_episodes_are_recovered_in_the_background_at_start(qtbot, tmp_path):
    dataset = tmp_path / "dataset"
    child = start_child(dataset)
    try:
        read_until(child, lambda line: committed(line, 20))
    finally:
        child.kill()
        child.wait(10)
    station = Station.from_profile(changed_profile(resource("stations", "dry_run.toml"),
                                                   tmp_path))
    station.start()
    try:
        from vla_studio.ui.main_window import MainWindow

        window = MainWindow(station, reset_layout=True)
        qtbot.addWidget(window)
        dock = window.panels["recorder"]
        # The window is up while recovery runs on the recorder-jobs thread (its outcome comes
        # back through the event loop, which has not turned yet).
        assert dock.busy == "checking the dataset"
        dock.refresh()
        assert dock.state_label.text() == "CHECKING THE DATASET…"
        window.show()
        qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=30000)
        assert [r.outcome for r in dock.recorder.recovered] == ["recovered"]
        assert not dock.recorder.dataset.recording_files()
        events = window.panels["events"]
        qtbot.waitUntil(lambda: "recorder.recovered" in events.kinds(), timeout=3000)
        window.close()
    finally:
        station.close()


def test_a_quarantined_recording_is_shown_in_the_events_dock(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    dry_station.events.emit("recovery.quarantined",
                            "episode_0042.h5.recording could not be repaired; moved to "
                            "quarantine/ (invalid dataset size)", logging.WARNING,
                            file="/data/quarantine/episode_0042.h5.recording",
                            reason="invalid dataset size")
    events = window.panels["events"]
    qtbot.waitUntil(lambda: "recovery.quarantined" in events.kinds(), timeout=3000)
    row = events.kinds().index("recovery.quarantined")
    message = events.cell(row, "Message")
    assert "could not be repaired" in message.text()
    assert message.foreground().color().name() == "#e0a030"  # amber: a warning
    tip = message.toolTip()
    assert tip.startswith("warning:")
    assert "file: /data/quarantine/episode_0042.h5.recording" in tip
    assert "reason: invalid dataset size" in tip
