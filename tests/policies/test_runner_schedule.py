"""Chunk execution modes and latency alignment (pure ChunkSchedule logic, no threads)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_studio.policies.chunk_schedule import ChunkSchedule, TimedChunk

DT = 0.05


def chunk(t_obs: float, h: int = 8, value: float | None = None, latency: float = 0.0,
          seq: int = 0, conf: float = math.nan) -> TimedChunk:
    """Actions whose first element is ``t_obs * 100 + index`` (readable in assertions)."""
    actions = np.zeros((h, 7))
    actions[:, 0] = (t_obs * 100 if value is None else value) + np.arange(h)
    return TimedChunk(actions, np.full(h, conf), t_obs, DT, t_obs + latency, seq)


def tick(k: int) -> float:
    return 10.0 + k * DT


def test_actions_are_aligned_to_the_ticks_they_were_meant_for_and_late_ones_skipped():
    s = ChunkSchedule("chunk", DT)
    c = chunk(tick(0), value=0.0, latency=2.3 * DT)  # arrives between ticks 2 and 3
    skipped = s.add(c, c.t_received)
    assert skipped == 2  # indices 0 and 1 were for ticks that have passed
    got = s.action_at(tick(3))
    assert got is not None and got.index == 3 and got.action[0] == 3.0
    assert s.action_at(tick(4)).index == 4


def test_small_tick_jitter_still_picks_the_tick_s_own_action():
    s = ChunkSchedule("chunk", DT)
    s.add(chunk(tick(0), value=0.0), tick(0))
    assert s.action_at(tick(5) + 0.004).index == 5
    assert s.action_at(tick(5) - 0.004).index == 5


def test_an_exhausted_queue_gives_no_action_never_the_last_one_again():
    s = ChunkSchedule("chunk", DT)
    s.add(chunk(tick(0), h=4, value=0.0), tick(0))
    assert s.action_at(tick(3)).index == 3
    assert s.action_at(tick(4)) is None
    assert s.action_at(tick(5)) is None
    assert s.covered_until() is None or s.covered_until() <= tick(3) + 1e-9


def test_a_chunk_that_arrives_after_all_its_ticks_is_dropped():
    s = ChunkSchedule("chunk", DT)
    c = chunk(tick(0), h=4, latency=6 * DT)
    assert s.add(c, c.t_received) == 4
    assert s.action_at(tick(6)) is None


def test_open_loop_runs_a_chunk_to_its_end_before_the_next_takes_over():
    s = ChunkSchedule("chunk", DT)
    s.add(chunk(tick(0), h=8, value=0.0), tick(0))
    s.note_request(tick(0))
    # the next chunk, computed from tick 5's observation, arrives at tick 6
    s.add(chunk(tick(5), h=8, value=100.0), tick(6))
    assert s.action_at(tick(6)).action[0] == 6.0  # still the first chunk
    assert s.action_at(tick(7)).action[0] == 7.0  # its last action
    nxt = s.action_at(tick(8))
    assert nxt.action[0] == 103.0 and nxt.index == 3  # aligned: tick 8 = index 3 of tick 5's chunk


def test_open_loop_asks_for_the_next_chunk_a_latency_ahead_of_the_end():
    s = ChunkSchedule("chunk", DT)
    s.note_request(tick(0))
    s.add(chunk(tick(0), h=10), tick(0))
    due = s.next_request_due(lead_s=3 * DT)
    # last action at tick 9; the next chunk must be in hand for tick 10
    assert due == pytest.approx(tick(10) - 3 * DT)


def test_replan_every_k_requests_every_k_ticks_and_switches_on_arrival():
    s = ChunkSchedule("replan", DT, replan_every=3)
    s.note_request(tick(0))
    s.add(chunk(tick(0), h=8, value=0.0), tick(0))
    assert s.next_request_due(lead_s=DT) == pytest.approx(tick(3))
    s.note_request(tick(3))
    s.add(chunk(tick(3), h=8, value=100.0), tick(4))
    got = s.action_at(tick(4))
    assert got.action[0] == 101.0  # the new plan from its aligned index, at once


def test_temporal_ensembling_weights_older_chunks_more_as_act_does():
    m = 0.5
    s = ChunkSchedule("ensemble", DT, ensemble_decay=m)
    s.add(chunk(tick(0), h=8, value=0.0), tick(0))
    s.add(chunk(tick(1), h=8, value=100.0), tick(1))
    s.add(chunk(tick(2), h=8, value=200.0), tick(2))
    got = s.action_at(tick(2))
    preds = np.array([2.0, 101.0, 200.0])  # each chunk's prediction for tick 2, oldest first
    w = np.exp(-m * np.arange(3))
    assert got.contributors == 3
    assert got.action[0] == pytest.approx(float(np.sum(w * preds) / np.sum(w)))
    assert s.next_request_due(lead_s=DT) == -math.inf  # nothing requested yet: ask now
    s.note_request(tick(2))
    assert s.next_request_due(lead_s=DT) == pytest.approx(tick(3))


def test_ensemble_confidence_is_the_weighted_mean_of_the_known_ones():
    s = ChunkSchedule("ensemble", DT, ensemble_decay=0.0)
    s.add(chunk(tick(0), conf=0.2), tick(0))
    s.add(chunk(tick(1), conf=0.6), tick(1))
    s.add(chunk(tick(1), conf=math.nan), tick(1))
    assert s.action_at(tick(1)).confidence == pytest.approx(0.4)


def test_flush_drops_every_plan():
    for mode in ("chunk", "replan", "ensemble"):
        s = ChunkSchedule(mode, DT)
        s.add(chunk(tick(0)), tick(0))
        s.flush()
        assert s.action_at(tick(1)) is None
        assert s.next_request_due(DT) == -math.inf
        assert s.depth(tick(1)) == 0


def test_queue_depth_counts_actions_beyond_the_current_tick():
    s = ChunkSchedule("chunk", DT)
    s.add(chunk(tick(0), h=8), tick(0))
    assert s.depth(tick(0)) == 7
    assert s.depth(tick(5)) == 2
    assert s.planned(tick(5)).shape == (3, 7)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown chunk mode"):
        ChunkSchedule("bogus", DT)


def test_the_planned_path_continues_into_the_chunk_waiting_to_take_over():
    """Open loop: the overlay's plan is the rest of the running chunk, then the waiting chunk
    from the tick it takes over, never its actions for ticks the running chunk still covers."""
    s = ChunkSchedule("chunk", DT)
    s.add(chunk(tick(0), h=8, value=0.0), tick(0))
    s.add(chunk(tick(4), h=8, value=100.0), tick(5))  # pending: covers ticks 4..11
    plan = s.planned(tick(5))
    # running: indices 5..7 (ticks 5-7); pending from tick 8: its indices 4..7
    assert plan[:, 0].tolist() == [5.0, 6.0, 7.0, 104.0, 105.0, 106.0, 107.0]
    assert s.planned(tick(9))[:, 0].tolist() == [105.0, 106.0, 107.0]  # it took over
    replan = ChunkSchedule("replan", DT)
    replan.add(chunk(tick(0), h=8, value=0.0), tick(0))
    assert replan.planned(tick(2))[:, 0].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
