"""How sure the policy is, and what happens when it is not.

Confidence per action, in [0, 1], by the first method that applies:

* ``policy`` - the chunk carries it (token probability of a discrete action head).
* ``sample spread`` - the chunk carries ``N`` sampled chunks (``extras["samples"]``, ``[N, H, D]``)
  or the runner drew ``N`` by calling a stochastic policy ``N`` times: per step,
  ``exp(-mean_d(std_d / scale_d))``.
* ``consistency`` - chunk-to-chunk agreement: where a new chunk overlaps the previous one in
  time, ``exp(-mean_d(rms_d / scale_d))`` of their difference (a policy that keeps changing its
  mind about the same ticks is unsure). The first chunk has no predecessor: unknown (NaN).

``scale_d`` is the action's standard deviation from the policy's normalisation statistics
(``action/std``) when it has them, else the RMS of the actions compared; dimensions with zero
scale (a constant gripper) are left out. :class:`LowConfidenceMonitor` turns per-step values into
the fallback trigger: below the threshold for ``window`` consecutive steps.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from vla_studio.policies.base import ActionChunk
from vla_studio.policies.chunk_schedule import TimedChunk

POLICY, SAMPLES, CONSISTENCY, UNKNOWN = "policy", "sample spread", "consistency", "none"
METHODS = ("auto", POLICY, SAMPLES, CONSISTENCY)


def action_scale(normalization: Mapping[str, np.ndarray], dim: int) -> np.ndarray | None:
    """Per-dimension scale from ``action/std`` statistics, or None."""
    std = normalization.get("action/std")
    if std is None or np.asarray(std).shape != (dim,):
        return None
    return np.asarray(std, np.float64)


def _score(spread: np.ndarray, scale: np.ndarray | None, reference: np.ndarray) -> np.ndarray:
    """``exp(-mean_d(spread / scale))`` over the last axis; NaN when no dimension has a scale."""
    if scale is None:
        scale = np.sqrt(np.mean(np.square(reference), axis=tuple(range(reference.ndim - 1))))
    use = scale > 1e-12
    if not use.any():
        return np.full(spread.shape[:-1], math.nan)
    return np.exp(-np.mean(spread[..., use] / scale[use], axis=-1))


class ConfidenceEstimator:
    """Gives every chunk a per-step confidence and names the method.

    Args:
        method: ``auto`` (policy, then samples, then consistency) or one method to insist on.
        scale: per-dimension action scale (see :func:`action_scale`); None = relative.
    """

    def __init__(self, method: str = "auto", scale: np.ndarray | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown confidence method {method!r}; allowed: {', '.join(METHODS)}")
        self.method, self.scale = method, scale

    def estimate(self, chunk: ActionChunk, t_obs: float, dt: float,
                 previous: TimedChunk | None) -> tuple[np.ndarray, str]:
        """``([H] confidence, method)`` for ``chunk`` (observation at ``t_obs``)."""
        h = chunk.actions.shape[0]
        if chunk.confidence is not None and self.method in ("auto", POLICY):
            return np.clip(np.asarray(chunk.confidence, np.float64), 0.0, 1.0), POLICY
        samples = chunk.extras.get("samples")
        if (isinstance(samples, np.ndarray) and samples.ndim == 3 and samples.shape[0] > 1
                and samples.shape[1:] == chunk.actions.shape and self.method in ("auto", SAMPLES)):
            spread = np.std(samples, axis=0)
            return np.clip(_score(spread, self.scale, samples.reshape(-1, samples.shape[2])),
                           0.0, 1.0), f"{SAMPLES} (N={samples.shape[0]})"
        if self.method in ("auto", CONSISTENCY):
            return np.full(h, self._consistency(chunk.actions, t_obs, dt, previous)), CONSISTENCY
        return np.full(h, math.nan), UNKNOWN

    def _consistency(self, actions: np.ndarray, t_obs: float, dt: float,
                     previous: TimedChunk | None) -> float:
        if previous is None:
            return math.nan
        new_idx, old_idx = [], []
        for i in range(actions.shape[0]):
            j = previous.index_at(t_obs + i * dt)
            if 0 <= j < previous.horizon:
                new_idx.append(i)
                old_idx.append(j)
        if not new_idx:
            return math.nan
        a, b = actions[new_idx], previous.actions[old_idx]
        rms = np.sqrt(np.mean(np.square(a - b), axis=0))
        return float(np.clip(_score(rms, self.scale, np.concatenate([a, b])), 0.0, 1.0))


class LowConfidenceMonitor:
    """Fires once when confidence stays below ``threshold`` for ``window`` consecutive steps.

    Unknown values (NaN) neither extend nor break a streak. ``threshold <= 0`` disables it.
    """

    def __init__(self, threshold: float, window: int) -> None:
        self.threshold, self.window = threshold, max(1, window)
        self.streak = 0
        self.fired = False

    def update(self, confidence: float) -> bool:
        """Feed one executed step; True exactly on the step the window fills."""
        if self.threshold <= 0 or math.isnan(confidence):
            return False
        if confidence < self.threshold:
            self.streak += 1
        else:
            self.streak = 0
            self.fired = False
        if self.streak >= self.window and not self.fired:
            self.fired = True
            return True
        return False

    def reset(self) -> None:
        self.streak = 0
        self.fired = False
