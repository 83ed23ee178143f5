"""The panel's live controls of a running policy: speed scale, step once, settings changed while
the run goes on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.policies.policy_doubles import decode_action
from tests.policies.runner_rig import make_rig, scripted_host
from tests.waiting import wait_until
from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.types import SourceKind
from vla_studio.policies.runner import RunnerSettings
from vla_studio.policies.runner_settings import StepBudget, scaled_action


@pytest.fixture
def rigs():
    made = []
    yield made
    for rig in made:
        rig.close()


def moves(steps):
    return [s for s in steps if s.source == SourceKind.POLICY]


def test_scaled_action_slows_motion_and_leaves_the_gripper():
    a = np.array([0.01, -0.02, 0.0, 0.1, 0.0, 0.0, 0.3])
    half = scaled_action(a, "ee_delta", {}, 0.5)
    np.testing.assert_allclose(half[:6], a[:6] / 2)
    assert half[6] == 0.3 and a[0] == 0.01  # the input is not modified
    assert scaled_action(a, "ee_delta", {}, 1.0) is a
    target = np.array([1.0, 1.0, 0.0])
    joint = scaled_action(target, "joint_position", {"joint_pos": np.array([0.0, 2.0])}, 0.25)
    np.testing.assert_allclose(joint, [0.25, 1.75, 0.0])
    # no joint state: the target stays (the filter and the gate cap it)
    np.testing.assert_allclose(scaled_action(target, "joint_position", {}, 0.25), target)


def test_step_budget_counts_down_once():
    budget = StepBudget()
    assert not budget.armed and not budget.exhausted and not budget.take()
    budget.arm(2)
    assert budget.armed and not budget.take() and budget.take()
    assert budget.exhausted and not budget.take()
    budget.clear()
    assert not budget.armed and not budget.exhausted


def test_speed_scale_applies_to_the_robot_command_not_to_the_recorded_proposal(rigs):
    rig = make_rig(scripted_host(chunk=8), RunnerSettings(speed_scale=0.5))
    rigs.append(rig)
    steps: list = []
    assert wait_until(lambda: len(steps.extend(moves(rig.drain())) or steps) >= 3, timeout=20)
    for s in steps:
        np.testing.assert_allclose(s.requested[:6], s.extras["policy_action"][:6] * 0.5)
        assert s.requested[6] == s.extras["policy_action"][6] == 1.0


def test_step_once_runs_one_chunk_then_pauses_and_start_continues(rigs):
    rig = make_rig(scripted_host(chunk=6), start_running=False)
    rigs.append(rig)
    rig.runner.step_once()
    rig.session.start(ControlMode.POLICY)
    assert wait_until(lambda: rig.session.state == RunState.PAUSED, timeout=20)
    steps = rig.drain()
    moved = moves(steps)
    assert len(moved) == 6, f"{len(moved)} policy actions for one step of a 6-action chunk"
    assert "policy.stepped" in rig.kinds()
    assert rig.session.snapshot.reason == "stepped once"
    # Started again with the budget spent: it holds (never more than the step) ...
    rig.session.start(ControlMode.POLICY)
    assert wait_until(lambda: any("stepped once" in s.hold_reason for s in rig.drain()), timeout=5)
    assert not moves(rig.drain())
    # ... until the run is let go (the panel's Start)
    rig.runner.run_freely()
    later: list = []
    assert wait_until(lambda: len(later.extend(moves(rig.drain())) or later) > 6, timeout=20)


def test_a_new_chunk_mode_takes_effect_on_the_running_policy(rigs):
    rig = make_rig(scripted_host(chunk=10))
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.chunks >= 2, timeout=20)
    rig.runner.apply(replace(rig.runner.settings, mode="replan", replan_every=2,
                             where="in-process", threads=7))
    assert rig.runner.settings.mode == "replan"
    # where the model runs only changes with a new load
    assert (rig.runner.settings.where, rig.runner.settings.threads) == ("child", 1)
    rig.drain()
    chunks = rig.runner.chunks
    assert wait_until(lambda: rig.runner.chunks >= chunks + 4, timeout=20)
    indices = [decode_action(s.requested)[1] for s in moves(rig.drain())]
    # replanning every 2 ticks: no chunk runs far into its horizon any more
    assert indices and max(indices[len(indices) // 2:]) <= 6, indices


def test_a_raised_confidence_threshold_triggers_the_fallback_at_once(rigs):
    rig = make_rig(scripted_host(chunk=8, confidence=0.3))
    rigs.append(rig)
    seen: list = []
    assert wait_until(lambda: len(seen.extend(moves(rig.drain())) or seen) >= 3, timeout=20)
    assert rig.session.state == RunState.RUNNING  # threshold 0: no fallback
    rig.runner.apply(replace(rig.runner.settings, confidence_threshold=0.5, confidence_window=3))
    assert wait_until(lambda: rig.session.state == RunState.PAUSED, timeout=10)
    assert "policy.help" in rig.kinds()
    assert rig.runner.snapshot().fallback == "pause"
