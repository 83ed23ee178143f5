"""The LeRobot export's own rules, without LeRobot: frame rate resampling, options, the
destination, the tables' layout (test_lerobot_export.py loads it with LeRobot itself)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_studio.data.lerobot import LeRobotExporter, LeRobotOptions, resample
from vla_studio.data.rlds import ExportError

from .video_episodes import small_episode


def test_resample_keeps_every_step_at_the_recorded_rate_and_the_latest_step_below_it():
    ticks = 100.0 + np.arange(31) / 30 + np.random.default_rng(0).normal(0, 0.002, 31)
    assert resample(ticks, 30.0, 30).tolist() == list(range(31))
    assert resample(ticks, 30.0, 10).tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30]


@pytest.mark.parametrize("options, message", [
    (LeRobotOptions("not a name"), "is not a dataset name"),
    (LeRobotOptions("me/x", fps=0), "--fps 0"),
    (LeRobotOptions("me/x", codec="vp9"), "codec 'vp9'"),
])
def test_bad_options_are_refused_before_anything_is_read(tmp_path, options, message):
    with pytest.raises(ExportError, match=message):
        LeRobotExporter(tmp_path, tmp_path / "out", options).run()


def test_layout_fps_and_an_existing_destination(tmp_path):
    small_episode(tmp_path, steps=30)
    out = tmp_path / "lerobot"
    with pytest.raises(ExportError, match="above the recording's rate"):
        LeRobotExporter(tmp_path, out, LeRobotOptions("me/x", fps=60)).run()
    assert not out.exists()
    report = LeRobotExporter(tmp_path, out, LeRobotOptions("me/x", fps=15, codec="h264")).run()
    assert report.episodes == 1 and report.frames == 15 and report.fps == 15
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 15
    assert info["features"]["observation.images.front"]["shape"] == [120, 160, 3]
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    assert info["features"]["observation.state"]["names"][:3] == ["ee_pos_0", "ee_pos_1",
                                                                   "ee_pos_2"]
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet")
    assert data.column("frame_index").to_pylist() == list(range(15))
    assert data.column("next.done").to_pylist() == [False] * 14 + [True]
    tasks = pq.read_table(out / "meta" / "tasks.parquet").to_pandas()
    assert tasks.loc["pick up the red cube", "task_index"] == 0
    assert (out / "videos" / "observation.images.wrist" / "chunk-000" / "file-000.mp4").exists()
    with pytest.raises(ExportError, match="already exists"):
        LeRobotExporter(tmp_path, out, LeRobotOptions("me/x")).run()
    assert LeRobotExporter(tmp_path, out, LeRobotOptions("me/x", overwrite=True)).run().fps == 30


def test_an_episode_with_nan_state_is_skipped_with_the_reason(tmp_path):
    import h5py

    from tests.data.rlds_episode_files import EpisodeSpec, write_dataset

    good, bad = write_dataset(tmp_path, [EpisodeSpec(seed=0, steps=8), EpisodeSpec(seed=1,
                                                                                 steps=9)])
    with h5py.File(bad, "r+") as f:
        f["steps/observation/state/joints"][3, 0] = np.nan
    report = LeRobotExporter(tmp_path, tmp_path / "out", LeRobotOptions("me/x")).run()
    assert report.episodes == 1 and report.frames == 8
    assert [(p.name, "NaN" in why and "step 3" in why) for p, why in report.skipped] == \
        [(bad.name, True)]
    info = json.loads((tmp_path / "out" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 1 and info["splits"] == {"train": "0:1"}
