"""The automatic corrector's tests of a policy going wrong (pure geometry, no simulator)."""

import math

import numpy as np
import pytest

from vla_studio.sim.corrector import path_drift, too_little_progress


@pytest.mark.parametrize("speed", [0.1, 0.5, 1.0, 1.7])
def test_progress_along_the_expert_path_is_no_drift_however_fast(speed):
    planned = np.array([0.12, -0.05, 0.02])
    assert path_drift(speed * planned, planned) == pytest.approx(0.0, abs=1e-12)


def test_sideways_motion_is_drift():
    planned = np.array([0.10, 0.0, 0.0])
    assert path_drift(np.array([0.06, 0.05, 0.0]), planned) == pytest.approx(0.05)
    assert path_drift(np.array([0.0, 0.03, -0.04]), planned) == pytest.approx(0.05)


def test_going_backwards_is_drift():
    planned = np.array([0.0, 0.10, 0.0])
    assert path_drift(np.array([0.0, -0.05, 0.0]), planned) == pytest.approx(0.05)
    assert path_drift(np.array([0.03, -0.04, 0.0]), planned) == pytest.approx(0.05)


def test_any_motion_is_drift_when_the_expert_would_stand_still():
    assert path_drift(np.array([0.03, 0.0, 0.04]), np.zeros(3)) == pytest.approx(0.05)
    assert path_drift(np.zeros(3), np.zeros(3)) == 0.0


def test_too_little_progress_is_measured_against_the_plan():
    planned = np.array([0.20, 0.0, 0.0])
    assert too_little_progress(np.array([0.02, 0.01, 0.0]), planned, 0.25, 0.08)
    assert too_little_progress(-planned, planned, 0.25, 0.08)
    assert not too_little_progress(0.3 * planned, planned, 0.25, 0.08)
    # A short plan (the expert slows down near its target) is never a stall.
    assert not too_little_progress(np.zeros(3), np.array([0.05, 0.0, 0.0]), 0.25, 0.08)
    assert math.isfinite(path_drift(np.array([1e-12, 0, 0]), np.array([1e-13, 0, 0])))
