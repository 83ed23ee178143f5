"""Waiting for the simulated arm to come to rest (tests only)."""

from __future__ import annotations

import time

import numpy as np


def at_rest(robot, seconds: float = 0.2) -> bool:
    """Whether the tool moved less than 0.2 mm in ``seconds`` (wall time: franky-sim's
    simulated time may lag it on a busy machine, so callers wait for this, never sleep)."""
    before = np.asarray(robot.get_observation()["ee_pos"], dtype=np.float64)
    time.sleep(seconds)
    after = np.asarray(robot.get_observation()["ee_pos"], dtype=np.float64)
    return float(np.linalg.norm(after - before)) < 0.0002
