"""The recorder dock and the dataset browser, driving a real recorder on the dry-run station."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from vla_studio.core import commands
from vla_studio.core.arbiter import FixedActionSource
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.recording import EpisodeState, RecorderState
from vla_studio.paths import resource
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.widgets.dataset_browser import DatasetBrowser
from vla_studio.ui.widgets.recorder_dock import RecorderDock, recorder_for, release_recorder
from tests.profiles import changed_profile


@pytest.fixture
def station(tmp_path):
    st = Station.from_profile(changed_profile(resource("stations", "dry_run.toml"), tmp_path))
    st.start()
    st.set_teleop_source(FixedActionSource(np.array([0.0005, 0, 0, 0, 0, 0, 1.0])))
    for cam in st.cameras.values():
        cam.wait_for_frame(timeout_s=5.0)
    yield st
    release_recorder(st)
    st.close()


@pytest.fixture
def docks(qtbot, station):
    bridge = CoreBridge(station)
    recorder_dock = RecorderDock(station, bridge)
    browser = DatasetBrowser(station, bridge)
    for widget in (recorder_dock, browser):
        qtbot.addWidget(widget)
        widget.show()
    yield recorder_dock, browser
    recorder_dock.jobs.stop()
    browser.wait_idle()
    bridge.stop()


def record_one(qtbot, dock: RecorderDock, steps: int = 10) -> None:
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: (dock.recorder.status().episode or _NoEp).steps >= steps, timeout=10000)


class _NoEp:
    steps = 0


def click_and_wait(qtbot, dock: RecorderDock, button) -> None:
    """Click a dock button and wait until its recorder call (a background job) is done."""
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=10000)


def test_typed_labels_are_recorded_and_the_buttons_follow_the_state(qtbot, docks):
    dock, _ = docks
    qtbot.keyClicks(dock.instruction, "put the cube in the bowl")
    dock.paraphrases.setPlainText("drop the cube into the bowl\n")
    qtbot.keyClicks(dock.operator, "grace")
    record_one(qtbot, dock)
    dock.refresh()
    assert "RECORDING" in dock.state_label.text() and "Stop" in dock.record_button.text()
    click_and_wait(qtbot, dock, dock.success_button)  # ends it as a success
    assert dock.recorder.status().state == RecorderState.IDLE
    qtbot.waitUntil(lambda: dock.recorder.last_episode.state == EpisodeState.SAVED, timeout=10000)
    dock.refresh()
    assert "success" in dock.last_label.text() and "saved" in dock.last_label.text()
    with EpisodeReader(dock.recorder.last_episode.path) as ep:
        assert ep.instructions() == ["put the cube in the bowl", "drop the cube into the bowl"]
        assert ep.attrs["operator"] == "grace" and ep.success() is True
    qtbot.mouseClick(dock.failure_button, Qt.MouseButton.LeftButton)  # relabels the last one

    def relabelled():
        with EpisodeReader(dock.recorder.last_episode.path) as ep:
            return ep.success() is False
    qtbot.waitUntil(relabelled, timeout=10000)


def test_the_instruction_field_completes_from_the_history(qtbot, docks):
    dock, _ = docks
    dock.instruction.setText("stack the green cube on the blue one")
    record_one(qtbot, dock, 3)
    click_and_wait(qtbot, dock, dock.record_button)
    assert dock.recorder.wait_idle()
    dock.instruction.clear()
    qtbot.keyClicks(dock.instruction, "stack")
    assert dock.completions.stringList() == ["stack the green cube on the blue one"]


def test_a_task_file_proposes_the_next_task_after_each_save(qtbot, docks, tmp_path):
    dock, _ = docks
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("open the drawer | pull the drawer\nclose the drawer\n", encoding="utf-8")
    assert dock.use_task_file(str(tasks))
    assert dock.instruction.text() == "open the drawer"
    assert dock.paraphrases.toPlainText() == "pull the drawer" and dock.task.text() == "open_the_drawer"
    record_one(qtbot, dock, 3)
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.instruction.text() == "close the drawer", timeout=5000)
    click_and_wait(qtbot, dock, dock.next_task_button)
    assert dock.instruction.text() == "open the drawer"
    bad = tmp_path / "bad.toml"
    bad.write_text("tasks = []\n", encoding="utf-8")
    assert not dock.use_task_file(str(bad)) and "no tasks" in dock.message.text()


def test_the_dock_follows_recording_started_by_a_device_button(qtbot, docks):
    dock, _ = docks
    dock.instruction.setText("wave")
    dock.station.run_command(commands.RECORD_TOGGLE)
    qtbot.waitUntil(lambda: "RECORDING" in dock.state_label.text(), timeout=3000)
    dock.station.run_command(commands.RECORD_DISCARD)
    qtbot.waitUntil(lambda: dock.state_label.text() == "READY", timeout=3000)
    qtbot.waitUntil(lambda: "discarded" in dock.last_label.text(), timeout=10000)


def test_starting_without_an_instruction_says_what_is_missing(qtbot, docks):
    dock, _ = docks
    dock.instruction.clear()
    click_and_wait(qtbot, dock, dock.record_button)
    assert "needs a language instruction" in dock.message.text()
    assert dock.recorder.status().state == RecorderState.IDLE
    assert "GB free" in dock.disk_label.text()


def test_the_browser_lists_sorts_filters_trashes_and_restores(qtbot, docks):
    dock, browser = docks
    for instruction, steps, success in (("open the drawer", 5, True), ("close the drawer", 25, False),
                                        ("open the door", 12, None)):
        dock.instruction.setText(instruction)
        record_one(qtbot, dock, steps)
        dock.recorder.stop(success=success)
    assert dock.recorder.wait_idle()
    qtbot.waitUntil(lambda: browser.model.rowCount() == 3, timeout=10000)
    proxy = browser.proxy
    browser.table.sortByColumn(2, Qt.SortOrder.AscendingOrder)  # duration
    order = [proxy.index(r, 1).data() for r in range(proxy.rowCount())]
    assert order == ["open the drawer", "open the door", "close the drawer"]
    browser.filter_edit.setText("open")
    assert proxy.rowCount() == 2
    browser.outcome_combo.setCurrentText("Success")
    assert [proxy.index(r, 1).data() for r in range(proxy.rowCount())] == ["open the drawer"]
    assert proxy.index(0, 4).data() == "✓ success"
    browser.table.selectRow(0)
    browser.trash_selected()
    qtbot.waitUntil(lambda: browser.model.rowCount() == 2, timeout=10000)
    assert len(browser.dataset.episode_files(trashed=True)) == 1
    browser.filter_edit.clear()
    browser.outcome_combo.setCurrentText("All outcomes")
    browser.trash_check.setChecked(True)
    qtbot.waitUntil(lambda: browser.model.rowCount() == 1, timeout=10000)
    assert browser.restore_button.isVisible() and not browser.trash_button.isVisible()
    browser.table.selectRow(0)
    browser.restore_selected()
    qtbot.waitUntil(lambda: browser.model.rowCount() == 0, timeout=10000)
    browser.trash_check.setChecked(False)
    qtbot.waitUntil(lambda: browser.model.rowCount() == 3, timeout=10000)
    assert "3 episodes" in browser.summary.text()


def test_the_main_window_has_the_record_menu_and_docks(qtbot, station):
    from vla_studio.ui.main_window import MainWindow

    window = MainWindow(station, reset_layout=True)
    qtbot.addWidget(window)
    window.show()
    assert {"recorder", "episodes"} <= set(window.docks)
    assert "Re&cord" in [a.text() for a in window.menuBar().actions()]
    recorder = recorder_for(station)
    recorder.set_labels(instruction="point at the cube")
    window.actions_by_id["record.toggle"].trigger()
    qtbot.waitUntil(lambda: recorder.status().state == RecorderState.RECORDING, timeout=10000)
    dock = window.panels["recorder"]
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=10000)
    window.actions_by_id["episode.failure"].trigger()
    qtbot.waitUntil(lambda: recorder.status().state == RecorderState.IDLE, timeout=10000)
    assert recorder.last_episode.success is False
    window.close()
