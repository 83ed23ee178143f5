"""LeRobot's per-feature statistics (``meta/stats.json`` and the ``stats/...`` columns of the
episodes table): min, max, mean, std, count and the 1/10/50/90/99 % quantiles.

Numbers are per element over an episode's frames; images are per channel over a sample of
frames scaled to [0, 1], shaped ``(3, 1, 1)`` as LeRobot's own writer stores them. Dataset
statistics aggregate the episodes' (counts weight the means and quantiles; the variances pool).
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
IMAGE_SAMPLE_SIDE = 150  # images are sampled down to about this many pixels a side
QUANTILE_SAMPLE = 200_000  # values per element the quantiles are estimated from


def array_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of ``[N, ...]`` values over the first axis (``[N]`` is treated as ``[N, 1]``)."""
    data = np.asarray(values, np.float64)
    if data.ndim == 1:
        data = data[:, None]
    out = {"min": data.min(axis=0), "max": data.max(axis=0), "mean": data.mean(axis=0),
           "std": data.std(axis=0), "count": np.array([len(data)], np.int64)}
    # Quantiles from an even sample of the values (exact for an episode's actions and states;
    # an image sample holds millions of pixels, where sorting them all costs seconds).
    picked = data[:: max(1, len(data) // QUANTILE_SAMPLE)]
    for name, value in zip(QUANTILES, np.quantile(picked, list(QUANTILES.values()), axis=0)):
        out[name] = value
    if np.issubdtype(np.asarray(values).dtype, np.integer):
        out["min"], out["max"] = out["min"].astype(np.int64), out["max"].astype(np.int64)
    return out


def image_stats(frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel statistics of RGB frames (``HxWx3`` uint8), in [0, 1], shaped (3, 1, 1)."""
    if not frames:
        raise ValueError("no frames to compute image statistics from")
    h, w = frames[0].shape[:2]
    step = max(1, int(round(max(h, w) / IMAGE_SAMPLE_SIDE)))
    pixels = np.concatenate([f[::step, ::step].reshape(-1, 3) for f in frames]) / 255.0
    stats = array_stats(pixels)
    out = {k: v.reshape(3, 1, 1) for k, v in stats.items() if k != "count"}
    out["count"] = np.array([len(frames)], np.int64)
    return out


def sample_indices(n: int, wanted: int = 100) -> list[int]:
    """Evenly spread frame indices for image statistics (every frame of a short episode)."""
    if n <= wanted:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, wanted)})


def aggregate(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, Any]]:
    """Dataset statistics from episode statistics (as LeRobot aggregates them)."""
    out: dict[str, dict[str, Any]] = {}
    for key in per_episode[0] if per_episode else ():
        stats = [ep[key] for ep in per_episode]
        counts = np.array([float(s["count"][0]) for s in stats])
        total = counts.sum()
        weights = (counts / total).reshape((-1,) + (1,) * stats[0]["mean"].ndim)
        means = np.stack([s["mean"] for s in stats])
        mean = (weights * means).sum(axis=0)
        variance = (weights * (np.stack([s["std"] for s in stats]) ** 2 +
                               (means - mean) ** 2)).sum(axis=0)
        agg = {"min": np.min(np.stack([s["min"] for s in stats]), axis=0),
               "max": np.max(np.stack([s["max"] for s in stats]), axis=0),
               "mean": mean, "std": np.sqrt(variance), "count": np.array([int(total)])}
        for name in QUANTILES:
            agg[name] = (weights * np.stack([s[name] for s in stats])).sum(axis=0)
        out[key] = agg
    return out


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {key: {name: np.asarray(v).tolist() for name, v in values.items()}
            for key, values in stats.items()}
