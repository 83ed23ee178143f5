"""Round trip through tensorflow_datasets of an export that applied annotations: the trimmed
steps, the edited instructions and outcome, the per-step subtask labels and boundaries, the
quality and tags load unchanged, and the recorded data of the trimmed range is what was
recorded. (Runs in its own process: it imports TensorFlow, see ISOLATED in tests/conftest.py.)
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import tensorflow_datasets as tfds

from vla_studio.data.annotations import write_annotations
from vla_studio.data.rlds import ExportOptions, RldsExporter

from tests.data.rlds_episode_files import EpisodeSpec, write_dataset

SEGMENTS = [{"start": 1, "end": 5, "label": "reach"}, {"start": 5, "end": 9, "label": "lift"}]


def test_an_annotated_export_loads_in_tfds_with_exactly_the_edits(tmp_path):
    paths = write_dataset(tmp_path / "ds", [EpisodeSpec(seed=0, steps=12),
                                            EpisodeSpec(seed=1, steps=8, success=0),
                                            EpisodeSpec(seed=2, steps=9)])
    write_annotations(paths[0], {"trim": [1, 10], "segments": SEGMENTS, "quality": 4,
                                 "instructions": ["raise the red cube"], "tags": ["good"]})
    write_annotations(paths[1], {"success": True})
    write_annotations(paths[2], {"success": False})
    report = RldsExporter(tmp_path / "ds", tmp_path / "out",
                          ExportOptions(name="annotated", subtasks=True,
                                        outcomes=("success",))).run()
    assert report.episodes == {"train": 2} and report.left_out == {"outcome failure": 1}
    builder = tfds.builder("annotated", data_dir=str(tmp_path / "out"))
    episodes = {e["episode_metadata"]["file_path"].decode(): e
                for e in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert set(episodes) == {str(paths[0].resolve()), str(paths[1].resolve())}

    first = episodes[str(paths[0].resolve())]
    steps = list(first["steps"])
    assert len(steps) == 9
    assert [s["language_subtask"].decode() for s in steps] == ["reach"] * 4 + ["lift"] * 4 + [""]
    assert [int(s["subtask_index"]) for s in steps] == [0] * 4 + [1] * 4 + [-1]
    assert [bool(s["is_subtask_first"]) for s in steps] == [True, False, False, False,
                                                           True, False, False, False, False]
    assert {s["language_instruction"].decode() for s in steps} == {"raise the red cube"}
    md = first["episode_metadata"]
    assert int(md["quality"]) == 4 and json.loads(md["tags"].decode()) == ["good"]
    assert json.loads(md["subtask_segments"].decode()) == [
        {"start": 0, "end": 4, "label": "reach"}, {"start": 4, "end": 8, "label": "lift"}]
    assert int(md["trim_start"]) == 1 and int(md["num_steps"]) == 9
    with h5py.File(paths[0], "r") as f:  # the exported rows are the recorded rows 1..9
        recorded = f["steps/action"][1:10]
    np.testing.assert_array_equal(np.stack([s["action"] for s in steps]), recorded)

    second = list(episodes[str(paths[1].resolve())]["steps"])
    assert bool(second[-1]["is_terminal"]) and float(second[-1]["reward"]) == 1.0  # now a success
    assert int(episodes[str(paths[1].resolve())]["episode_metadata"]["quality"]) == -1
    assert {s["language_subtask"].decode() for s in second} == {""}
