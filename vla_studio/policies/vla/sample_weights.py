"""DAgger sample weighting: which training samples a run draws, and how often.

Demonstrations and correction rounds are trained on together. A correction episode (a policy
run with takeovers, see :mod:`vla_studio.data.dagger`) holds three kinds of steps: the policy's,
the operator's (interventions) and holds/pauses. The preset decides what each is worth:

=======================  ==============================================================
preset                   weight of a step of a correction episode (demonstrations: 1)
=======================  ==============================================================
uniform                  policy 1, intervention 1 (plain aggregation, as DAgger)
hg-dagger                intervention 1, policy 0 (only the human segments, HG-DAgger)
intervention-weighted    policy 1; interventions weighted to ``intervention_share`` of the
                         samples drawn (0.5: as many corrected samples as all others)
sirius                   as intervention-weighted, and the policy's steps within the
                         pre-intervention window before each takeover weigh 0 (Sirius)
=======================  ==============================================================

Holds and pauses weigh 0 in every preset (nothing was taught there). A chunk target that runs
into a step of weight 0 is masked out of the loss from that step on, so an intervention sample
is never taught the policy's (or a hold's) actions that followed it.

Weights become a *resampling* of each data shard's rows (systematic, seeded): the trainer's
batch order then runs over the resampled rows exactly as over plain rows, so data-parallel
ranks still see the same global batches, and a run with the uniform preset and no correction
episode draws exactly the rows it drew before weighting existed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vla_studio.data.dagger import DEFAULT_PRE_INTERVENTION_S, dagger_labels, window_steps
from vla_studio.data.episode_file import INTERVENTION, POLICY, TELEOP, EpisodeReader

log = logging.getLogger(__name__)
PRESETS = ("uniform", "hg-dagger", "intervention-weighted", "sirius")


@dataclass(frozen=True)
class Weighting:
    """How correction rounds are weighted (``vla-studio train --dagger-weighting``).

    Attributes:
        preset: one of :data:`PRESETS`.
        intervention_share: share of the drawn samples the interventions make up
            (``intervention-weighted`` and ``sirius``).
        pre_intervention_s: the Sirius window before each takeover, seconds.
    """

    preset: str = "uniform"
    intervention_share: float = 0.5
    pre_intervention_s: float = DEFAULT_PRE_INTERVENTION_S

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown DAgger weighting {self.preset!r}; use one of "
                             f"{', '.join(PRESETS)}")
        if not 0.0 < self.intervention_share < 1.0:
            raise ValueError(f"intervention share {self.intervention_share} must be between 0 "
                             "and 1 (exclusive), e.g. 0.5")
        if self.pre_intervention_s < 0:
            raise ValueError("the pre-intervention window cannot be negative")

    def as_dict(self) -> dict:
        return {"preset": self.preset, "intervention_share": self.intervention_share,
                "pre_intervention_s": self.pre_intervention_s}


@dataclass(frozen=True)
class SamplePlan:
    """Per-step weights of the training episodes and the resampled rows of each data shard.

    Attributes:
        weights: per training episode, ``[T]`` weights of its used steps.
        shard_rows: per data shard, indices into the shard's rows (its episodes' steps one
            after the other), in any order; the batch order permutes them.
        counts: steps per kind over the training episodes (``demo``, ``policy``,
            ``intervention``, ``held``, ``pre_intervention``) and the weight given to each.
    """

    weights: tuple[np.ndarray, ...]
    shard_rows: tuple[np.ndarray, ...]
    counts: dict

    @property
    def sizes(self) -> list[int]:
        return [len(r) for r in self.shard_rows]


def episode_sources(path, start: int, end: int) -> np.ndarray | None:
    """``steps/action_source`` of the used steps, or None for an episode without a policy run
    (a demonstration)."""
    with EpisodeReader(path) as ep:
        if not ep.has_step("action_source"):
            return None
        src = np.asarray(ep.step("action_source")[start:end], np.int64)
    return src if np.isin(src, (POLICY, INTERVENTION)).any() else None


def plan_samples(weighting: Weighting, sources: Sequence[np.ndarray | None],
                 lengths: Sequence[int], shard_episodes: Sequence[Sequence[int]],
                 rate_hz: float, seed: int) -> SamplePlan:
    """Weights and resampled shard rows (see the module docstring).

    Args:
        weighting: the preset and its parameters.
        sources: per training episode, its used steps' action sources (None: a demonstration,
            every step weighs 1).
        lengths: per training episode, its used steps.
        shard_episodes: the training episodes of each data shard, in row order.
        rate_hz: the control rate (for the pre-intervention window).
        seed: the run's seed (the resampling is reproducible).
    """
    weights, counts = step_weights(weighting, sources, lengths, rate_hz)
    rows = []
    for s, eps in enumerate(shard_episodes):
        w = np.concatenate([weights[i] for i in eps]) if eps else np.zeros(0)
        rows.append(resample(w, np.random.default_rng([int(seed), s, 7])))
    return SamplePlan(tuple(weights), tuple(rows), counts)


def resample(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices drawn in proportion to ``weights`` (systematic resampling): as many draws as
    rows of positive weight; every such row exactly once when their weights are all equal."""
    w = np.asarray(weights, np.float64)
    positive = w > 0
    n = int(positive.sum())
    if n == 0:
        return np.zeros(0, np.int64)
    if np.allclose(w[positive], w[positive][0]):
        return np.flatnonzero(positive)
    cum = np.cumsum(w / w.sum()) * n
    idx = np.searchsorted(cum, rng.random() + np.arange(n), side="right")
    return np.minimum(idx, len(w) - 1).astype(np.int64)


def mask_chunks(valid: np.ndarray, episode: np.ndarray, weights: Sequence[np.ndarray]) -> None:
    """Mask, in place, every chunk position at or after a step of weight 0 (``valid`` ``[N, H]``
    and ``episode`` ``[N]`` of a sample table whose episodes' rows follow one another;
    ``weights`` per held episode)."""
    horizon = valid.shape[1]
    first = 0
    for e, w in enumerate(weights):
        n = len(w)
        if n == 0 or (w > 0).all():
            first += n
            continue
        assert np.all(episode[first:first + n] == e), "rows out of episode order"
        idx = np.minimum(np.arange(n)[:, None] + np.arange(horizon)[None, :], n - 1)
        ok = np.logical_and.accumulate(w[idx] > 0, axis=1)
        valid[first:first + n] &= ok
        first += n


def apply_to_training(weighting: Weighting, train_eps: Sequence, shard_episodes:
                      Sequence[Sequence[int]], held: Sequence[int], valid: np.ndarray,
                      episode: np.ndarray, rate_hz: float, seed: int) -> SamplePlan:
    """The trainer's hook: the plan over ``train_eps`` (episode metadata with ``path``,
    ``start``, ``end``), and the chunk masks of this rank's ``held`` episodes (indices into
    ``train_eps``, in the order of the sample table ``valid``/``episode``)."""
    sources = [episode_sources(ep.path, ep.start, ep.end) for ep in train_eps]
    plan = plan_samples(weighting, sources, [ep.num_steps for ep in train_eps], shard_episodes,
                        rate_hz, seed)
    mask_chunks(valid, episode, [plan.weights[i] for i in held])
    if any(s is not None for s in sources):
        log.info("DAgger weighting %s: %s; %d samples per epoch", weighting.preset,
                 ", ".join(f"{k} {v}" for k, v in plan.counts.items()), sum(plan.sizes))
    return plan


def step_weights(weighting: Weighting, sources: Sequence[np.ndarray | None],
                 lengths: Sequence[int], rate_hz: float) -> tuple[list[np.ndarray], dict]:
    """Per-episode step weights and the counts of every kind of step."""
    window = window_steps(weighting.pre_intervention_s, rate_hz) \
        if weighting.preset == "sirius" else 0
    out: list[np.ndarray] = []
    kinds = {"demo": 0, "policy": 0, "intervention": 0, "held": 0, "pre_intervention": 0}
    for src, n in zip(sources, lengths):
        if src is None:
            out.append(np.ones(n))
            kinds["demo"] += n
            continue
        labels = dagger_labels(src, window)
        w = np.zeros(n)
        w[src == TELEOP] = 1.0
        w[src == POLICY] = 0.0 if weighting.preset == "hg-dagger" else 1.0
        w[labels.pre_intervention] = 0.0
        w[labels.intervention] = 1.0
        kinds["policy"] += int((src == POLICY).sum())
        kinds["intervention"] += labels.intervention_steps
        kinds["held"] += int(((src != POLICY) & (src != INTERVENTION) & (src != TELEOP)).sum())
        kinds["pre_intervention"] += int(labels.pre_intervention.sum())
        kinds["demo"] += int((src == TELEOP).sum())
        out.append(w)
    intervention_weight = 1.0
    if weighting.preset in ("intervention-weighted", "sirius") and kinds["intervention"]:
        others = sum(float(w.sum()) for w in out) - kinds["intervention"]
        share = weighting.intervention_share
        if others > 0:
            intervention_weight = share * others / ((1.0 - share) * kinds["intervention"])
        for w, src in zip(out, sources):
            if src is not None:
                w[src == INTERVENTION] = intervention_weight
    kinds["intervention_weight"] = round(intervention_weight, 4)
    return out, kinds
