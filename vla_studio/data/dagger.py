"""DAgger labels of recorded steps: who drove, the takeovers, and the steps just before them.

Everything here derives from ``steps/action_source`` (see :mod:`vla_studio.data.episode_file`),
so a label never disagrees with what was recorded and the pre-intervention window can be chosen
after recording (the RLDS export and the trainer take it as an option)::

    action_source   P P P P P P P P I I I I I I P P P P H H P P P
    intervention    . . . . . . . . x x x x x x . . . . . . . . .   LeRobot's is_intervention
    pre_interv.     . . . . . x x x . . . . . . . . . . . . . . .   window = 3 steps (Sirius)
    takeovers                       [8         14)

* ``intervention``: the operator (or the automatic corrector) drove the step during a policy run
  (code 3); LeRobot records the same flag as ``complementary_info.is_intervention``.
* ``pre_intervention``: a step the *policy* drove within ``window`` steps before a takeover: the
  robot's actions that led the operator to step in (Sirius, Liu et al. 2023, treats them as
  the least trustworthy samples).
* the *intervention rate* of an episode or a round: intervention steps over the steps the policy
  or the operator drove (holds and pauses count for neither).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from vla_studio.data.episode_file import HOLD, INTERVENTION, PAUSED, POLICY

DEFAULT_PRE_INTERVENTION_S = 1.0  # Sirius-style window before each takeover


@dataclass(frozen=True)
class DaggerLabels:
    """Per-step DAgger labels of one episode (arrays of the episode's length).

    Attributes:
        intervention: True where the operator drove during a policy run.
        pre_intervention: True where the policy drove within the window before a takeover.
        takeovers: ``[start, end)`` of every intervention segment.
    """

    intervention: np.ndarray
    pre_intervention: np.ndarray
    takeovers: tuple[tuple[int, int], ...]
    policy_steps: int

    @property
    def intervention_steps(self) -> int:
        return int(self.intervention.sum())

    @property
    def intervention_rate(self) -> float:
        """Intervention steps over the steps the policy or the operator drove (NaN: none)."""
        driven = self.policy_steps + self.intervention_steps
        return self.intervention_steps / driven if driven else math.nan


def window_steps(seconds: float, rate_hz: float) -> int:
    """The pre-intervention window in steps (``seconds`` at ``rate_hz``, at least 0)."""
    if not (seconds > 0 and rate_hz > 0):
        return 0
    return max(0, int(round(seconds * rate_hz)))


def segments(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True in ``mask``."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def dagger_labels(action_source: np.ndarray, window: int) -> DaggerLabels:
    """The labels of an episode whose ``steps/action_source`` is ``action_source``.

    Args:
        action_source: per-step codes (0 hold, 1 teleop, 2 policy, 3 intervention, 4 paused).
        window: pre-intervention window in steps (0: none).
    """
    src = np.asarray(action_source, np.int64).reshape(-1)
    intervention = src == INTERVENTION
    policy = src == POLICY
    takeovers = segments(intervention)
    pre = np.zeros(src.shape[0], bool)
    if window > 0:
        for start, _ in takeovers:
            pre[max(0, start - window):start] = True
        pre &= policy  # only what the robot itself did; holds and pauses are not samples
    return DaggerLabels(intervention, pre, tuple(takeovers), int(policy.sum()))


def held(action_source: np.ndarray) -> np.ndarray:
    """True where nothing drove the robot (a hold or a pause)."""
    src = np.asarray(action_source, np.int64).reshape(-1)
    return (src == HOLD) | (src == PAUSED)


@dataclass(frozen=True)
class RoundStats:
    """One DAgger round of a dataset (the window's rounds plot, ``vla-studio dataset``).

    Attributes:
        round: the round number (0 = episodes recorded outside any round, e.g. demonstrations).
        episodes: episodes of the round.
        successes: episodes marked successful.
        marked: episodes whose outcome is known.
        intervention_steps: steps the operator drove during the round's policy runs.
        policy_steps: steps the policy drove.
        takeovers: takeovers in the round.
    """

    round: int
    episodes: int
    successes: int
    marked: int
    intervention_steps: int
    policy_steps: int
    takeovers: int

    @property
    def success_rate(self) -> float:
        return self.successes / self.marked if self.marked else math.nan

    @property
    def intervention_rate(self) -> float:
        driven = self.intervention_steps + self.policy_steps
        return self.intervention_steps / driven if driven else math.nan


def round_stats(rows: Iterable[tuple[int | None, bool | None, Mapping[str, int], int]]
                ) -> list[RoundStats]:
    """Per-round figures from ``(round, success, source_counts, takeovers)`` of each episode
    (round None: outside any round), rounds in order."""
    acc: dict[int, list[int]] = {}
    for rnd, success, counts, takeovers in rows:
        key = int(rnd) if rnd is not None and rnd >= 0 else 0
        a = acc.setdefault(key, [0, 0, 0, 0, 0, 0])
        a[0] += 1
        a[1] += int(success is True)
        a[2] += int(success is not None)
        a[3] += int(counts.get("intervention", 0))
        a[4] += int(counts.get("policy", 0))
        a[5] += int(takeovers)
    return [RoundStats(r, *a) for r, a in sorted(acc.items())]
