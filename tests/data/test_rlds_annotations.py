"""The RLDS export honours annotations: trims, edited instructions and outcomes, subtask
segments as a per-step language field, outcome and quality filters, and metadata.json says
which edits it applied; the command line has the same options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vla_studio import cli
from vla_studio.data.annotations import write_annotations
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.rlds import ExportError, ExportOptions, RldsExporter
from vla_studio.data.rlds.episode_encoder import read_episode

from tests.data.rlds_episode_files import EpisodeSpec, write_dataset

SEGMENTS = [{"start": 2, "end": 6, "label": "reach the cube"},
            {"start": 6, "end": 9, "label": "grasp"},
            {"start": 10, "end": 14, "label": "lift"}]


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "demos"
    paths = write_dataset(root, [EpisodeSpec(seed=0, steps=16), EpisodeSpec(seed=1, steps=12),
                                 EpisodeSpec(seed=2, steps=10, success=0),
                                 EpisodeSpec(seed=3, steps=10, success=-1),
                                 EpisodeSpec(seed=4, steps=11)])
    for path in paths:  # the fixture's legacy in-file group would hide nothing: start clean
        with EpisodeReader(path) as reader:
            assert reader.annotations == {}
    write_annotations(paths[0], {"instructions": ["lift the red cube", "raise the red block"],
                                 "trim": [2, 14], "segments": SEGMENTS, "quality": 5,
                                 "tags": ["clean"]})
    write_annotations(paths[1], {"success": False})  # recorded success, marked failure later
    write_annotations(paths[3], {"success": True, "quality": 2})
    write_annotations(paths[4], {"quality": 4})
    return root


def run(dataset: Path, out: Path, **options) -> tuple[RldsExporter, dict]:
    exporter = RldsExporter(dataset, out, ExportOptions(name="demo", **options))
    report = exporter.run()
    meta = json.loads((report.dataset_dir / "metadata.json").read_text())
    return exporter, meta


def test_segments_become_a_per_step_language_field_within_the_trim(dataset, tmp_path):
    exporter, meta = run(dataset, tmp_path / "out", subtasks=True)
    plan = exporter.plan()
    first = next(p for p in plan.episodes if p.summary.path.name == "episode_0000.h5")
    with EpisodeReader(first.summary.path) as reader:
        values = read_episode(plan, first, reader).values
    labels = values["steps/language_subtask"]
    assert len(labels) == 12  # trim [2, 14)
    assert labels[:4] == ["reach the cube"] * 4 and labels[4:7] == ["grasp"] * 3
    assert labels[7] == "" and labels[8:] == ["lift"] * 4
    assert values["steps/subtask_index"].tolist() == [0] * 4 + [1] * 3 + [-1] + [2] * 4
    assert np.flatnonzero(values["steps/is_subtask_first"]).tolist() == [0, 4, 8]
    assert json.loads(values["episode_metadata/subtask_segments"][0]) == [
        {"start": 0, "end": 4, "label": "reach the cube"}, {"start": 4, "end": 7,
                                                            "label": "grasp"},
        {"start": 8, "end": 12, "label": "lift"}]
    assert values["steps/language_instruction"] == ["lift the red cube"] * 12
    assert values["episode_metadata/quality"].tolist() == [5]
    assert json.loads(values["episode_metadata/tags"][0]) == ["clean"]
    entry = next(e for e in meta["episodes"] if e["file"].endswith("episode_0000.h5"))
    assert entry["edits"]["instructions"] == {"recorded": ["pick up the red cube"],
                                              "exported": ["lift the red cube",
                                                           "raise the red block"]}
    assert entry["edits"]["trim"] == {"recorded_steps": 16, "exported": [2, 14]}
    assert entry["edits"]["segments"]["count"] == 3 and entry["edits"]["quality"] == 5
    assert meta["conventions"]["language_subtask"].startswith("the label")
    assert meta["annotations"]["episodes_with_edits"] == 4
    features = json.loads((exporter.destination / "features.json").read_text())
    steps = features["featuresDict"]["features"]["steps"]["sequence"]["feature"]
    assert "language_subtask" in steps["featuresDict"]["features"]


def test_without_the_option_no_subtask_field_is_written(dataset, tmp_path):
    exporter, meta = run(dataset, tmp_path / "out")
    features = (exporter.destination / "features.json").read_text()
    assert "language_subtask" not in features and "subtask_segments" not in features
    entry = next(e for e in meta["episodes"] if e["file"].endswith("episode_0000.h5"))
    assert entry["edits"]["segments"]["exported"].startswith("not exported")


def test_outcome_and_quality_filters_use_the_edited_labels(dataset, tmp_path):
    _, meta = run(dataset, tmp_path / "a", outcomes=("success", "unknown"), min_quality=3)
    files = sorted(Path(e["file"]).name for e in meta["episodes"])
    # 1 was marked failure later, 2 is a failure, 3 is now a success but rated 2.
    assert files == ["episode_0000.h5", "episode_0004.h5"]
    assert meta["left_out"] == {"outcome failure": 2, "quality below 3": 1}
    assert meta["options"]["outcomes"] == ["success", "unknown"]
    assert meta["options"]["min_quality"] == 3
    _, meta = run(dataset, tmp_path / "b", outcomes=("failure",))
    assert sorted(Path(e["file"]).name for e in meta["episodes"]) == ["episode_0001.h5",
                                                                     "episode_0002.h5"]
    success = {Path(e["file"]).name: e["success"] for e in meta["episodes"]}
    assert success == {"episode_0001.h5": False, "episode_0002.h5": False}


def test_filters_that_leave_nothing_say_which_option_to_change(tmp_path):
    paths = write_dataset(tmp_path / "ds", [EpisodeSpec(seed=0), EpisodeSpec(seed=1, success=0)])
    write_annotations(paths[0], {"quality": 2})
    with pytest.raises(ExportError, match=r"1 episode\(s\) not marked success.*1 episode\(s\) "
                                          r"rated below 3.*widen --outcomes.*--min-quality"):
        RldsExporter(tmp_path / "ds", tmp_path, ExportOptions(name="d", outcomes=("success",),
                                                              min_quality=3)).run()
    with pytest.raises(ExportError, match="must be a whole number from 1 to 5"):
        ExportOptions(name="d", min_quality=7).validate()
    with pytest.raises(ExportError, match="one or more of success, failure, unknown"):
        ExportOptions(name="d", outcomes=("good",)).validate()


def test_the_command_line_has_the_same_options(dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    status = cli.main(["--log-level", "WARNING", "export", "rlds", str(dataset), str(out),
                       "--name", "demo", "--outcomes", "success,unknown", "--min-quality", "3",
                       "--subtasks"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "2 episode(s) left out: marked failure" in printed.out
    assert "1 episode(s) left out: rated below 3" in printed.out
    meta = json.loads((out / "demo" / "1.0.0" / "metadata.json").read_text())
    assert meta["options"]["subtasks"] is True
    status = cli.main(["export", "rlds", str(dataset), str(out), "--name", "demo2",
                       "--outcomes", "good"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "--outcomes 'good'" in err
