"""Background compaction: saved JPEG episodes become video in a worker process that is frozen
the moment recording starts and goes on only once the recorder is idle again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import h5py
import pytest

from vla_studio.bench.replay_episode import CameraPlan
from vla_studio.core.arbiter import FixedActionSource
from vla_studio.data.compactor import STATE_PAUSED, Compactor
from vla_studio.data.dataset import Dataset
from vla_studio.data.integrity import verify_episode
from vla_studio.data.labels import EpisodeLabels
from vla_studio.data.recorder import Recorder
from vla_studio.data.recording import RecorderConfig
from vla_studio.data.video_codec import VideoSettings
from vla_studio.data.video_storage import camera_formats
from vla_studio.station import Station

from .conftest import ACTION, dry_run_profile, wait_until
from .video_episodes import small_episode


def _formats(path: Path) -> set[str]:
    with h5py.File(path, "r") as f:
        return set(camera_formats(f).values())


def _process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_saved_episodes_are_compacted_in_the_background(tmp_path):
    paths = [small_episode(tmp_path, seed=k) for k in range(2)]
    events: list[tuple[str, str]] = []
    compactor = Compactor(Dataset(tmp_path), VideoSettings(), idle_s=0.0, reserve_bytes=0,
                          emit=lambda kind, message, level, **data: events.append((kind, message)))
    compactor.start()
    try:
        wait_until(lambda: compactor.status().compacted == 2, 60, "two episodes compacted")
    finally:
        compactor.stop()
    for path in paths:
        assert _formats(path) == {"av1"} and verify_episode(path).status == "ok"
    assert [k for k, _ in events] == ["compactor.compacted"] * 2
    assert compactor.status().saved_bytes > 0


def test_freeze_stops_the_worker_within_100_ms_and_work_resumes_when_idle(tmp_path):
    path = small_episode(tmp_path, steps=240, cameras=(CameraPlan("front", 320, 240),))
    busy = threading.Event()
    compactor = Compactor(Dataset(tmp_path), VideoSettings(), idle_s=0.3, reserve_bytes=0,
                          is_busy=busy.is_set)
    compactor.start()
    try:
        wait_until(lambda: compactor.status().frames_done > 0, 30, "the worker transcoding")
        pid = compactor.worker_pid
        assert pid is not None
        busy.set()
        t0 = time.perf_counter()
        compactor.freeze()
        while _process_state(pid) != "T":
            assert time.perf_counter() - t0 < 0.1, "the worker was not stopped within 100 ms"
            time.sleep(0.001)
        frozen_at = compactor.status().frames_done
        time.sleep(0.6)
        status = compactor.status()
        assert status.state == STATE_PAUSED and _process_state(pid) == "T"
        assert status.frames_done == frozen_at  # no progress while recording
        busy.clear()
        wait_until(lambda: compactor.status().compacted == 1, 60, "the episode compacted")
    finally:
        compactor.stop()
    assert _formats(path) == {"av1"} and verify_episode(path).status == "ok"


def test_stopping_mid_transcode_leaves_the_jpeg_episode_and_no_temporary(tmp_path):
    path = small_episode(tmp_path, steps=240, cameras=(CameraPlan("front", 320, 240),))
    compactor = Compactor(Dataset(tmp_path), VideoSettings(), idle_s=0.0, reserve_bytes=0)
    compactor.start()
    wait_until(lambda: compactor.status().frames_done > 0, 30, "the worker transcoding")
    compactor.freeze()  # frozen workers are killed as well
    compactor.stop()
    assert _formats(path) == {"jpeg"} and verify_episode(path).status == "ok"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_the_recorder_freezes_compaction_when_recording_starts(tmp_path):
    old = small_episode(tmp_path / "dataset", seed=3)
    profile = dry_run_profile(tmp_path, recording={"storage": "video"})
    station = Station.from_profile(profile)
    station.start()
    station.set_teleop_source(FixedActionSource(ACTION))
    recorder = Recorder(station, config=RecorderConfig(background_compaction=True))
    try:
        for cam in station.cameras.values():
            assert cam.wait_for_frame(timeout_s=5.0) is not None
        recorder.connect()
        assert recorder.compactor is not None
        recorder.compactor.idle_s = 0.3
        recorder.start(EpisodeLabels("pick up the red cube"))
        assert recorder.compactor.pause_latencies_s  # frozen first thing
        time.sleep(0.8)
        assert recorder.compactor.status().state == STATE_PAUSED
        recorder.stop(True)
        recorder.wait_idle(10)
        new = recorder.last_episode.path
        wait_until(lambda: recorder.compactor.status().compacted == 2, 60, "both compacted")
    finally:
        recorder.disconnect()
        station.close()
    for path in (old, Path(new)):
        assert _formats(path) == {"av1"} and verify_episode(path).status == "ok"


@pytest.mark.parametrize("storage", ["jpeg"])
def test_no_background_compaction_unless_the_profile_asks(tmp_path, storage):
    profile = dry_run_profile(tmp_path, recording={"storage": storage})
    station = Station.from_profile(profile)
    recorder = Recorder(station, config=RecorderConfig(background_compaction=True))
    try:
        recorder.connect()
        assert recorder.compactor is None
    finally:
        recorder.disconnect()
        station.close()
