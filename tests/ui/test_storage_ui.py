"""Compact storage in the window: the Episodes dock shows each episode's storage and the
dataset's size, the station's recorder compacts saved episodes in the background (the dock
follows), and File > Export > LeRobot writes a LeRobot dataset."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from tests.data.video_episodes import small_episode
from tests.profiles import changed_profile
from tests.ui.conftest import open_window
from vla_studio.data.compactor import CompactorStatus
from vla_studio.data.transcode import transcode_episode
from vla_studio.paths import resource
from vla_studio.station import Station
from vla_studio.ui.widgets.dataset_browser import compaction_text
from vla_studio.ui.widgets.lerobot_dialog import LeRobotExportDialog


def _storage_column(browser) -> list[str]:
    column = browser.model.COLUMNS.index("Storage")
    return sorted(browser.proxy.index(r, column).data() for r in range(browser.proxy.rowCount()))


def test_the_episodes_dock_shows_storage_and_the_datasets_size(qtbot, dry_station, tmp_path):
    dataset = tmp_path / "dataset"
    small_episode(dataset, seed=0)
    assert transcode_episode(small_episode(dataset, seed=1)).outcome == "transcoded"
    window = open_window(qtbot, dry_station)
    browser = window.panels["episodes"]
    browser.refresh()
    qtbot.waitUntil(lambda: browser.proxy.rowCount() == 2, timeout=10000)
    assert _storage_column(browser) == ["AV1", "JPEG"]
    size = sum(p.stat().st_size for p in (dataset / "episodes").glob("*.h5"))
    text = browser.summary.text()
    assert f"{size / 1e3:.0f} kB" in text and "1 as video" in text, text
    header = browser.table.horizontalHeader()
    assert not header.isSectionHidden(browser.model.COLUMNS.index("Storage"))


def test_the_recorder_compacts_saved_episodes_and_the_dock_follows(qtbot, tmp_path):
    path = small_episode(tmp_path / "dataset", seed=2)
    profile = changed_profile(resource("stations", "dry_run.toml"), tmp_path,
                              recording={"storage": "video"})
    station = Station.from_profile(profile)
    station.start()
    try:
        window = open_window(qtbot, station)
        browser = window.panels["episodes"]
        qtbot.waitUntil(lambda: browser.recorder.compactor is not None, timeout=10000)
        qtbot.waitUntil(lambda: _storage_column(browser) == ["AV1"], timeout=30000)
        browser.show_compaction()
        assert "1 compacted" in browser.compaction_text
        assert browser.summary.text().endswith(browser.compaction_text)
        assert path.stat().st_size < 300_000
        window.close()
    finally:
        station.close()


def test_compaction_text_tells_what_the_transcoder_does():
    assert compaction_text(CompactorStatus("idle")) == ""
    assert compaction_text(CompactorStatus("working", "20261201-100000_ab.h5", 30, 120, 2,
                                           40_000_000, 3)) == \
        "compacting 20261201-100000_ab 25% · 2 compacted, 40 MB saved"
    assert compaction_text(CompactorStatus("paused", "x.h5", 1, 2)) == \
        "compaction paused while recording"
    assert compaction_text(CompactorStatus("idle", waiting=4)) == "4 episode(s) to compact"


def test_file_export_lerobot_writes_a_lerobot_dataset(qtbot, dry_station, tmp_path):
    window = open_window(qtbot, dry_station)
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    export = next(a.menu() for a in file_menu.actions() if a.text() == "&Export")
    assert [a.text() for a in export.actions()] == ["&RLDS dataset...", "&LeRobot dataset..."]
    dataset = tmp_path / "demos"
    small_episode(dataset, steps=20)
    dialog = LeRobotExportDialog(dataset)
    qtbot.addWidget(dialog)
    assert dialog.repo_id.text() == "local/demos"
    dialog.out.setText(str(tmp_path / "lerobot"))
    dialog.repo_id.setText("bad name")
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert "is not a dataset name" in dialog.status.text()
    dialog.repo_id.setText("me/demos")
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running and dialog.status.text() == "Export finished.",
                    timeout=60000)
    info = json.loads((tmp_path / "lerobot" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 1 and info["total_frames"] == 20
    assert "LeRobotDataset('me/demos'" in dialog.summary.toPlainText()
