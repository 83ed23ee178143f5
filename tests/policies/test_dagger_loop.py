"""`vla-studio dagger`: the scripted expert corrects a (tiny, untrained) VLA in lock-step; the
corrected episodes are recorded with their round and labels; the loop's summary and resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.policies.conftest import TINY_MODEL
from tests.policies.micro_dataset import write_micro_dataset
from vla_studio.cli import main as cli_main
from vla_studio.core.types import SourceKind
from vla_studio.data.dagger import dagger_labels
from vla_studio.data.dataset import Dataset
from vla_studio.data.dataset_index import DatasetIndex
from vla_studio.data.episode_file import INTERVENTION, POLICY, EpisodeReader
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import default_station_profile
from vla_studio.policies.vla.train import TrainConfig, train
from vla_studio.sim import dagger as dagger_loop
from vla_studio.sim.dagger import DaggerConfig, DaggerError, run_dagger

RED = "pick up the red cube"
CAP_M = 0.02  # the default station's max_delta_translation


@pytest.fixture(scope="module")
def untrained_vla(micro_dataset, tmp_path_factory):
    """Two optimisation steps of the tiny VLA: its spec fits the simulated station (cameras
    front and wrist, ee_pos and gripper, 20 Hz), its behaviour is close to random."""
    out = tmp_path_factory.mktemp("dagger") / "run"
    cfg = TrainConfig(datasets=(str(micro_dataset),), out=str(out), epochs=1, batch_size=8,
                      device="cpu", threads=1, val_fraction=0.0, max_steps=2, model=TINY_MODEL)
    return train(cfg).best


def test_dagger_round_zero_evaluates_then_collects_labelled_corrections(untrained_vla, tmp_path,
                                                                        capsys):
    out = tmp_path / "session"
    assert cli_main(["dagger", "--policy", str(untrained_vla), "--task", RED, "--rounds", "0",
                     "--episodes-per-round", "1", "--max-seconds", "4", "--where",
                     "in-process", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = summary["rounds"]
    assert row["round"] == 0 and row["episodes"] == 1
    assert row["success_rate"] == 0.0  # alone, the untrained policy fails
    assert 0.0 < row["intervention_rate"] < 1.0  # with help, both drove
    assert row["takeovers_per_episode"] >= 1
    assert json.loads((out / "dagger.json").read_text())["rounds"][0]["round"] == 0
    ds = Dataset(out / "corrections")
    (summary_row,) = DatasetIndex(ds).refresh()
    assert summary_row.dagger_round == 1 and summary_row.source == "dagger"
    (path,) = ds.episode_files()
    with EpisodeReader(path) as ep:
        src = ep.step("action_source")
        labels = dagger_labels(src, 10)
        assert labels.takeovers and ep.attrs["interventions"] == len(labels.takeovers)
        assert summary_row.interventions == len(labels.takeovers)
        action, flags = ep.step("action"), ep.step("safety_flags")
        for start, end in labels.takeovers:
            # Bumpless: the corrector's first command is a small one, never clipped.
            assert np.linalg.norm(action[start, :3]) <= CAP_M + 1e-6 and flags[start] == 0
            # The policy's proposal was recorded beside the corrector's action.
            assert np.isfinite(ep.step("policy_action")[start:end]).all(axis=1).any()
        assert (src == POLICY).any() and (src == INTERVENTION).any()


class _Report:
    """What the loop reads of an evaluation (the simulation itself is tested above)."""

    def __init__(self, assisted: bool, rnd: int) -> None:
        self.figures = {"success_rate": 0.2 * rnd, "per_task": {}, "wrong_object_rate": 0.0,
                        "episodes": 1, "successes": 0, "confidence_success_mean": None,
                        "confidence_failure_mean": None, "infer_p50_ms": 1.0,
                        "intervention_rate": (0.5 - 0.2 * rnd) if assisted else 0.0,
                        "takeovers_per_episode": 1.0 if assisted else 0.0}

    def summary(self) -> dict:
        return self.figures


def test_the_loop_trains_between_rounds_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    calls, trained = [], []
    monkeypatch.setattr(dagger_loop, "_evaluate", lambda c, p, assisted, rnd: calls.append(
        (assisted, rnd)) or _Report(assisted, rnd))
    monkeypatch.setattr(dagger_loop, "_train_round", lambda c, p, rnd, say: trained.append(
        (p, rnd)) or f"{p}+{rnd}")
    cfg = DaggerConfig(policy="start", instructions=(RED,), rounds=2, episodes_per_round=1,
                       out=str(tmp_path / "s"),
                       profile=load_station_profile(default_station_profile()))
    summary = run_dagger(cfg)
    assert [(r["round"], r["policy"]) for r in summary["rounds"]] == [
        (0, "start"), (1, "start+1"), (2, "start+1+2")]
    assert calls == [(False, 0), (True, 0), (False, 1), (True, 1), (False, 2), (True, 2)]
    assert trained == [("start", 1), ("start+1", 2)]
    assert summary["success_gain"] == pytest.approx(0.4)
    assert summary["intervention_rate_falls"] is True
    assert summary["policy"] == "start+1+2"
    with pytest.raises(DaggerError, match="--resume"):
        run_dagger(cfg)
    calls.clear()
    assert run_dagger(cfg, resume=True)["rounds"] == summary["rounds"]  # all done already
    assert calls == []
    # An interrupted collection runs again; what it had recorded goes to the trash first.
    data = json.loads((tmp_path / "s" / "dagger.json").read_text())
    data["rounds"][2]["assisted"] = None
    (tmp_path / "s" / "dagger.json").write_text(json.dumps(data))
    write_micro_dataset(cfg.corrections, episodes=1, sources=lambda e, i: SourceKind.POLICY,
                        dagger_round=3)
    run_dagger(cfg, resume=True)
    assert calls == [(True, 2)]
    rows = DatasetIndex(Dataset(cfg.corrections)).refresh(include_trashed=True)
    assert [(r.dagger_round, r.trashed) for r in rows] == [(3, True)]
    with pytest.raises(DaggerError, match="began from start"):
        run_dagger(replace(cfg, policy="another"), resume=True)
