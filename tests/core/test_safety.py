"""ActionFilter, EStopLatch, SafetyCounters: DESIGN.md safety invariants 1 and 4."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from vla_studio.core.action_space import ActionSpace, JointLimits
from vla_studio.core.safety import (ActionFilter, EStopLatch, SafetyCounters, SafetyFlag,
                                    SafetyLimits)
from vla_studio.core.session import ControlMode, RunState, Session, SessionError

LIMITS = SafetyLimits(workspace_min=(0.0, -0.5, 0.0), workspace_max=(1.0, 0.5, 0.8),
                      max_delta_translation=0.02, max_delta_rotation=0.1,
                      max_linear_velocity=0.3, max_angular_velocity=1.0)
STATE = {"ee_pos": np.array([0.5, 0.0, 0.4]), "gripper": np.array([1.0])}


def ee_filter(limits: SafetyLimits = LIMITS, period: float = 0.05) -> ActionFilter:
    return ActionFilter(limits, ActionSpace.ee_delta(), period)


@pytest.mark.parametrize("bad", [
    [np.nan, 0, 0, 0, 0, 0, 1], [0, np.inf, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, -np.inf]])
def test_filter_rejects_non_finite_actions(bad):
    result = ee_filter().apply(np.array(bad), STATE)
    assert result.action is None
    assert result.flags == SafetyFlag.REJECTED_NONFINITE


@pytest.mark.parametrize("bad", [np.zeros(6), np.zeros((1, 7)), "forward", None, [1, 2, "x"]])
def test_filter_rejects_wrong_shape_or_type(bad):
    result = ee_filter().apply(bad, STATE)
    assert result.action is None
    assert result.flags == SafetyFlag.REJECTED_SHAPE


def test_filter_passes_small_action_unchanged():
    a = np.array([0.005, -0.004, 0.003, 0.01, 0.0, -0.02, 0.3])
    result = ee_filter().apply(a, STATE)
    np.testing.assert_allclose(result.action, a)
    assert result.flags == SafetyFlag.NONE


def test_filter_clips_target_to_workspace_box():
    state = {"ee_pos": np.array([0.99, 0.0, 0.4])}
    result = ee_filter().apply(np.array([0.015, 0, 0, 0, 0, 0, 1.0]), state)
    assert result.flags & SafetyFlag.CLIPPED_WORKSPACE
    assert state["ee_pos"][0] + result.action[0] == pytest.approx(1.0)


def test_filter_pulls_out_of_box_pose_back_without_a_jump():
    state = {"ee_pos": np.array([1.5, 0.0, 0.4])}  # far outside the box
    result = ee_filter().apply(np.zeros(7), state)
    assert result.flags & SafetyFlag.CLIPPED_WORKSPACE
    assert np.linalg.norm(result.action[:3]) <= LIMITS.max_delta_translation + 1e-9
    assert result.action[0] < 0


def test_filter_caps_translation_and_rotation_per_step_preserving_direction():
    a = np.array([0.1, 0.1, 0.0, 0.5, 0.0, 0.0, 1.0])
    result = ee_filter(period=1.0).apply(a, STATE)  # long period: the delta cap is the binding one
    assert result.flags & SafetyFlag.CAPPED_DELTA
    assert np.linalg.norm(result.action[:3]) == pytest.approx(0.02)
    assert result.action[0] == pytest.approx(result.action[1])
    assert np.linalg.norm(result.action[3:6]) == pytest.approx(0.1)


def test_filter_caps_velocity_by_control_period():
    period = 0.02  # 0.3 m/s * 0.02 s = 6 mm per step, tighter than the 20 mm delta cap
    result = ee_filter(period=period).apply(np.array([0.015, 0, 0, 0, 0, 0, 1.0]), STATE)
    assert result.flags & SafetyFlag.CAPPED_VELOCITY
    assert not result.flags & SafetyFlag.CAPPED_DELTA
    assert result.action[0] == pytest.approx(0.3 * period)


def test_filter_applies_global_speed_scale():
    limits = SafetyLimits(speed_scale=0.5)
    a = np.array([0.01, 0.0, -0.01, 0.02, 0.0, 0.0, 0.0])
    result = ee_filter(limits).apply(a, STATE)
    np.testing.assert_allclose(result.action[:6], a[:6] * 0.5)
    assert result.action[6] == 0.0  # the gripper is not a motion: never scaled


def test_filter_clamps_gripper_command():
    assert ee_filter().apply(np.array([0, 0, 0, 0, 0, 0, 1.7]), STATE).action[6] == 1.0
    assert ee_filter().apply(np.array([0, 0, 0, 0, 0, 0, -3.0]), STATE).action[6] == 0.0


def test_filter_caps_joint_position_targets():
    space = ActionSpace.joint_position(("j1", "j2"))
    spec = JointLimits(("j1", "j2"), (-3.0, -3.0), (3.0, 3.0), (10.0, 10.0))
    f = ActionFilter(SafetyLimits(max_joint_delta=0.1, max_joint_velocity=10.0), space, 0.05, spec)
    state = {"joint_pos": np.array([0.0, 1.0])}
    result = f.apply(np.array([0.5, 0.95, 1.0]), state)
    assert result.flags & SafetyFlag.CAPPED_DELTA
    np.testing.assert_allclose(result.action, [0.1, 0.95, 1.0])


def test_hold_action_keeps_last_gripper_command_and_opens_nothing():
    space = ActionSpace.ee_delta()
    hold = space.hold_action(STATE, last_sent=np.array([0.01, 0, 0, 0, 0, 0, 0.0]))
    np.testing.assert_array_equal(hold, [0, 0, 0, 0, 0, 0, 0.0])
    assert space.hold_action({"gripper": np.array([0.25])}, None)[6] == 0.25


def test_latch_can_be_triggered_from_any_thread_and_wakes_waiters():
    latch = EStopLatch()
    woken = threading.Event()
    latch.add_wake_event(woken)
    t = threading.Thread(target=latch.trigger, args=("gamepad STOP", "gamepad"))
    t.start()
    t.join()
    assert latch.is_tripped and woken.is_set()
    assert latch.event.origin == "gamepad"
    latch.trigger("second", "gui")  # idempotent, but counted; the first reason is kept
    assert latch.trigger_count == 2 and latch.event.reason == "gamepad STOP"


def test_reset_takes_two_deliberate_steps_and_returns_to_paused():
    latch = EStopLatch()
    session = Session(latch)
    session.start(ControlMode.TELEOP)
    latch.trigger("test", "test")
    assert session.state == RunState.ESTOPPED
    with pytest.raises(SessionError, match="reset it first"):
        session.start(ControlMode.TELEOP)
    assert latch.confirm_reset() is False  # confirming without requesting does nothing
    assert latch.is_tripped
    latch.request_reset()
    assert latch.confirm_reset() is True
    assert not latch.is_tripped
    assert session.state == RunState.PAUSED  # never straight back to motion


def test_reset_confirmation_expires():
    latch = EStopLatch(confirm_window_s=0.05)
    latch.trigger("test", "test")
    latch.request_reset()
    time.sleep(0.1)
    assert latch.confirm_reset() is False
    assert latch.is_tripped


def test_request_reset_without_stop_is_an_error():
    with pytest.raises(RuntimeError, match="not latched"):
        EStopLatch().request_reset()


def test_counters_count_every_flag_and_log_rate_limited(caplog):
    counters = SafetyCounters(clear_after_s=60.0)
    with caplog.at_level(logging.INFO, logger="vla_studio.core.safety"):
        for _ in range(5):
            counters.record(SafetyFlag.CAPPED_DELTA | SafetyFlag.CLIPPED_WORKSPACE)
        counters.record(SafetyFlag.REJECTED_NONFINITE, "nan in action")
    snap = counters.snapshot()
    assert snap == {"CAPPED_DELTA": 5, "CLIPPED_WORKSPACE": 5, "REJECTED_NONFINITE": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("capped_delta" in m for m in messages) == 1  # logged once, counted five times
    assert any("rejected_nonfinite" in m and "nan in action" in m for m in messages)
    assert any(r.levelno == logging.WARNING for r in caplog.records if "rejected" in r.getMessage())


def test_workspace_limits_must_be_ordered():
    with pytest.raises(ValueError, match="workspace_min"):
        SafetyLimits(workspace_min=(0, 0, 0), workspace_max=(1, 0, 1))


def test_a_new_stop_while_a_reset_is_armed_disarms_the_reset():
    latch = EStopLatch()
    latch.trigger("first", "test")
    latch.request_reset()
    assert latch.reset_armed
    latch.trigger("second", "gamepad")  # the operator's reset was for the first stop only
    assert not latch.reset_armed
    assert latch.confirm_reset() is False
    assert latch.is_tripped
    latch.request_reset()  # a fresh, deliberate reset still works
    assert latch.confirm_reset() is True


def test_a_repeated_flag_is_logged_once_with_a_count_and_a_summary_when_it_clears(caplog):
    counters = SafetyCounters(clear_after_s=1.0)
    t0 = 1000.0
    with caplog.at_level(logging.INFO, logger="vla_studio.core.safety"):
        for tick in range(200):  # 10 s at 20 Hz, capped every other tick (it flickers)
            counters.record(SafetyFlag.CAPPED_DELTA if tick % 2 else SafetyFlag.NONE,
                            now=t0 + tick * 0.05)
        during = [r.getMessage() for r in caplog.records]
        for tick in range(200, 240):  # 2 s without a cap: the streak clears once
            counters.record(SafetyFlag.NONE, now=t0 + tick * 0.05)
    assert sum("capped_delta" in m for m in during) == 1, during  # not once a second
    after = [r.getMessage() for r in caplog.records][len(during):]
    assert len(after) == 1 and "capped_delta cleared: 100 times" in after[0]
    assert counters.snapshot() == {"CAPPED_DELTA": 100}
