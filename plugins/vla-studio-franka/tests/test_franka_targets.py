"""Actions -> Franka targets without a robot: rotation conventions, the lead clamp, the gripper
mapping, and the one-line fault messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_studio_franka.faults import describe_fault, is_preemption
from vla_studio_franka.targets import (EETargetTracker, gripper_width, mat_to_quat_wxyz,
                                       mat_to_rotvec, quat_xyzw_to_mat, rotvec_to_mat,
                                       rpy_to_mat, wxyz_to_xyzw, xyzw_to_wxyz)

DOWN = np.diag([1.0, -1.0, -1.0])  # franky-sim's start orientation: the tool points down


def test_quaternion_orders_round_trip_through_matrices():
    rng = np.random.default_rng(3)
    for _ in range(20):
        mat = rotvec_to_mat(rng.normal(size=3))
        wxyz = mat_to_quat_wxyz(mat)
        assert wxyz[0] >= 0.0
        np.testing.assert_allclose(quat_xyzw_to_mat(wxyz_to_xyzw(wxyz)), mat, atol=1e-9)
        np.testing.assert_allclose(xyzw_to_wxyz(wxyz_to_xyzw(wxyz)), wxyz)
    # franky reports the pointing-down tool as x = 1 in (x, y, z, w) order
    np.testing.assert_allclose(quat_xyzw_to_mat([1.0, 0.0, 0.0, 0.0]), DOWN, atol=1e-12)


def test_rotation_delta_is_applied_in_the_base_frame():
    tracker = EETargetTracker(max_lead_m=1.0, max_lead_rad=1.0)
    target, applied = tracker.step([0, 0, 0, 0, 0, 0.1], np.zeros(3), DOWN)
    np.testing.assert_allclose(target.mat, rpy_to_mat(0, 0, 0.1) @ DOWN, atol=1e-12)
    np.testing.assert_allclose(applied[3:], [0, 0, 0.1], atol=1e-9)
    np.testing.assert_allclose(mat_to_rotvec(target.mat @ DOWN.T), [0, 0, 0.1], atol=1e-9)


def test_deltas_accumulate_from_the_last_target_not_the_measured_pose():
    tracker = EETargetTracker(max_lead_m=0.05, max_lead_rad=0.5)
    meas = np.array([0.5, 0.0, 0.5])
    for _ in range(3):  # the arm lags: its measured pose does not move
        target, applied = tracker.step([0.01, 0, 0, 0, 0, 0], meas, DOWN)
    np.testing.assert_allclose(target.pos, meas + [0.03, 0, 0], atol=1e-12)
    np.testing.assert_allclose(applied[:3], [0.01, 0, 0], atol=1e-12)
    tracker.reset()  # a hold: the next delta starts from the arm again
    target, _ = tracker.step([0.01, 0, 0, 0, 0, 0], meas, DOWN)
    np.testing.assert_allclose(target.pos, meas + [0.01, 0, 0], atol=1e-12)


def test_target_never_leads_a_stalled_arm_by_more_than_the_limits():
    tracker = EETargetTracker(max_lead_m=0.02, max_lead_rad=0.1)
    meas = np.array([0.5, 0.0, 0.5])
    for _ in range(50):
        target, applied = tracker.step([0.01, 0.01, 0, 0.05, 0, 0], meas, DOWN)
    assert np.linalg.norm(target.pos - meas) == pytest.approx(0.02)
    assert np.linalg.norm(mat_to_rotvec(target.mat @ DOWN.T)) == pytest.approx(0.1)
    assert np.linalg.norm(applied[:3]) < 1e-9  # pinned at the clamp: it reports no motion


def test_non_finite_deltas_are_refused():
    tracker = EETargetTracker(0.02, 0.1)
    with pytest.raises(ValueError):
        tracker.step([math.nan, 0, 0, 0, 0, 0], np.zeros(3), DOWN)
    assert tracker.target is None


def test_gripper_opening_maps_to_a_width_within_the_hand():
    assert gripper_width(1.0, 0.08) == pytest.approx(0.08)
    assert gripper_width(0.25, 0.08) == pytest.approx(0.02)
    assert gripper_width(7.0, 0.08) == pytest.approx(0.08)
    assert gripper_width(-1.0, 0.08) == 0.0
    with pytest.raises(ValueError):
        gripper_width(math.nan, 0.08)


def test_a_reflex_is_one_line_naming_the_error_and_the_recovery():
    message = ('libfranka: Move command aborted: motion aborted by reflex! ["cartesian_reflex"]'
               '\ncontrol_command_success_rate: 0.98')
    line = describe_fault(message, ["cartesian_reflex"])
    assert "\n" not in line
    assert line.startswith("Franka reflex: cartesian_reflex")
    assert "Recover robot" in line and "reset the e-stop" in line
    assert not is_preemption(message, robot_has_errors=True)


def test_our_own_stop_is_a_preemption_not_a_fault():
    assert is_preemption("libfranka: Move command preempted!", robot_has_errors=False)
    assert not is_preemption("libfranka: Move command preempted!", robot_has_errors=True)
    assert not is_preemption("libfranka: Move command aborted: motion aborted by reflex! []",
                             robot_has_errors=False)
