"""RLDS export of DAgger correction rounds: the step labels (intervention, pre_intervention,
policy_action, confidence) and the round are exported; plain teleop exports are unchanged."""

from __future__ import annotations

import json

import numpy as np

from tests.data.dagger_episodes import SOURCES, write_dagger_dataset
from tests.data.rlds_episode_files import EpisodeSpec, write_dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.rlds import ExportOptions, RldsExporter
from vla_studio.data.rlds.episode_encoder import read_episode

DAGGER_STEPS = {"intervention", "pre_intervention", "policy_action", "confidence"}


def plan_export(dataset, options):
    return RldsExporter(dataset, dataset.parent / "unused", options).plan()


def test_policy_runs_export_the_dagger_labels_per_step(tmp_path):
    paths = write_dagger_dataset(tmp_path / "ds")
    plan = plan_export(tmp_path / "ds", ExportOptions(name="dagger", pre_intervention_s=0.3))
    assert plan.dagger and DAGGER_STEPS <= set(plan.schema().steps)
    assert {"dagger_round", "interventions"} <= set(plan.schema().episode_metadata)
    assert "LeRobot" in plan.schema().steps["intervention"].doc
    by_file = {p.summary.path: p for p in plan.episodes}
    with EpisodeReader(paths[0]) as ep:
        values = read_episode(plan, by_file[paths[0]], ep).values
        recorded = ep.step("policy_action")
    assert values["steps/intervention"].tolist() == (SOURCES == 3).tolist()
    # 0.3 s at 10 Hz: the 3 policy steps before the takeover at step 8.
    assert np.flatnonzero(values["steps/pre_intervention"]).tolist() == [5, 6, 7]
    np.testing.assert_array_equal(values["steps/policy_action"], recorded)
    assert np.isnan(values["steps/confidence"][0]) and values["steps/confidence"][8] > 0
    assert values["steps/action_source"].tolist() == SOURCES.tolist()
    assert values["episode_metadata/dagger_round"].tolist() == [1]
    assert values["episode_metadata/interventions"].tolist() == [1]
    with EpisodeReader(paths[2]) as ep:  # the demonstration in the same export
        demo = read_episode(plan, by_file[paths[2]], ep).values
    assert not demo["steps/intervention"].any() and np.isnan(demo["steps/policy_action"]).all()
    assert demo["episode_metadata/dagger_round"].tolist() == [-1]


def test_a_teleop_export_has_no_dagger_fields_unless_asked(tmp_path):
    write_dataset(tmp_path / "ds", [EpisodeSpec(seed=0), EpisodeSpec(seed=1)])
    plan = plan_export(tmp_path / "ds", ExportOptions(name="plain"))
    assert not plan.dagger and not DAGGER_STEPS & set(plan.schema().steps)
    asked = plan_export(tmp_path / "ds", ExportOptions(name="plain", dagger=True))
    assert asked.dagger and DAGGER_STEPS <= set(asked.schema().steps)
    report = RldsExporter(tmp_path / "ds", tmp_path / "out",
                          ExportOptions(name="plain", dagger=True)).run()
    meta = json.loads((report.dataset_dir / "metadata.json").read_text())
    assert meta["dagger"]["lerobot"]["steps/intervention"] == \
        "complementary_info.is_intervention"
    assert meta["action_source"]["4"] == "paused"
