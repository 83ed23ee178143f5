"""The runner driving a real control loop: alignment, underruns, stale holds, recorded extras."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from tests.policies.policy_doubles import decode_action
from tests.policies.runner_rig import make_rig, scripted_host
from tests.waiting import wait_until
from vla_studio.core.safety import SafetyFlag
from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.types import SourceKind
from vla_studio.policies.runner import RunnerSettings


@pytest.fixture
def rigs():
    made = []
    yield made
    for rig in made:
        rig.close()


def policy_steps(steps):
    return [s for s in steps if s.source == SourceKind.POLICY]


def test_each_executed_action_is_the_one_meant_for_its_tick_despite_latency(rigs):
    # 120 ms per chunk at 20 Hz: every chunk arrives two to three ticks after its observation.
    rig = make_rig(scripted_host(chunk=12, delay_s=0.12))
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.chunks >= 4, timeout=20)
    steps = policy_steps(rig.drain())
    assert len(steps) >= 10
    for s in steps:
        obs_tick, index = decode_action(s.extras["policy_action"])
        assert obs_tick + index == s.index, f"tick {s.index} ran action {index} of tick {obs_tick}"
        assert index >= 2  # the first actions of every chunk were already due: skipped
    assert rig.runner.skipped_stale >= 2 * rig.runner.chunks - 2


def test_steps_carry_the_policy_action_and_confidence_for_recording(rigs):
    rig = make_rig(scripted_host(chunk=8, confidence=0.75))
    rigs.append(rig)
    steps: list = []
    assert wait_until(lambda: bool(steps.extend(policy_steps(rig.drain())) or steps), timeout=20)
    s = steps[-1]
    assert s.extras["confidence"] == pytest.approx(0.75)
    np.testing.assert_array_equal(s.extras["policy_action"], s.requested)
    assert s.extras["policy_action"].shape == (7,)
    assert rig.runner.snapshot().confidence_method == "policy"


def test_an_empty_queue_holds_and_never_repeats_the_last_action(rigs):
    # 250 ms (5 ticks) per chunk of 8: each chunk covers 3 ticks, then the queue runs dry.
    rig = make_rig(scripted_host(chunk=8, delay_s=0.25))
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.underruns >= 5 and rig.runner.chunks >= 3, timeout=20)
    steps = rig.drain()
    moved = [decode_action(s.requested) for s in steps if s.source == SourceKind.POLICY]
    assert len(moved) == len(set(moved)), "an action was executed twice"
    held = [s for s in steps if s.source == SourceKind.HOLD and "underrun" in s.hold_reason]
    assert held and all(s.requested is None for s in held)


def test_a_queue_stale_beyond_the_policy_timeout_is_flagged_by_the_watchdog(rigs):
    # 1.2 s per chunk of 30: each covers 0.3 s after it arrives, then 0.9 s of nothing; past
    # 500 ms the arbiter's watchdog holds.
    rig = make_rig(scripted_host(chunk=30, delay_s=1.2))
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.chunks >= 2, timeout=30)
    steps = rig.drain()
    stale = [s for s in steps if s.safety_flags & SafetyFlag.POLICY_STALE]
    assert stale, "no POLICY_STALE hold while the queue was empty for over a second"
    assert all(s.source == SourceKind.HOLD for s in stale)


def test_a_pause_drops_plans_made_before_it(rigs):
    rig = make_rig(scripted_host(chunk=40))
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.chunks >= 1 and rig.runner.queue_depth > 10, timeout=20)
    rig.session.pause("operator")
    time.sleep(0.5)  # longer than resume_gap_s
    rig.drain()
    paused_at = rig.loop.snapshot.get().index
    rig.session.start(ControlMode.POLICY)
    resumed: list = []
    assert wait_until(lambda: bool(resumed.extend(
        s for s in policy_steps(rig.drain()) if s.index > paused_at) or resumed), timeout=20)
    # the first action after the pause comes from an observation taken after it
    assert decode_action(resumed[0].requested)[0] > paused_at


def test_reset_reaches_the_policy_with_the_instruction(rigs):
    rig = make_rig(scripted_host(chunk=8), instruction="pick the red cube")
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.chunks >= 1, timeout=20)
    rig.runner.reset("put it in the bowl")
    policy = rig.runner._policy
    assert wait_until(lambda: policy.instruction == "put it in the bowl", timeout=10)


def test_consistency_confidence_is_estimated_when_the_policy_gives_none(rigs):
    rig = make_rig(scripted_host(chunk=10), RunnerSettings(mode="replan", replan_every=2))
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.chunks >= 4 and math.isfinite(rig.runner.confidence),
                      timeout=20)
    snap = rig.runner.snapshot()
    assert snap.confidence_method == "consistency"
    # consecutive scripted chunks disagree (their x encodes the observation tick): low confidence
    assert 0.0 <= snap.confidence < 0.9


def test_live_figures_are_reported(rigs):
    rig = make_rig(scripted_host(chunk=10, delay_s=0.03))
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.chunks >= 5, timeout=20)
    snap = rig.runner.snapshot()
    assert snap.state == "running" and snap.chunks >= 5
    assert 30.0 <= snap.latency_p50_ms <= snap.latency_p95_ms <= snap.latency_p99_ms
    assert snap.infer_p50_ms >= 25.0
    assert set(snap.as_dict()) >= {"queue_depth", "underruns", "latency_p99_ms"}
    assert rig.session.state == RunState.RUNNING


def test_an_estop_flushes_the_queue_and_a_reset_run_starts_from_fresh_observations(rigs):
    rig = make_rig(scripted_host(chunk=40))
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.queue_depth > 10, timeout=20)
    rig.session.latch.trigger("test stop", "test")
    # "e-stop: <reason>" is the loop's stopped-tick path, which has flushed the sources. (A reset
    # before the loop thread has looked at the latch is never seen by the loop: see the report.)
    assert wait_until(lambda: rig.loop.snapshot.get().hold_reason.startswith("e-stop:"), timeout=5)
    stopped_at = rig.loop.snapshot.get().index
    rig.session.latch.request_reset()
    rig.session.latch.confirm_reset()
    assert rig.session.state == RunState.PAUSED  # a reset never resumes motion
    rig.session.start(ControlMode.POLICY)
    resumed: list = []
    assert wait_until(lambda: bool(resumed.extend(
        s for s in policy_steps(rig.drain()) if s.index > stopped_at) or resumed), timeout=20)
    assert decode_action(resumed[0].requested)[0] > stopped_at


def test_in_process_mode_runs_the_policy_here_and_holds_when_it_hangs(rigs):
    from tests.policies.policy_doubles import HANG_RELEASE

    HANG_RELEASE.clear()
    rig = make_rig(scripted_host(chunk=10), RunnerSettings(where="in-process", request_timeout_s=0.5),
                   instruction="hang")
    rigs.append(rig)
    try:
        # (no step before the loop's first tick: a loaded machine gets here first)
        assert wait_until(lambda: "has not answered" in getattr(rig.loop.snapshot.get(),
                                                                "hold_reason", ""), timeout=10)
        assert not any(s.source == SourceKind.POLICY for s in rig.drain())
        assert rig.loop.is_running  # the loop never waited for the stuck model
    finally:
        HANG_RELEASE.set()
