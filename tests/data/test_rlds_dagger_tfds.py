"""Round trip through tensorflow_datasets of an export of DAgger correction rounds: the per-step
intervention, pre-intervention, policy_action and confidence fields and the round load
unchanged beside the recorded actions. (Runs in its own process: it imports TensorFlow, see
ISOLATED in tests/conftest.py.)"""

from __future__ import annotations

import h5py
import numpy as np
import tensorflow_datasets as tfds

from tests.data.dagger_episodes import SOURCES, write_dagger_dataset
from vla_studio.data.rlds import ExportOptions, RldsExporter


def test_dagger_labels_load_in_tfds_as_exported(tmp_path):
    paths = write_dagger_dataset(tmp_path / "ds", rounds=(1, 2))
    RldsExporter(tmp_path / "ds", tmp_path / "out",
                 ExportOptions(name="corrections", pre_intervention_s=0.3)).run()
    builder = tfds.builder("corrections", data_dir=str(tmp_path / "out"))
    features = builder.info.features["steps"]
    assert "is_intervention" in features["intervention"].doc.desc
    episodes = {e["episode_metadata"]["file_path"].decode(): e
                for e in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert len(episodes) == 3
    for path, rnd in zip(paths, (1, 2, -1)):
        episode = episodes[str(path.resolve())]
        steps = list(episode["steps"])
        assert int(episode["episode_metadata"]["dagger_round"]) == rnd
        intervention = np.array([bool(s["intervention"]) for s in steps])
        source = np.array([int(s["action_source"]) for s in steps])
        with h5py.File(path, "r") as f:
            recorded = f["steps/action"][:]
            proposed = f["steps/policy_action"][:] if "policy_action" in f["steps"] else None
        np.testing.assert_array_equal(np.stack([s["action"] for s in steps]), recorded)
        if rnd < 0:
            assert not intervention.any() and (source == 1).all()
            continue
        assert source.tolist() == SOURCES.tolist()
        assert intervention.tolist() == (SOURCES == 3).tolist()
        assert [i for i, s in enumerate(steps) if s["pre_intervention"]] == [5, 6, 7]
        assert int(episode["episode_metadata"]["interventions"]) == 1
        np.testing.assert_array_equal(np.stack([s["policy_action"] for s in steps]), proposed)
        conf = np.array([float(s["confidence"]) for s in steps])
        assert np.isnan(conf[:2]).all() and (conf[8:12] > 0).all()
