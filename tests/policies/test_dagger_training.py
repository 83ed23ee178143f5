"""DAgger training: presets weigh the steps of correction rounds, resampling follows the weights,
chunk targets never run into weightless steps, and `train` fine-tunes from a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.policies.micro_dataset import write_micro_dataset
from vla_studio.core.types import SourceKind
from vla_studio.data.episode_file import HOLD, INTERVENTION, PAUSED, POLICY
from vla_studio.policies.vla import checkpoint
from vla_studio.policies.vla.sample_weights import (Weighting, mask_chunks, plan_samples,
                                                    resample, step_weights)
from vla_studio.policies.vla.train import train

P, I, H, Z = POLICY, INTERVENTION, HOLD, PAUSED
# One correction episode: the policy drives, pauses, drives, the operator takes over, hands back.
EPISODE = np.array([Z, Z, P, P, P, P, P, P, I, I, I, I, P, P, H, P])


def _weights(preset: str, **kw) -> tuple[np.ndarray, np.ndarray, dict]:
    w, counts = step_weights(Weighting(preset, **kw), [None, EPISODE], [10, len(EPISODE)], 20.0)
    return w[0], w[1], counts


def test_presets_weigh_the_steps_of_correction_rounds():
    demo, ep, counts = _weights("uniform")
    assert (demo == 1).all()
    assert (ep[EPISODE == P] == 1).all() and (ep[EPISODE == I] == 1).all()
    assert (ep[np.isin(EPISODE, (H, Z))] == 0).all()  # holds and pauses teach nothing
    assert counts["intervention"] == 4 and counts["policy"] == 9 and counts["demo"] == 10
    _, ep, _ = _weights("hg-dagger")
    assert (ep[EPISODE == P] == 0).all() and (ep[EPISODE == I] == 1).all()
    demo, ep, counts = _weights("intervention-weighted", intervention_share=0.5)
    interventions = ep[EPISODE == I].sum()
    others = demo.sum() + ep[EPISODE == P].sum()
    assert interventions == pytest.approx(others)  # half of what is drawn is corrections
    _, ep, counts = _weights("sirius", intervention_share=0.5, pre_intervention_s=0.1)
    assert counts["pre_intervention"] == 2
    assert (ep[6:8] == 0).all() and (ep[2:6] == 1).all()  # the 2 steps before the takeover
    assert ep[8:12].sum() == pytest.approx(10 + 7)  # half of demos + the policy's kept steps


def test_resampling_follows_the_weights_and_is_the_identity_when_they_are_equal():
    rng = np.random.default_rng(0)
    assert resample(np.ones(7), rng).tolist() == list(range(7))
    assert resample(np.array([1, 0, 1, 1.0]), rng).tolist() == [0, 2, 3]
    w = np.array([1.0] * 8 + [3.0] * 4)
    drawn = resample(w, rng)
    assert len(drawn) == 12
    counts = np.bincount(drawn, minlength=12)
    # 12 of 20 weight units are the heavy rows': 7.2 of the 12 draws, systematically
    assert counts[8:].sum() in (7, 8) and (counts[8:] >= 1).all() and (counts[:8] <= 1).all()


def test_chunk_targets_stop_at_the_first_weightless_step():
    w = np.array([1, 1, 0, 1, 1.0])
    valid = np.ones((5, 3), bool)
    mask_chunks(valid, np.zeros(5, np.int64), [w])
    assert valid.tolist() == [[True, True, False], [True, False, False], [False] * 3,
                              [True, True, True], [True, True, True]]


def test_plan_resamples_each_data_shard_over_its_own_episodes():
    plan = plan_samples(Weighting("hg-dagger"), [None, EPISODE, None], [3, len(EPISODE), 2],
                        [[0, 2], [1]], 20.0, seed=0)
    assert plan.shard_rows[0].tolist() == [0, 1, 2, 3, 4]  # demonstrations only: every row
    assert sorted(set(plan.shard_rows[1].tolist())) == [8, 9, 10, 11]  # operator steps only


def _correction_source(e: int, i: int) -> SourceKind:
    if i < 2:
        return SourceKind.HOLD  # paused before the run started
    return SourceKind.INTERVENTION if 8 <= i < 14 else SourceKind.POLICY


@pytest.fixture(scope="module")
def corrections(tmp_path_factory):
    return write_micro_dataset(tmp_path_factory.mktemp("dagger") / "corrections", episodes=4,
                               seed=5, sources=_correction_source, dagger_round=1)


def test_train_fine_tunes_from_a_checkpoint_on_demos_and_corrections(tiny_config, corrections,
                                                                     tmp_path):
    first = train(tiny_config(out=str(tmp_path / "round0"), epochs=1, max_steps=3))
    weighting = Weighting("intervention-weighted", intervention_share=0.5)
    cfg = tiny_config(datasets=(*tiny_config().datasets, str(corrections)),
                      out=str(tmp_path / "round1"), epochs=1, max_steps=3,
                      init=str(first.run_dir), weighting=weighting)
    result = train(cfg)
    start = checkpoint.load(first.best)
    tuned = checkpoint.load(result.best)
    assert tuned.tokenizer.vocab == start.tokenizer.vocab  # the previous policy's vocabulary
    assert tuned.actions.q01.tolist() == start.actions.q01.tolist()  # and its normalisation
    info = tuned.training
    assert info["init"] == str(first.run_dir) and info["weighting"]["preset"] == \
        "intervention-weighted"
    samples = info["samples"]
    assert samples["intervention"] > 0 and samples["held"] > 0
    assert samples["intervention_weight"] > 1.0  # a few corrected steps made up half the draw
    # Fine-tuning starts from the previous weights: its first loss is the first run's last.
    assert result.losses[0] < first.losses[0]
    metrics = [json.loads(line) for line in
               (tmp_path / "round1" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and metrics[0]["step"] == 1
