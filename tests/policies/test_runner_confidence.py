"""Confidence: from the chunk or estimated, and the low-confidence fallback (pause, hold, teleop)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.policies.runner_rig import make_rig, scripted_host
from tests.waiting import wait_until
from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.types import SourceKind
from vla_studio.policies.base import ActionChunk
from vla_studio.policies.chunk_schedule import TimedChunk
from vla_studio.policies.confidence import ConfidenceEstimator, LowConfidenceMonitor
from vla_studio.policies.runner import RunnerSettings

DT = 0.05


def make_chunk(actions, confidence=None, **extras) -> ActionChunk:
    return ActionChunk(np.asarray(actions, float), confidence, 0.0, 0.0, 0.0, extras)


def test_the_policy_s_own_confidence_wins():
    conf, method = ConfidenceEstimator().estimate(make_chunk(np.zeros((3, 2)), np.array([0.9, 0.5, 1.2])),
                                                  0.0, DT, None)
    assert method == "policy"
    np.testing.assert_allclose(conf, [0.9, 0.5, 1.0])


def test_sample_spread_lowers_confidence_where_samples_disagree():
    rng = np.random.default_rng(0)
    samples = np.zeros((8, 4, 2))
    samples[:, 2:, :] = rng.normal(0, 1.0, (8, 2, 2))  # the last two steps are uncertain
    est = ConfidenceEstimator(scale=np.ones(2))
    conf, method = est.estimate(make_chunk(samples.mean(0), samples=samples), 0.0, DT, None)
    assert method == "sample spread (N=8)"
    assert conf[0] == pytest.approx(1.0) and conf[1] == pytest.approx(1.0)
    assert conf[2] < 0.6 and conf[3] < 0.6


def test_consistency_compares_the_ticks_two_chunks_share():
    est = ConfidenceEstimator(scale=np.array([1.0, 1.0]))
    prev = TimedChunk(np.zeros((6, 2)), np.full(6, math.nan), 0.0, DT, 0.0)
    agree, method = est.estimate(make_chunk(np.zeros((6, 2))), 2 * DT, DT, prev)
    assert method == "consistency" and agree[0] == pytest.approx(1.0)
    disagree, _ = est.estimate(make_chunk(np.full((6, 2), 2.0)), 2 * DT, DT, prev)
    assert disagree[0] == pytest.approx(math.exp(-2.0))
    first, _ = est.estimate(make_chunk(np.zeros((6, 2))), 0.0, DT, None)
    assert math.isnan(first[0])  # nothing to compare with: unknown, not "sure"


def test_dimensions_without_spread_are_left_out_of_the_scale():
    est = ConfidenceEstimator(scale=np.array([1.0, 0.0]))  # a constant gripper
    prev = TimedChunk(np.zeros((4, 2)), np.full(4, math.nan), 0.0, DT, 0.0)
    conf, _ = est.estimate(make_chunk([[0.0, 5.0]] * 4), DT, DT, prev)
    assert conf[0] == pytest.approx(1.0)


def test_the_monitor_fires_once_after_a_full_window_below_threshold():
    m = LowConfidenceMonitor(0.5, 3)
    assert [m.update(c) for c in (0.4, 0.4, math.nan, 0.4, 0.4, 0.4)] == [
        False, False, False, True, False, False]
    assert not m.update(0.9)
    assert [m.update(0.1) for _ in range(3)] == [False, False, True]
    assert not LowConfidenceMonitor(0.0, 1).update(0.0)  # threshold 0: disabled


@pytest.fixture
def rigs():
    made = []
    yield made
    for rig in made:
        rig.close()


def low_confidence_rig(fallback: str):
    settings = RunnerSettings(confidence_threshold=0.5, confidence_window=3, fallback=fallback)
    return make_rig(scripted_host(chunk=10, confidence=0.2), settings)


def test_low_confidence_pauses_the_run_and_asks_for_help(rigs):
    rig = low_confidence_rig("pause")
    rigs.append(rig)
    assert wait_until(lambda: rig.session.state == RunState.PAUSED, timeout=20)
    help_event = next(e for e in rig.seen if e.kind == "policy.help")
    assert "below 0.50 for 3 steps" in help_event.message and "policy" in help_event.message
    assert help_event.data["fallback"] == "pause"
    assert "confidence" in rig.session.snapshot.reason
    assert sum(s.source == SourceKind.POLICY for s in rig.drain()) == 2  # the third step held


def test_hold_fallback_keeps_the_session_running_but_holds(rigs):
    rig = low_confidence_rig("hold")
    rigs.append(rig)
    assert wait_until(lambda: "policy.help" in rig.kinds(), timeout=20)
    rig.drain()
    tick = rig.loop.snapshot.get().index
    assert wait_until(lambda: rig.loop.snapshot.get().index > tick + 5, timeout=10)
    later = rig.drain()
    assert rig.session.state == RunState.RUNNING
    assert later and all(s.source == SourceKind.HOLD and "confidence" in s.hold_reason for s in later)
    assert rig.runner.snapshot().fallback == "hold"


def test_teleop_fallback_hands_the_robot_to_the_teleop_device(rigs):
    rig = low_confidence_rig("teleop")
    rigs.append(rig)
    assert wait_until(lambda: rig.session.mode == ControlMode.TELEOP, timeout=20)
    assert wait_until(lambda: rig.session.state == RunState.RUNNING, timeout=5)
    assert next(e for e in rig.seen if e.kind == "policy.help").data["fallback"] == "teleop"


def test_a_policys_own_confidence_method_crosses_the_wire_and_is_shown():
    """The reference VLA's confidence is a token probability: the panel and the episode say so,
    not just "policy"; a method without a confidence is dropped; a long one is cut."""
    import numpy as np

    from vla_studio.policies.base import ActionChunk
    from vla_studio.policies.wire import MAX_METHOD_CHARS, decode_chunk, encode_chunk

    chunk = ActionChunk(np.zeros((3, 7)), np.full(3, 0.5), 1.0, 1.0, 1.1,
                        {"confidence_method": "token_probability"})
    back = decode_chunk(encode_chunk(chunk), 7, 2.0, 2.0, 2.1)
    assert back.extras["confidence_method"] == "token_probability"
    msg = {"actions": np.zeros((3, 7)), "confidence_method": "x" * 500}
    assert "confidence_method" not in decode_chunk(msg, 7, 0, 0, 0).extras
    msg["confidence"] = np.ones(3)
    assert len(decode_chunk(msg, 7, 0, 0, 0).extras["confidence_method"]) == MAX_METHOD_CHARS
