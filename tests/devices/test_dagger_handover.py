"""DAgger handovers through the real teleop path (SDL virtual gamepad -> mapping -> loop) with a
real policy runner: taking over (button or motion past the threshold) and handing back are
bumpless, the policy re-plans from the observation of the hand-back, and the policy's shadow
proposal is recorded beside the operator's action."""

from __future__ import annotations

import numpy as np
import pytest

from tests.devices.teleop_stations import null_station, wait_until
from tests.policies.policy_doubles import decode_action
from tests.policies.runner_rig import scripted_host
from vla_studio.core.safety import SafetyFlag
from vla_studio.core.session import ControlMode
from vla_studio.core.types import SourceKind
from vla_studio.devices.teleop.virtual_gamepad import VirtualGamepad
from vla_studio.policies.runner import PolicyRunner, RunnerSettings
from vla_studio.policies.station_fit import StationOffer

CAP_M = 0.02  # the station's max_delta_translation
CAPPED = int(SafetyFlag.CAPPED_DELTA | SafetyFlag.CAPPED_VELOCITY)


@pytest.fixture
def pad():
    p = VirtualGamepad("xbox", "DAgger Pad")
    p.attach()
    yield p
    p.detach()


@pytest.fixture
def station():
    st = null_station([{"type": "gamepad", "takeover_motion": 0.5, "takeover_release_s": 0.3}],
                      rate_hz=20.0, max_delta_translation=CAP_M)
    st.start()
    st.use_teleop("gamepad")
    runner = PolicyRunner(scripted_host(chunk=4), StationOffer.from_station(st),
                          RunnerSettings(where="in-process"), events=st.events,
                          session=st.session)
    runner.start("")
    st.set_policy_source(runner)
    yield st
    st.close()


def _run(st):
    st.session.start(ControlMode.POLICY)
    wait_until(lambda: (s := st.loop.snapshot.get()) is not None and s.source == SourceKind.POLICY,
               what="the policy driving")


def _drain(q):
    out = []
    while (s := q.get(timeout=0.01)) is not None:
        out.append(s)
    return out


def _first(steps, handover):
    return next(i for i, s in enumerate(steps) if s.extras.get("handover") == handover)


def _check_bumpless(steps, i: int) -> None:
    """Step ``i`` (the first after a handover) moves less than the cap and was not clipped."""
    s = steps[i]
    assert np.linalg.norm(s.action[:3]) <= CAP_M + 1e-9
    assert not s.safety_flags & CAPPED, f"the handover step was capped: {s.safety_flags:#x}"


def test_button_takeover_and_hand_back_are_bumpless_and_replan(pad, station):
    st = station
    q = st.loop.subscribe("test", 100_000)
    _run(st)
    pad.set_button("right_shoulder", True)  # take over (hold RB) ...
    pad.set_axis("left_y", -1.0)  # ... and drive forward at full stick
    wait_until(lambda: st.loop.snapshot.get().source == SourceKind.INTERVENTION
               and st.loop.snapshot.get().action[0] > 0.004, what="the operator driving")
    pad.set_axis("left_y", 0.0)
    pad.set_button("right_shoulder", False)  # let go: the policy has control again
    wait_until(lambda: st.loop.snapshot.get().source == SourceKind.POLICY, what="hand back")
    steps = _drain(q)
    take = _first(steps, "takeover")
    assert steps[take].source == SourceKind.INTERVENTION
    _check_bumpless(steps, take)
    # The ramp starts from rest: the first command is a fraction of full speed (0.15 m/s).
    assert steps[take].action[0] < 0.5 * 0.15 * 0.05
    assert steps[take].action[-1] == 1.0  # the policy's open gripper was kept
    back = _first(steps, "handback")
    first_policy = next(i for i in range(back, len(steps))
                        if steps[i].source == SourceKind.POLICY)
    _check_bumpless(steps, first_policy)
    planned_from, _ = decode_action(steps[first_policy].requested)
    assert planned_from >= steps[back].observation.tick, \
        "the policy ran a plan made before the hand-back"
    # While the operator drove, the policy's proposal was kept beside the operator's action.
    shadow = [s for s in steps[take:back] if s.source == SourceKind.INTERVENTION
              and s.extras.get("policy_action") is not None]
    assert shadow and all(np.isfinite(s.extras["policy_action"]).all() for s in shadow)
    assert st.arbiter.takeovers == 1


def test_pushing_the_stick_past_the_threshold_takes_over_and_resting_hands_back(pad, station):
    st = station
    q = st.loop.subscribe("test", 100_000)
    _run(st)
    pad.set_axis("left_x", 0.3)  # below the threshold: the policy keeps driving
    seq = st.loop.snapshot.get_with_seq()[1]
    st.loop.snapshot.wait_newer(seq + 6, 2.0)
    assert st.loop.snapshot.get().source == SourceKind.POLICY
    pad.set_axis("left_x", 0.0)
    pad.set_axis("left_y", -0.9)  # past it: the operator has control at once, no button
    wait_until(lambda: st.loop.snapshot.get().source == SourceKind.INTERVENTION,
               what="a takeover by motion")
    pad.set_axis("left_y", 0.0)
    wait_until(lambda: st.loop.snapshot.get().source == SourceKind.POLICY, what="hand back "
               "after the stick rested for takeover_release_s")
    steps = _drain(q)
    take, back = _first(steps, "takeover"), _first(steps, "handback")
    _check_bumpless(steps, take)
    assert 0.0 < steps[take].action[0] < 0.5 * 0.15 * 0.05  # a ramp from rest, forward
    assert all(s.source == SourceKind.POLICY for s in steps[:take]
               if s.source != SourceKind.HOLD)
    # The operator kept control for the release time after letting go (0.3 s = 6 ticks).
    rested = [s for s in steps[take:back] if s.source == SourceKind.INTERVENTION
              and s.requested is not None and s.requested[0] == 0.0]
    assert len(rested) >= 4
    first_policy = next(i for i in range(back, len(steps))
                        if steps[i].source == SourceKind.POLICY)
    _check_bumpless(steps, first_policy)
    assert decode_action(steps[first_policy].requested)[0] >= steps[back].observation.tick


def test_a_run_that_asks_for_help_resumes_when_the_operator_takes_over(pad):
    st = null_station([{"type": "gamepad"}], rate_hz=20.0, max_delta_translation=CAP_M)
    asked = []
    st.events.subscribe(lambda e: asked.append(e) if e.kind == "policy.help" else None)
    st.start()
    try:
        st.use_teleop("gamepad")
        runner = PolicyRunner(scripted_host(chunk=4, confidence=0.2),
                              StationOffer.from_station(st), RunnerSettings(where="in-process", confidence_threshold=0.5,
                                             confidence_window=3),
                              events=st.events, session=st.session)
        runner.start("")
        st.set_policy_source(runner)
        st.session.start(ControlMode.POLICY)
        wait_until(lambda: st.session.snapshot.help, what="the run asking for help")
        assert asked and "take over" in asked[-1].message
        pad.set_button("right_shoulder", True)  # the operator answers: the run resumes ...
        wait_until(lambda: st.loop.snapshot.get().source == SourceKind.INTERVENTION,
                   what="the operator driving the resumed run")
        assert not st.session.snapshot.help
        pad.set_button("right_shoulder", False)  # ... and hands back to the policy
        wait_until(lambda: st.loop.snapshot.get().source == SourceKind.POLICY
                   or st.session.snapshot.help, what="the policy driving again")
    finally:
        st.close()
