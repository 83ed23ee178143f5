"""What the exported values mean, without TensorFlow: RLDS end-of-episode flags, the Open
X-Embodiment camera and state naming options, and the meanings written beside the data
(``features.json`` descriptions, ``metadata.json``). tests/data/test_rlds_roundtrip.py loads the
same kind of exports through tensorflow_datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.rlds import ExportOptions, RldsExporter
from vla_studio.data.rlds.episode_encoder import read_episode

from tests.data.rlds_episode_files import EpisodeSpec, write_dataset


def exported_values(dataset: Path, **options) -> dict[str, dict]:
    """episode id -> the flat feature values the exporter writes for it."""
    exporter = RldsExporter(dataset, dataset / "unused", ExportOptions(name="demo", **options))
    plan = exporter.plan()
    out = {}
    for planned in plan.episodes:
        with EpisodeReader(planned.summary.path) as reader:
            out[planned.summary.episode_id] = read_episode(plan, planned, reader).values
    return out


def test_is_terminal_only_on_the_last_step_of_a_success_and_is_last_always(tmp_path):
    specs = [EpisodeSpec(seed=0, episode_id="success", success=1),
             EpisodeSpec(seed=1, episode_id="failure", success=0),
             EpisodeSpec(seed=2, episode_id="time_limit", success=-1),
             EpisodeSpec(seed=3, episode_id="relabelled_failure", success=1,
                         annotation_success=0),
             EpisodeSpec(seed=4, episode_id="relabelled_success", success=-1,
                         annotation_success=1, trim=(1, 9))]
    write_dataset(tmp_path, specs)
    values = exported_values(tmp_path)
    for episode_id, succeeded in [("success", True), ("failure", False), ("time_limit", False),
                                  ("relabelled_failure", False), ("relabelled_success", True)]:
        v = values[episode_id]
        n = len(v["steps/is_last"])
        last = np.arange(n) == n - 1
        np.testing.assert_array_equal(v["steps/is_last"], last, err_msg=episode_id)
        np.testing.assert_array_equal(v["steps/is_terminal"], last & succeeded,
                                      err_msg=episode_id)
        np.testing.assert_array_equal(v["steps/reward"], (last & succeeded).astype(np.float32),
                                      err_msg=episode_id)
        np.testing.assert_array_equal(v["steps/is_first"], np.arange(n) == 0, err_msg=episode_id)
