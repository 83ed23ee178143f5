"""The RLDS export dialog: the real exporter on a worker thread, progress, summary, errors, cancel."""

from __future__ import annotations

import json
import threading

from PySide6.QtCore import Qt

from tests.data.rlds_episode_files import EpisodeSpec, write_dataset
from vla_studio.data.rlds import ExportCancelled
from vla_studio.ui.widgets import export_dialog
from vla_studio.ui.widgets.export_dialog import ExportDialog


def make_dialog(qtbot, dataset, out):
    dialog = ExportDialog(dataset)
    qtbot.addWidget(dialog)
    dialog.out.setText(str(out))
    return dialog


def test_export_writes_the_dataset_and_shows_a_summary(qtbot, tmp_path):
    dataset = tmp_path / "demos"
    write_dataset(dataset, [EpisodeSpec(steps=6), EpisodeSpec(steps=5, success=False)])
    dialog = make_dialog(qtbot, dataset, tmp_path / "rlds")
    assert dialog.name.text() == "demos"
    dialog.image_size.setCurrentText("64")
    dialog.val_fraction.setValue(0.0)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running and dialog.status.text() == "Export finished.",
                    timeout=60000)
    info = json.loads((tmp_path / "rlds" / "demos" / "1.0.0" / "dataset_info.json").read_text())
    assert info["name"] == "demos"
    assert "Exported 2 train episode(s)" in dialog.summary.toPlainText()
    assert dialog.progress.value() == dialog.progress.maximum()
    assert dialog.export_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_bad_name_and_missing_dataset_are_explained(qtbot, tmp_path):
    dialog = make_dialog(qtbot, tmp_path / "nowhere", tmp_path / "rlds")
    dialog.name.setText("My Dataset")
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert "lowercase" in dialog.status.text() and not dialog.running
    dialog.name.setText("ok_name")
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Export failed" in dialog.status.text(), timeout=10000)
    assert "does not exist" in dialog.status.text()


def test_cancel_stops_the_export_and_says_nothing_was_written(qtbot, tmp_path, monkeypatch):
    started = threading.Event()

    class SlowExporter:
        def __init__(self, dataset, out, options, progress, should_cancel):
            self.should_cancel = should_cancel

        def run(self):
            started.set()
            while not self.should_cancel():
                threading.Event().wait(0.01)
            raise ExportCancelled()

    monkeypatch.setattr(export_dialog, "RldsExporter", SlowExporter)
    dialog = make_dialog(qtbot, tmp_path, tmp_path / "rlds")
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert started.wait(5)
    assert dialog.cancel_button.isEnabled() and not dialog.close_button.isEnabled()
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cancelled" in dialog.status.text(), timeout=5000)
    assert not dialog.running


def test_messages_name_the_dialogs_own_controls_not_command_line_flags(qtbot, tmp_path):
    dataset = tmp_path / "demos"
    write_dataset(dataset, [EpisodeSpec(steps=5), EpisodeSpec(steps=4)])
    dialog = make_dialog(qtbot, dataset, tmp_path / "rlds")
    dialog.val_fraction.setValue(0.0)  # two episodes, no val split: the exporter warns
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running and dialog.status.text() == "Export finished.",
                    timeout=60000)
    summary = dialog.summary.toPlainText()
    assert "set 'Validation share' to write a val split" in summary
    assert "--" not in summary
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)  # the same name again
    qtbot.waitUntil(lambda: "Export failed" in dialog.status.text(), timeout=60000)
    status = dialog.status.text()
    assert "tick 'Replace an existing export of the same name' to replace it" in status
    assert "choose another 'Dataset name'" in status and "--" not in status
    dialog.success_only.setChecked(True)
    dialog.overwrite.setChecked(True)
    write_dataset(tmp_path / "failures", [EpisodeSpec(steps=3, success=False)])
    dialog.dataset.setText(str(tmp_path / "failures"))
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Export failed" in dialog.status.text() and
                    "successful" in dialog.status.text(), timeout=60000)
    assert "untick 'Only episodes marked successful' to include them" in dialog.status.text()
