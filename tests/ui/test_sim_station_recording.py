"""Demonstrations in the window on the default station: the operator picks the scripted expert,
types an instruction, ticks "save when done" and presses Record; the dock shows the robot's live
verdict and the episode is saved as a success once the task has held."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt

from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.recording import EpisodeState, RecorderState
from vla_studio.ui.widgets.recorder_dock import AUTO_SAVE_KEY, SETTLE_KEY


def test_the_expert_records_a_demo_that_is_saved_when_the_task_is_done(sim_window, qtbot):
    teleop, dock = sim_window.panels["teleop"], sim_window.panels["recorder"]
    teleop.device_combo.setCurrentIndex(teleop.device_combo.findText(
        "scripted", Qt.MatchFlag.MatchContains))
    assert sim_window.station.active_teleop == "expert"
    dock.instruction.clear()
    qtbot.keyClicks(dock.instruction, "pick up the green cube")
    assert not dock.auto_save.isChecked() and not dock.settle.isEnabled()  # off by default
    dock.settle.setValue(0.5)
    qtbot.mouseClick(dock.auto_save, Qt.MouseButton.LeftButton)
    assert dock.auto_save.isChecked() and dock.recorder.save_on_success_s == 0.5
    shown: list[str] = []
    set_text = dock.task_state.setText
    dock.task_state.setText = lambda text: (shown.append(text), set_text(text))
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=20_000)
    assert dock.recorder.status().state == RecorderState.RECORDING, dock.message.text()
    qtbot.waitUntil(lambda: "not yet" in dock.task_state.text(), timeout=5000)
    # The expert grasps and lifts the cube; the dock shows the verdict, then saves by itself.
    qtbot.waitUntil(lambda: dock.recorder.status().episode is None, timeout=90_000)
    info = dock.recorder.last_episode
    assert info.success is True and info.labels.instruction == "pick up the green cube"
    qtbot.waitUntil(lambda: dock.recorder.last_episode.state == EpisodeState.SAVED, timeout=20_000)
    with EpisodeReader(dock.recorder.last_episode.path) as ep:
        assert ep.success() is True and ep.attrs["success_source"] == "robot"
        assert ep.step("reward")[-1] == 1.0
    assert "success" in dock.last_label.text()
    assert any("✓ accomplished" in text for text in shown), set(shown)
    assert dock.task_state.text() == ""  # idle again
    settings = QSettings()
    assert settings.value(AUTO_SAVE_KEY, type=bool) is True
    assert settings.value(SETTLE_KEY, type=float) == 0.5
