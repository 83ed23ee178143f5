"""The export dialog has the command line's annotation options: outcomes, minimum quality,
subtask segments; its summary says what the filters left out and where edits were applied."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from tests.data.rlds_episode_files import EpisodeSpec, write_dataset
from vla_studio.data.annotations import write_annotations
from vla_studio.ui.widgets.export_dialog import ExportDialog


def test_annotation_options_reach_the_export_and_its_summary(qtbot, tmp_path):
    paths = write_dataset(tmp_path / "demos", [EpisodeSpec(seed=0), EpisodeSpec(seed=1),
                                               EpisodeSpec(seed=2, success=0)])
    write_annotations(paths[0], {"segments": [{"start": 0, "end": 5, "label": "reach"}],
                                 "quality": 5})
    write_annotations(paths[1], {"quality": 2})
    dialog = ExportDialog(tmp_path / "demos")
    qtbot.addWidget(dialog)
    dialog.out.setText(str(tmp_path / "rlds"))
    dialog.val_fraction.setValue(0.0)
    dialog.outcome_boxes["failure"].setChecked(False)
    dialog.min_quality.setCurrentText("3")
    dialog.subtasks.setChecked(True)
    options = dialog.options()
    assert options.outcomes == ("success", "unknown") and options.min_quality == 3
    assert options.subtasks
    dialog.success_only.setChecked(True)
    assert not dialog.outcome_boxes["unknown"].isEnabled()
    assert not dialog.outcome_boxes["unknown"].isChecked()
    dialog.success_only.setChecked(False)
    dialog.outcome_boxes["unknown"].setChecked(True)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running and dialog.status.text() == "Export finished.",
                    timeout=60000)
    summary = dialog.summary.toPlainText()
    assert "1 episode(s) left out: marked failure" in summary
    assert "1 episode(s) left out: rated below 3" in summary
    assert "annotations applied to 1 episode(s)" in summary
    meta = json.loads((tmp_path / "rlds" / "demos" / "1.0.0" / "metadata.json").read_text())
    assert meta["options"]["subtasks"] is True and len(meta["episodes"]) == 1
