"""`vla-studio eval`: a tiny VLA trained on lock-step demonstrations, run closed-loop through the
station's runner, safety filter and gate, with its rollouts recorded."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.policies.conftest import TINY_MODEL
from vla_studio.cli import main as cli_main
from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.policies.vla import checkpoint
from vla_studio.policies.vla.batches import Augmentation
from vla_studio.policies.vla.normalization import ActionBins
from vla_studio.policies.vla.train import TrainConfig, train

RED, BLUE = "pick up the red cube", "pick up the blue cube"
KEYS = ("success_rate", "per_task", "wrong_object_rate", "confidence_success_mean",
        "confidence_failure_mean", "latency_p99_ms", "episodes")
MAX_DELTA_M = 0.02  # the default station's max_delta_translation


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """A few optimisation steps of the tiny model on two lock-step expert demonstrations."""
    root = tmp_path_factory.mktemp("eval")
    tasks = root / "tasks.txt"
    tasks.write_text(f"{RED}\n{BLUE}\n")
    data = root / "demos"
    assert cli_main(["record", "--teleop", "scripted", "--task-file", str(tasks), "--episodes",
                     "2", "--seed", "21", "--lockstep", "--dataset", str(data)]) == 0
    cfg = TrainConfig(datasets=(str(data),), out=str(root / "run"), epochs=1, batch_size=8,
                      seed=0, device="cpu", threads=1, val_fraction=0.0, max_steps=4,
                      model=replace(TINY_MODEL, chunk_size=4), augmentation=Augmentation(shift=2))
    return train(cfg).best


def _eval(capsys, policy, *extra: str) -> dict:
    assert cli_main(["eval", "--policy", str(policy), "--task", RED, "--task", BLUE,
                     "--episodes", "2", "--seed", "900000", "--max-seconds", "1.5", "--json",
                     *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_reports_the_figures_and_records_policy_rollouts(tiny_policy, tmp_path, capsys):
    rollouts = tmp_path / "rollouts"
    summary = _eval(capsys, tiny_policy, "--record", str(rollouts))
    for key in KEYS:
        assert key in summary
    assert summary["episodes"] == 2 and summary["clock"] == "sim"
    assert set(summary["per_task"]) == {RED, BLUE}
    assert 0.0 <= summary["success_rate"] <= 1.0 and 0.0 <= summary["wrong_object_rate"] <= 1.0
    assert summary["latency_p99_ms"] > 0  # host time of the child process's answers
    outcomes = summary["outcomes"]
    assert [o["seed"] for o in outcomes] == [900000, 900001]
    assert [o["instruction"] for o in outcomes] == [RED, BLUE]
    assert all(o["policy_steps"] > 20 and 0 < o["confidence_mean"] <= 1 for o in outcomes)
    files = sorted(Dataset(rollouts).episode_files())
    assert len(files) == 2 and sorted(o["path"] for o in outcomes) == [str(f) for f in files]
    for path in files:
        with EpisodeReader(path) as ep:
            assert ep.attrs["clock"] == "sim" and ep.attrs["policy_id"]
            sources = ep.step("action_source")
            assert (sources == 2).sum() > 20  # steps the policy drove, through the loop
            conf = ep.step("confidence")[sources == 2]
            assert np.isfinite(conf).all() and ((0 < conf) & (conf <= 1)).all()
            assert ep.step("policy_action").shape == ep.step("action").shape


def test_recording_the_rollouts_does_not_change_them(tiny_policy, tmp_path, capsys):
    """Both start every episode on frames rendered after the reset, so a recorded evaluation
    is the same rollout as an unrecorded one (a first chunk computed from a picture of the
    previous episode's scene used to make them differ)."""
    keys = ("success", "ended_by", "duration_s", "policy_steps", "confidence_mean")
    plain = _eval(capsys, tiny_policy)["outcomes"]
    recorded = _eval(capsys, tiny_policy, "--record", str(tmp_path / "rollouts"))["outcomes"]
    assert [[o[k] for k in keys] for o in plain] == [[o[k] for k in keys] for o in recorded]


def test_an_episode_replays_from_its_seed_alone(tiny_policy, tmp_path, capsys):
    """Episode 2 of an evaluation is the same rollout as its seed evaluated on its own, so a
    failure seen in a long evaluation can be rerun (and recorded) by itself."""
    both = _eval(capsys, tiny_policy, "--record", str(tmp_path / "both"))
    assert cli_main(["eval", "--policy", str(tiny_policy), "--task", BLUE, "--episodes", "1",
                     "--seed", "900001", "--max-seconds", "1.5", "--record",
                     str(tmp_path / "alone"), "--json"]) == 0
    capsys.readouterr()

    def states(folder, seed):
        for path in Dataset(folder).episode_files():
            with EpisodeReader(path) as ep:
                if int(ep.attrs["seed"]) == seed:
                    return ep.step("observation/state/joint_pos"), ep.step("action")
        raise AssertionError(f"no episode of seed {seed} in {folder}")

    in_sequence, alone = states(tmp_path / "both", 900001), states(tmp_path / "alone", 900001)
    assert both["outcomes"][1]["seed"] == 900001
    for a, b in zip(in_sequence, alone):
        np.testing.assert_array_equal(a, b)


def test_an_out_of_range_policy_is_clamped_by_the_station_filter(tiny_policy, tmp_path, capsys):
    """The policy's actions reach the robot only through the ActionFilter: a model whose bins
    span ten times the station's per-step cap has its commands clipped to the cap."""
    ckpt = checkpoint.load(tiny_policy)
    wide = ActionBins(ckpt.actions.q01 * 10.0, ckpt.actions.q99 * 10.0, ckpt.actions.bins)
    wild = checkpoint.save(tmp_path / "wild", model=ckpt.model, weights=ckpt.weights,
                           spec=ckpt.spec, tokenizer=ckpt.tokenizer, actions=wide,
                           state=ckpt.state, training=ckpt.training)
    rollouts = tmp_path / "rollouts"
    summary = _eval(capsys, wild, "--record", str(rollouts))
    assert summary["episodes"] == 2
    clamped = requested_beyond = 0
    for path in sorted(Dataset(rollouts).episode_files()):
        with EpisodeReader(path) as ep:
            policy = ep.step("action_source") == 2
            sent = ep.step("action")[policy, :3]
            asked = ep.step("policy_action")[policy, :3]
            assert np.linalg.norm(sent, axis=1).max() <= MAX_DELTA_M + 1e-6
            requested_beyond += int((np.linalg.norm(asked, axis=1) > MAX_DELTA_M + 1e-6).sum())
            clamped += sum(ep.attrs["safety_counts"].values())
    assert requested_beyond > 0 and clamped > 0


def test_eval_in_real_time_runs_the_asynchronous_runner(tiny_policy, capsys):
    summary = _eval(capsys, tiny_policy, "--realtime", "--episodes", "1")
    assert summary["clock"] == "host" and summary["episodes"] == 1
    assert summary["outcomes"][0]["policy_steps"] > 5
    assert summary["latency_p99_ms"] > 0


def test_eval_refuses_an_instruction_the_simulator_cannot_judge(tiny_policy, capsys):
    assert cli_main(["eval", "--policy", str(tiny_policy), "--task", "dance"]) == 2
    assert "not a task of the simulated tabletop" in capsys.readouterr().err
