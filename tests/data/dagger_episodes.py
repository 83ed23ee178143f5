"""Test fixture: DAgger correction episodes in the recorder's layout (policy runs with
takeovers), written by :mod:`tests.data.rlds_episode_files` and given a policy's columns."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from tests.data.rlds_episode_files import EpisodeSpec, write_dataset

# 20 steps at 10 Hz: paused, the policy, a takeover at 8..12, the policy again, a hold.
SOURCES = np.array([4, 4, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2, 0, 2, 2, 2], np.uint8)


def write_dagger_dataset(root: Path, rounds: tuple[int, ...] = (1, 2)) -> list[Path]:
    """One correction episode per round in ``rounds`` and a demonstration (round -1) last."""
    specs = [EpisodeSpec(seed=10 + i, steps=len(SOURCES)) for i in range(len(rounds) + 1)]
    paths = write_dataset(root, specs)
    for path, rnd in zip(paths, (*rounds, None)):
        with h5py.File(path, "r+") as f:
            steps = f["steps"]
            n = steps["action"].shape[0]
            if rnd is None:  # a demonstration: teleop steps only, no policy columns
                steps["action_source"][...] = np.ones(n, np.uint8)
                f.attrs["dagger_round"] = -1
                continue
            steps["action_source"][...] = SOURCES
            proposed = np.asarray(steps["action"][:]) * 2.0
            proposed[np.isin(SOURCES, (0, 4))] = np.nan  # nothing proposed while held
            steps["policy_action"] = proposed.astype(np.float32)
            conf = np.where(np.isin(SOURCES, (2, 3)), 0.25 + 0.01 * np.arange(n), np.nan)
            steps["confidence"] = conf.astype(np.float32)
            f.attrs["policy_id"] = "native:runs/pick#0123"
            f.attrs["dagger_round"] = rnd
            f.attrs["interventions"] = 1
    return paths
