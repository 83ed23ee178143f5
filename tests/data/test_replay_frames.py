"""Replay reads frames lazily through one FrameSource: cameras line up by capture time, gaps
and drops are found from the timing, and the decode worker serves only what is shown (plus a
bounded read-ahead) from a small cache."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from vla_studio.bench.replay_episode import CameraPlan, EpisodePlan, write_episode
from vla_studio.data.frame_reader import FrameCache, FrameReader, FrameSet
from vla_studio.data.frame_source import (FrameSource, Hdf5JpegFrameSource, fit_frame,
                                          frame_gaps, synchronised_steps)
from vla_studio.data.replay_episode import ReplayEpisode

CAMERAS = (CameraPlan("front", 160, 120, fps=30, latency_s=0.01),
           CameraPlan("wrist", 96, 72, fps=15, latency_s=0.03, depth=True, drop_every=10),
           CameraPlan("side", 160, 120, fps=30, latency_s=0.05))


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("replay_frames") / "episodes"
    return write_episode(folder / "20261201-100000_aaaaaaaa.h5",
                         EpisodePlan(steps=90, cameras=CAMERAS))


class CountingSource(FrameSource):
    """A FrameSource wrapper counting the frames decoded (the laziness tests)."""

    def __init__(self, inner: FrameSource) -> None:
        self.inner = inner
        self.reads: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    num_steps = property(lambda self: self.inner.num_steps)
    cameras = property(lambda self: self.inner.cameras)
    depth_cameras = property(lambda self: self.inner.depth_cameras)

    def frame_size(self, camera):
        return self.inner.frame_size(camera)

    def capture_times(self, camera):
        return self.inner.capture_times(camera)

    def frame_ids(self, camera):
        return self.inner.frame_ids(camera)

    def sequence_numbers(self, camera):
        return self.inner.sequence_numbers(camera)

    def read_color(self, camera, step, fit=None):
        with self.lock:
            self.reads.append((camera, step))
        return self.inner.read_color(camera, step, fit)

    def read_depth(self, camera, step):
        with self.lock:
            self.reads.append((f"{camera}:depth", step))
        return self.inner.read_depth(camera, step)

    def close(self):
        self.inner.close()


def test_the_frame_source_reads_the_recorded_frames_and_their_timing(episode):
    source = Hdf5JpegFrameSource(episode)
    try:
        assert source.cameras == ("front", "wrist", "side") and source.depth_cameras == ("wrist",)
        assert source.num_steps == 90 and source.frame_size("wrist") == (96, 72)
        rgb = source.read_color("front", 40)
        assert rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8
        depth = source.read_depth("wrist", 40)
        assert depth.shape == (72, 96) and depth.dtype == np.uint16 and depth.max() > 0
        ids = source.frame_ids("wrist")
        # A 15 fps camera under a 30 Hz loop: most frames are seen by two ticks, stored once.
        assert len(set(ids[ids >= 0])) < 0.6 * source.num_steps
        times = source.capture_times("front")
        assert np.isnan(times[0]) and np.all(np.diff(times[np.isfinite(times)]) >= 0)
        assert source.read_color("front", 0) is None  # the first tick had no frame yet
    finally:
        source.close()


def test_cameras_are_synchronised_by_capture_time_not_by_step_index():
    ticks = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    # Each frame is captured 0.05 s before a tick but arrives one tick late: the frame captured
    # just before tick i is stored with step i+1. By capture time, tick i shows it anyway.
    captures = np.array([np.nan, -0.05, 0.05, 0.15, 0.25])
    shown = synchronised_steps(ticks, captures)
    assert shown.tolist() == [1, 2, 3, 4, 4]
    assert synchronised_steps(ticks, np.full(5, np.nan)).tolist() == [-1] * 5
    repeated = np.array([0.0, 0.0, 0.2, 0.2, 0.4])  # a slow camera seen by two ticks
    assert synchronised_steps(ticks + 0.01, repeated).tolist() == [0, 0, 2, 2, 4]


def test_gaps_and_camera_drops_are_found_from_the_timing(episode):
    source = Hdf5JpegFrameSource(episode)
    try:
        gaps = frame_gaps(source.capture_times("wrist"), source.sequence_numbers("wrist"),
                          1 / 15)
        dropped = [step for step, why in gaps if "dropped by the camera" in why]
        assert len(dropped) >= 3  # one frame in ten is dropped
        assert not [g for g in frame_gaps(source.capture_times("front"),
                                          source.sequence_numbers("front"), 1 / 30)
                    if "dropped" in g[1]]
    finally:
        source.close()
    times = np.array([0.0, 0.033, 0.066, 0.3, 0.333])
    assert frame_gaps(times, np.arange(5), 1 / 30) == [(3, "234 ms without a frame")]


def _serve(reader: FrameReader, got: list[FrameSet], step: int, direction: int = 0,
           timeout_s: float = 10.0) -> FrameSet:
    done = threading.Event()
    reader.on_ready = lambda fs: (got.append(fs), done.set())
    reader.request(step, direction)
    assert done.wait(timeout_s), f"no frames for step {step}"
    return got[-1]


def test_the_reader_decodes_only_the_frames_shown_and_a_bounded_read_ahead(episode):
    source = CountingSource(Hdf5JpegFrameSource(episode))
    ep = ReplayEpisode(episode)
    reader = FrameReader(source, ep.step_times, lambda fs: None, read_ahead=5)
    got: list[FrameSet] = []
    reader.start()
    try:
        assert source.reads == []  # opening reads timing only
        frames = _serve(reader, got, 30)
        assert frames.step == 30 and set(frames.color) == {"front", "wrist", "side"}
        assert frames.depth["wrist"].shape[2] == 3  # colour-mapped
        assert frames.source_steps["side"] != 30  # a late camera: shown by capture time
        reader.request(30)  # paused: both neighbours are read ahead, then nothing more
        _wait_idle(source)
        assert {s for _, s in source.reads} <= set(range(26, 35))
        hits_before = len(source.reads)
        assert reader.cached(31) is not None and len(source.reads) == hits_before
        source.reads.clear()
        _serve(reader, got, 60, direction=1)
        _wait_idle(source)
        steps = {s for _, s in source.reads}
        assert steps and max(steps) <= 60 + 5 + 2 and min(steps) >= 55  # 5 ahead (+late cams)
        assert all(reader.cached(s) is not None for s in range(60, 66))
    finally:
        reader.stop()


def _wait_idle(source: CountingSource, quiet_s: float = 0.3) -> None:
    import time

    last, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_s:
        if len(source.reads) != last:
            last, since = len(source.reads), time.monotonic()
        time.sleep(0.02)


def test_the_cache_stays_within_its_budget_and_forgets_the_oldest():
    cache = FrameCache(budget_bytes=3 * 1000)
    for k in range(5):
        cache.put(("color", "front", k), np.zeros(1000, np.uint8))
    assert cache.bytes <= 3000 and len(cache) == 3
    assert cache.get(("color", "front", 0)) == (False, None)
    assert cache.get(("color", "front", 4))[0]
    cache.put(("color", "front", 9), None)  # "no frame" is cached too (costs nothing)
    assert cache.get(("color", "front", 9)) == (True, None)


def test_frames_are_decoded_at_the_panes_size(episode):
    source = Hdf5JpegFrameSource(episode)
    ep = ReplayEpisode(episode)
    reader = FrameReader(source, ep.step_times, lambda fs: None)
    reader.set_display_size("front", (80, 80))
    reader.start()
    try:
        frames = _serve(reader, [], 20)
        assert frames.color["front"].shape == (60, 80, 3)  # aspect kept inside the pane
        assert frames.color["side"].shape == (120, 160, 3)  # no size given: as recorded
    finally:
        reader.stop()
    assert fit_frame(np.zeros((100, 200, 3), np.uint8), (400, 400)).shape == (200, 400, 3)
    source = Hdf5JpegFrameSource(episode)
    try:  # a display a quarter of the frame's size decodes a reduced JPEG, the same picture
        small = source.read_color("front", 40, (40, 30))
        full = fit_frame(source.read_color("front", 40), (40, 30))
        assert small.shape == full.shape == (30, 40, 3)
        assert float(np.mean(np.abs(small.astype(int) - full.astype(int)))) < 8
    finally:
        source.close()
