"""Normalisation of actions (q01/q99 -> [-1, 1] -> 256 discrete bins) and of robot state.

Actions are discretised RT-2/OpenVLA style: each dimension is mapped linearly from its 1st..99th
percentile range onto [-1, 1] (the percentiles, not min/max, so a few outlier steps do not waste
most of the bins), clipped, and cut into ``bins`` equal bins. The model predicts a bin per
dimension; decoding takes the bin centre back to the action's units.

State features are standardised (mean/std) before the state projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

NORMALIZATION_FORMAT = "vla-studio-normalization"
# A dimension whose 1-99 % range is narrower than this is treated as constant: dividing by a
# near-zero range would turn float noise into full-scale bins.
MIN_RANGE = 1e-6
# Standard deviations below this are raised to it, for the same reason (e.g. a fixed quaternion
# component).
MIN_STD = 1e-2


@dataclass(frozen=True)
class ActionBins:
    """Per-dimension q01/q99 normalisation and the discrete bins over it.

    Attributes:
        q01: ``[D]`` 1st percentile of each action dimension.
        q99: ``[D]`` 99th percentile.
        bins: bins per dimension.
    """

    q01: np.ndarray
    q99: np.ndarray
    bins: int = 256

    def __post_init__(self) -> None:
        q01 = np.asarray(self.q01, np.float64).reshape(-1)
        q99 = np.asarray(self.q99, np.float64).reshape(-1)
        if q01.shape != q99.shape or not q01.size:
            raise ValueError(f"q01 {q01.shape} and q99 {q99.shape} must be equal, non-empty [D]")
        if not (np.isfinite(q01).all() and np.isfinite(q99).all()) or (q99 < q01).any():
            raise ValueError("q01/q99 must be finite with q01 <= q99")
        if self.bins < 2:
            raise ValueError("bins must be >= 2")
        object.__setattr__(self, "q01", q01)
        object.__setattr__(self, "q99", q99)

    @classmethod
    def fit(cls, actions: np.ndarray, bins: int = 256) -> "ActionBins":
        """Percentiles of ``actions`` ``[N, D]``."""
        a = np.asarray(actions, np.float64)
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(f"need [N, D] actions with N > 0, got {a.shape}")
        return cls(np.quantile(a, 0.01, axis=0), np.quantile(a, 0.99, axis=0), bins)

    @property
    def dim(self) -> int:
        return int(self.q01.shape[0])

    def _range(self) -> np.ndarray:
        return np.maximum(self.q99 - self.q01, MIN_RANGE)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Actions ``[..., D]`` in [-1, 1] (clipped outside the q01..q99 range)."""
        x = 2.0 * (np.asarray(actions, np.float64) - self.q01) / self._range() - 1.0
        return np.clip(x, -1.0, 1.0)

    def to_tokens(self, actions: np.ndarray) -> np.ndarray:
        """Bin index ``[..., D]`` (int64 in ``0..bins-1``) of each action dimension."""
        x = self.normalize(actions)
        return np.clip(np.floor((x + 1.0) * 0.5 * self.bins), 0, self.bins - 1).astype(np.int64)

    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Actions ``[..., D]`` at the centres of the bins ``tokens``."""
        centres = -1.0 + (np.asarray(tokens, np.float64) + 0.5) * 2.0 / self.bins
        return self.q01 + (centres + 1.0) * 0.5 * self._range()

    def to_json(self) -> dict:
        return {"q01": self.q01.tolist(), "q99": self.q99.tolist(), "bins": self.bins}

    @classmethod
    def from_json(cls, data: Mapping) -> "ActionBins":
        return cls(np.asarray(data["q01"]), np.asarray(data["q99"]), int(data["bins"]))


@dataclass(frozen=True)
class StateStats:
    """Mean/std standardisation of the concatenated state features.

    Attributes:
        keys: state feature names, in the order they are concatenated.
        sizes: elements of each feature.
        mean: ``[S]`` mean of the concatenated vector.
        std: ``[S]`` standard deviation (at least ``MIN_STD``).
    """

    keys: tuple[str, ...]
    sizes: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, np.float64).reshape(-1)
        std = np.maximum(np.asarray(self.std, np.float64).reshape(-1), MIN_STD)
        if len(self.keys) != len(self.sizes) or mean.shape != (sum(self.sizes),) \
                or std.shape != mean.shape:
            raise ValueError(f"state stats do not match the features {dict(zip(self.keys, self.sizes))}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError("state mean/std must be finite")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def fit(cls, keys: Sequence[str], states: Mapping[str, np.ndarray]) -> "StateStats":
        """Statistics of ``states`` (``key -> [N, ...]``)."""
        flat = concat_state(keys, states)
        sizes = tuple(int(np.prod(np.asarray(states[k]).shape[1:], dtype=np.int64)) for k in keys)
        return cls(tuple(keys), sizes, flat.mean(axis=0), flat.std(axis=0))

    @classmethod
    def from_flat(cls, keys: Sequence[str], shapes: Sequence[Sequence[int]],
                  flat: np.ndarray) -> "StateStats":
        """Statistics of already concatenated states ``[N, S]`` of features ``keys``."""
        sizes = tuple(int(np.prod(shape, dtype=np.int64)) for shape in shapes)
        f = np.asarray(flat, np.float64).reshape(len(flat), -1)
        if f.shape[1] != sum(sizes):
            raise ValueError(f"states of size {f.shape[1]} do not match the features {list(keys)}")
        return cls(tuple(keys), sizes, f.mean(axis=0) if len(f) else np.zeros(f.shape[1]),
                   f.std(axis=0) if len(f) else np.ones(f.shape[1]))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def normalize(self, flat: np.ndarray) -> np.ndarray:
        return (np.asarray(flat, np.float64) - self.mean) / self.std

    def to_json(self) -> dict:
        out, start = {}, 0
        for key, size in zip(self.keys, self.sizes):
            out[key] = {"mean": self.mean[start:start + size].tolist(),
                        "std": self.std[start:start + size].tolist()}
            start += size
        return out

    @classmethod
    def from_json(cls, data: Mapping) -> "StateStats":
        keys = tuple(data)
        means = [np.asarray(data[k]["mean"], np.float64).reshape(-1) for k in keys]
        stds = [np.asarray(data[k]["std"], np.float64).reshape(-1) for k in keys]
        if any(m.shape != s.shape for m, s in zip(means, stds)):
            raise ValueError("state mean and std of a feature differ in size")
        sizes = tuple(int(m.size) for m in means)
        empty = np.zeros(0)
        return cls(keys, sizes, np.concatenate(means) if means else empty,
                   np.concatenate(stds) if stds else empty)


def concat_state(keys: Sequence[str], states: Mapping[str, np.ndarray]) -> np.ndarray:
    """``[N, S]`` float64: the features ``keys`` of ``states`` (each ``[N, ...]``) side by side."""
    if not keys:
        n = next(iter(states.values())).shape[0] if states else 0
        return np.zeros((n, 0))
    parts = [np.asarray(states[k], np.float64).reshape(np.asarray(states[k]).shape[0], -1)
             for k in keys]
    return np.concatenate(parts, axis=1)


def normalization_json(actions: ActionBins, state: StateStats) -> dict:
    """The checkpoint's ``normalization.json`` document."""
    return {"format": NORMALIZATION_FORMAT, "action": actions.to_json(), "state": state.to_json()}


def parse_normalization(data: Mapping) -> tuple[ActionBins, StateStats]:
    """Inverse of :func:`normalization_json`; raises ValueError/KeyError/TypeError on bad data."""
    if not isinstance(data, Mapping) or data.get("format") != NORMALIZATION_FORMAT:
        raise ValueError(f"not a {NORMALIZATION_FORMAT} document")
    return ActionBins.from_json(data["action"]), StateStats.from_json(data["state"])
