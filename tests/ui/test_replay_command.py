"""`vla-studio replay FILE|DATASET [EPISODE]` opens the window with the Episodes list on that
dataset and the episode in the Replay view; `--sim-check` re-executes without a window; `bench
replay` reports the figures the issue asks for."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.ui.replay_helpers import write_episodes
from vla_studio import cli
from vla_studio.bench import replay as bench_replay
from vla_studio.ui.replay.measure import measure_replay
from vla_studio.ui import app as ui_app


@pytest.fixture
def dataset(tmp_path):
    write_episodes(tmp_path / "ds", 3, steps=40)
    return tmp_path / "ds"


@pytest.fixture
def launched(monkeypatch):
    calls = []
    monkeypatch.setattr(ui_app, "run_app", lambda profile, reset_layout=False, replay=None:
                        calls.append((profile, replay)) or 0)
    return calls


def test_a_dataset_opens_its_newest_episode_with_the_list_on_that_dataset(dataset, launched):
    assert cli.main(["replay", str(dataset)]) == 0
    profile, episode = launched[0]
    assert profile.dataset_dir == dataset and episode.name.startswith("20261201-1002")
    assert cli.main(["replay", str(dataset), "20261201-100100_00000001"]) == 0
    assert launched[1][1].name == "20261201-100100_00000001.h5"
    file = dataset / "episodes" / "20261201-100000_00000000.h5"
    assert cli.main(["replay", str(file)]) == 0
    assert launched[2] == (launched[2][0], file) and launched[2][0].dataset_dir == dataset


def test_what_cannot_be_replayed_is_one_line(dataset, tmp_path, capsys, launched):
    for args, words in (([str(tmp_path / "nope")], "does not exist"),
                        ([str(tmp_path)], "not a dataset folder"),
                        ([str(dataset), "nosuchepisode"], "no episode 'nosuchepisode'")):
        assert cli.main(["replay", *args]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
    assert not launched


def test_sim_check_says_why_a_non_sim_episode_cannot_be_re_executed(dataset):
    proc = subprocess.run([sys.executable, "-m", "vla_studio", "replay", str(dataset),
                           "--sim-check", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("cannot re-execute: ") == 3
    assert "only episodes recorded on the simulated station" in proc.stderr


def test_the_replay_benchmark_reports_the_issues_figures(tmp_path):
    episode = bench_replay.generate(tmp_path, 0.05, 30.0, 3, (160, 120))
    result = measure_replay(episode, seeks=10, play_seconds=1.0, window=(1200, 800))
    assert {"open_ms", "seek_p50_ms", "seek_p99_ms", "playback_fps",
            "display_frames_dropped"} <= set(result)
    assert result["steps"] == 90 and result["cameras"] == 3 and result["seeks"] > 0
    assert result["playback_fps"] > 0 and result["seek_p99_ms"] >= result["seek_p50_ms"] > 0
    json.dumps(result)
