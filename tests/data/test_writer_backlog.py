"""Kill -9 loses at most a second: the writer keeps the not-yet-committed backlog under
``max_backlog_s``, says so when it falls behind, and every step it never got is recorded in the
episode (a flag on the next step, a row in ``drops``, the ``dropped_steps`` total)."""

from __future__ import annotations

import logging
import time

import numpy as np

from vla_studio.core.safety import SafetyFlag
from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.episode_writer import EpisodeFileWriter
from vla_studio.data.labels import EpisodeLabels
from vla_studio.data.recorder import Recorder
from vla_studio.data.recovery import recover_dataset

from .conftest import wait_until
from .recording_processes import kill, read_until, start_child

QUEUE_FULL = int(SafetyFlag.STEP_QUEUE_FULL)


def check_holes(ep: EpisodeReader) -> np.ndarray:
    """The episode's drop records agree with its steps; returns the ``drops`` rows."""
    ts = ep.step("timestamp")
    drops = ep.file["drops"][:]
    flagged = np.flatnonzero(ep.step("safety_flags") & QUEUE_FULL)
    inner = drops[drops[:, 0] < len(ts)]
    assert flagged.tolist() == inner[:, 0].astype(int).tolist()  # the step after each hole
    for before, count, t_from, t_to in inner:
        assert count >= 1 and t_to == ts[int(before)]
        assert before == 0 or t_from == ts[int(before) - 1]
    assert ep.attrs["dropped_steps"] == int(drops[:, 1].sum())
    assert ep.attrs["safety_counts"].get("step_queue_full", 0) == len(flagged)
    return drops


def test_a_writer_slower_than_the_robot_loses_at_most_a_second_to_sigkill(tmp_path):
    """Each step takes 80 ms to encode at a 20 Hz loop: the writer can keep only 5 of every 8.
    Without a bound its backlog grew by ~0.4 s every second (up to the 3.2 s queue)."""
    dataset = tmp_path / "dataset"
    proc = start_child(dataset, "--encode-delay", "0.08", stderr_path=tmp_path / "child.err")
    lines: list[str] = []
    start = read_until(proc, lambda line: line.startswith("started "), seen=lines)
    t_start = float(start.split()[1])
    read_until(proc, lambda line: line.startswith("steps ") and
               float(line.split()[2]) - t_start >= 6.0, seen=lines)
    t_kill = kill(proc)
    assert any(line.startswith("event recorder.behind ") for line in lines), "".join(lines)
    [result] = recover_dataset(Dataset(dataset))
    assert result.outcome == "recovered"
    with EpisodeReader(result.path) as ep:
        ts = ep.step("timestamp")
        assert t_kill - ts[-1] <= 1.0, f"lost {t_kill - ts[-1]:.2f} s"
        drops = check_holes(ep)
        assert ep.attrs["dropped_steps"] > 0 and "steps_dropped" in ep.attrs["flags"]
        # every tick of the recorded span is either in the file or counted as dropped
        ticks = round((ts[-1] - ts[0]) * 20.0) + 1
        assert abs(ep.num_steps + int(drops[drops[:, 0] < len(ts), 1].sum()) - ticks) <= 2


def test_steps_the_writer_never_got_are_recorded_where_they_were_lost(make_station, tmp_path,
                                                                      events, monkeypatch):
    """The disk stalls for 4 s: the loop's queue (3.2 s) overflows and the steps that waited
    too long are shed; the file says exactly which ticks are missing."""
    station = make_station()
    seen = events(station)
    observed = station.loop.subscribe("observer", 10_000)
    real_append = EpisodeFileWriter.append
    calls = {"n": 0}
    backlog = []

    def stalling_append(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            time.sleep(4.0)
        real_append(self, batch)

    monkeypatch.setattr(EpisodeFileWriter, "append", stalling_append)
    rec = Recorder(station, tmp_path / "dataset")
    rec.connect()
    try:
        rec.start(EpisodeLabels("push the block"))
        wait_until(lambda: calls["n"] == 4, what="the stall")
        wait_until(lambda: backlog.append(rec.status().backlog_s) or backlog[-1] > 1.5,
                   what="a backlog the status shows")
        wait_until(lambda: calls["n"] >= 12, timeout_s=20.0, what="commits after the stall")
        rec.stop()
        assert rec.wait_idle()
    finally:
        rec.disconnect()
    ticks = []
    while (step := observed.get(timeout=0)) is not None:
        ticks.append(step.t)
    info = rec.last_episode
    with EpisodeReader(info.path) as ep:
        ts = ep.step("timestamp")
        window = np.array([t for t in ticks if ts[0] <= t <= ts[-1]])
        missing = np.setdiff1d(window, ts)
        assert len(missing) > 20 and np.isin(ts, window).all()
        drops = check_holes(ep)
        assert ep.attrs["dropped_steps"] == len(missing)
        for before, count, _, _ in drops[drops[:, 0] < len(ts)]:  # each hole is exactly the ticks between its steps
            lost = window[(window > ts[int(before) - 1]) & (window < ts[int(before)])]
            assert len(lost) == count
        assert {"steps_dropped", "writer_behind"} <= set(ep.attrs["flags"])
        assert ep.attrs["worst_backlog_s"] > 1.0  # the stalled batch waited out the stall
    behind = [e for e in seen if e.kind == "recorder.behind"]
    assert behind and behind[0].level == logging.WARNING and "behind" in behind[0].message
    assert any(e.kind == "recorder.steps_dropped" for e in seen)


def test_a_writer_that_keeps_up_drops_nothing_and_commits_within_the_bound(make_station,
                                                                          tmp_path):
    station = make_station()
    rec = Recorder(station, tmp_path / "dataset")
    rec.connect()
    try:
        rec.start(EpisodeLabels("push the block"))
        wait_until(lambda: rec.status().episode.steps >= 30, what="30 recorded steps")
        assert rec.status().backlog_s < 1.0
        rec.stop()
        rec.wait_idle()
    finally:
        rec.disconnect()
    with EpisodeReader(rec.last_episode.path) as ep:
        assert ep.attrs["dropped_steps"] == 0 and ep.file["drops"].shape == (0, 4)
        assert not (ep.step("safety_flags") & QUEUE_FULL).any()
        assert 0.0 < ep.attrs["worst_backlog_s"] < 1.0
