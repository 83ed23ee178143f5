"""`vla-studio demo-to-policy`: expert demos in lock-step, training, evaluation, in one command."""

from __future__ import annotations

import json

import h5py

from vla_studio.cli import main as cli_main
from vla_studio.data.dataset import Dataset


def test_demo_to_policy_records_trains_evaluates_and_names_the_policy(tmp_path, capsys):
    out = tmp_path / "pick"
    argv = ["demo-to-policy", "--out", str(out), "--task", "pick up the red cube",
            "--episodes", "2", "--workers", "1", "--epochs", "1", "--threads", "1",
            "--eval-episodes", "1", "--eval-max-seconds", "1"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert f"The policy: {out / 'run' / 'best'}" in printed
    assert "episode 1/1: 'pick up the red cube' seed 900000" in printed  # eval streams its lines
    episodes = Dataset(out / "demos").episode_files()
    assert len(episodes) == 2
    # The demonstrations were recorded with pushes, on the station written beside them.
    station = (out / "station.toml").read_text()
    assert "push_speed = 0.08" in station and "push_turn = 0.5" in station
    with h5py.File(episodes[0], "r") as f:
        assert f.attrs["station_profile"] == station
    config = json.loads((out / "run" / "best" / "config.json").read_text())
    assert "coord_channels" in json.dumps(config)  # the measured training recipe
    assert (out / "run" / "best" / "model.safetensors").is_file()
    summary = json.loads((out / "eval.json").read_text())
    assert summary["episodes"] == 1
    assert set(summary["timings"]) == {"record_s", "train_s", "eval_s"}
    # Run again: the demos are there, the run is refused (it would be overwritten).
    assert cli_main(argv) == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_demo_to_policy_corrects_the_policy_with_the_expert_and_evaluates_the_result(
        tmp_path, capsys):
    out = tmp_path / "pick"
    argv = ["demo-to-policy", "--out", str(out), "--task", "pick up the red cube",
            "--episodes", "2", "--workers", "1", "--epochs", "1", "--threads", "1",
            "--correction-rounds", "1", "--correction-episodes", "1", "--correction-epochs", "1",
            "--eval-episodes", "1", "--eval-max-seconds", "1"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    final = out / "dagger" / "round_1" / "best"
    assert f"The policy: {final}" in printed
    session = json.loads((out / "dagger" / "dagger.json").read_text())
    assert [r["round"] for r in session["rounds"]] == [0, 1]
    assert session["settings"]["weighting"]["intervention_share"] == 0.3
    assert session["settings"]["seed"] == 500_000  # corrections far from demos and evaluation
    # Each policy's corrected episode was recorded into the session's corrections: the one the
    # fine-tuning learnt from (round 1) and the final policy's (round 2, its intervention rate).
    corrected = Dataset(out / "dagger" / "corrections").episode_files()
    rounds = []
    for path in corrected:
        with h5py.File(path, "r") as f:
            rounds.append(int(f.attrs["dagger_round"]))
    assert sorted(rounds) == [1, 2]
    summary = json.loads((out / "eval.json").read_text())
    assert summary["policy"] == str(final)
    assert set(summary["timings"]) == {"record_s", "train_s", "correction_s", "eval_s"}


def test_demo_to_policy_refuses_a_push_out_of_range_before_recording(tmp_path, capsys):
    out = tmp_path / "pick"
    argv = ["demo-to-policy", "--out", str(out), "--episodes", "2", "--push-speed", "0.5"]
    assert cli_main(argv) == 2
    assert "--push-speed" in capsys.readouterr().err
    assert not (out / "demos").exists()
    assert not out.exists()  # refused before anything is written
