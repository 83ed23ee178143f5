"""The command gate and the state guard: no command reaches the robot unless it is finite, in
bounds and computed from a valid state (DESIGN.md safety invariant 4)."""

from __future__ import annotations

import numpy as np
import pytest

from vla_studio.core.action_space import ActionSpace, JointLimits
from vla_studio.core.command_gate import CommandGate
from vla_studio.core.safety import ActionFilter, SafetyFlag, SafetyLimits

LIMITS = SafetyLimits(workspace_min=(0.0, -0.5, 0.0), workspace_max=(1.0, 0.5, 0.8),
                      max_delta_translation=0.02, max_delta_rotation=0.1,
                      max_linear_velocity=0.3, max_angular_velocity=1.0,
                      max_joint_delta=0.1, max_joint_velocity=1.5)
PERIOD = 0.05
EE = ActionSpace.ee_delta()
JOINTS = ("j1", "j2", "j3")
JOINT_SPACE = ActionSpace.joint_position(JOINTS)
# j3 is slow by spec: 0.4 rad/s * 0.05 s = 0.02 rad per step, tighter than the profile's caps
SPEC = JointLimits(JOINTS, (-1.0, -2.0, 0.0), (1.0, 2.0, 3.0), (2.0, 2.0, 0.4))
STATE = {"ee_pos": np.array([0.5, 0.0, 0.4]), "gripper": np.array([1.0])}
Q_STATE = {"joint_pos": np.array([0.0, 1.0, 1.5])}


def ee_gate() -> CommandGate:
    return CommandGate(LIMITS, EE, PERIOD)


def joint_gate() -> CommandGate:
    return CommandGate(LIMITS, JOINT_SPACE, PERIOD, SPEC)


# ----- the state guard ---------------------------------------------------------------------------
@pytest.mark.parametrize("state", [
    {"ee_pos": np.array([np.nan, 0.0, 0.4])},
    {"ee_pos": np.array([0.5, np.inf, 0.4])},
    {"gripper": np.array([1.0])},  # no ee_pos: the workspace box cannot be checked
    {"ee_pos": np.array([0.5, 0.0])},
    {"ee_pos": None},
])
def test_filter_refuses_ee_actions_without_a_valid_ee_pos(state):
    result = ActionFilter(LIMITS, EE, PERIOD).apply(np.array([0.01, 0, 0, 0, 0, 0, 1.0]), state)
    assert result.action is None
    assert result.flags == SafetyFlag.STATE_INVALID
    assert "ee_pos" in result.detail and "held" in result.detail


@pytest.mark.parametrize("state", [{}, {"joint_pos": np.array([0.0, np.nan, 1.5])},
                                   {"joint_pos": np.array([0.0, 1.0])}])
def test_filter_refuses_joint_targets_without_a_valid_joint_pos_and_never_raises(state):
    f = ActionFilter(LIMITS, JOINT_SPACE, PERIOD, SPEC)
    result = f.apply(np.array([0.0, 1.0, 1.5, 1.0]), state)
    assert result.action is None and result.flags == SafetyFlag.STATE_INVALID
    assert "joint_pos" in result.detail


def test_joint_position_filter_needs_the_robots_joint_limits():
    with pytest.raises(ValueError, match="implement Robot.joint_limits"):
        ActionFilter(LIMITS, JOINT_SPACE, PERIOD)
    with pytest.raises(ValueError, match="follow the action order"):
        ActionFilter(LIMITS, JOINT_SPACE, PERIOD,
                     JointLimits(("a", "b", "c"), (-1,) * 3, (1,) * 3, (1,) * 3))


def test_filter_clips_joint_targets_to_the_limits_and_caps_by_the_spec_speed():
    f = ActionFilter(LIMITS, JOINT_SPACE, PERIOD, SPEC)
    state = {"joint_pos": np.array([0.95, 1.0, 1.5])}
    result = f.apply(np.array([1.4, 1.0, 2.5, 1.0]), state)
    assert result.flags & SafetyFlag.CLIPPED_JOINT_LIMITS
    assert result.flags & SafetyFlag.CAPPED_VELOCITY
    np.testing.assert_allclose(result.action, [1.0, 1.0, 1.52, 1.0])
    assert joint_gate().check(result.action, state) == ""


# ----- the gate ----------------------------------------------------------------------------------
def test_gate_lets_every_filtered_command_through():
    rng = np.random.default_rng(0)
    ee_filter, gate = ActionFilter(LIMITS, EE, PERIOD), ee_gate()
    q_filter, qgate = ActionFilter(LIMITS, JOINT_SPACE, PERIOD, SPEC), joint_gate()
    for _ in range(500):
        state = {"ee_pos": rng.uniform(-0.5, 1.5, 3)}  # inside and outside the box
        action = np.concatenate([rng.normal(0, 0.05, 6), [rng.uniform(-1, 2)]])
        out = ee_filter.apply(action, state).action
        assert gate.check(out, state) == "", (state, action, out)
        q_state = {"joint_pos": rng.uniform(-2.5, 3.5, 3)}
        target = np.concatenate([rng.uniform(-3, 4, 3), [0.5]])
        out = q_filter.apply(target, q_state).action
        assert qgate.check(out, q_state) == "", (q_state, target, out)


@pytest.mark.parametrize("command, why", [
    (np.array([np.nan, 0, 0, 0, 0, 0, 1.0]), "not finite"),
    (np.zeros(6), "shape"),
    ("forward", "not numeric"),
    (np.array([0, 0, 0, 0, 0, 0, 1.5]), "gripper"),
    (np.array([0.02, 0.01, 0, 0, 0, 0, 1.0]), "mm in one step"),  # above the 15 mm cap
    (np.array([0, 0, 0, 0.06, 0, 0, 1.0]), "rad in one step"),  # above 0.05 rad (velocity)
])
def test_gate_refuses_commands_outside_the_ee_bounds(command, why):
    assert why in ee_gate().check(command, STATE)


def test_gate_refuses_a_target_that_leaves_the_workspace_but_allows_coming_back():
    gate = ee_gate()
    at_edge = {"ee_pos": np.array([0.995, 0.0, 0.4])}
    assert "workspace" in gate.check(np.array([0.01, 0, 0, 0, 0, 0, 1.0]), at_edge)
    outside = {"ee_pos": np.array([1.2, 0.0, 0.4])}
    assert gate.check(np.array([-0.01, 0, 0, 0, 0, 0, 1.0]), outside) == ""  # back toward it
    assert "workspace" in gate.check(np.array([0.001, 0, 0, 0, 0, 0, 1.0]), outside)


def test_gate_refuses_any_command_from_an_invalid_state():
    gate = ee_gate()
    assert "ee_pos" in gate.check(np.zeros(7), {"ee_pos": np.array([np.nan, 0, 0])})
    assert "ee_pos" in gate.check(np.zeros(7), {})
    assert "joint_pos" in joint_gate().check(np.array([0.0, 1.0, 1.5, 1.0]), {})


def test_gate_refuses_joint_steps_above_the_spec_cap_and_targets_beyond_the_limits():
    gate = joint_gate()
    assert "j3 would move" in gate.check(np.array([0.0, 1.0, 1.55, 1.0]), Q_STATE)
    assert "j1 would move" in gate.check(np.array([0.2, 1.0, 1.5, 1.0]), Q_STATE)
    at_limit = {"joint_pos": np.array([0.98, 1.0, 1.5])}
    assert "j1 target" in gate.check(np.array([1.03, 1.0, 1.5, 1.0]), at_limit)
    beyond = {"joint_pos": np.array([1.05, 1.0, 1.5])}  # past the limit: may only come back
    assert gate.check(np.array([1.0, 1.0, 1.5, 1.0]), beyond) == ""
    assert "j1 target" in gate.check(np.array([1.06, 1.0, 1.5, 1.0]), beyond)


# ----- holding -----------------------------------------------------------------------------------
def test_joint_hold_without_a_valid_state_holds_the_last_command_or_refuses():
    last = np.array([0.1, 0.2, 0.3, 0.0])
    hold = JOINT_SPACE.hold_action({"joint_pos": np.array([np.nan, 0, 0])}, last)
    np.testing.assert_array_equal(hold, last)
    with pytest.raises(ValueError, match="no finite joint position"):
        JOINT_SPACE.hold_action({}, None)


def test_ee_hold_never_depends_on_the_measured_pose():
    hold = EE.hold_action({"ee_pos": np.array([np.nan] * 3)}, np.array([0, 0, 0, 0, 0, 0, 0.0]))
    np.testing.assert_array_equal(hold, np.zeros(7))
