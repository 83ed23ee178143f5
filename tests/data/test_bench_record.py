"""`vla-studio bench record`, run briefly as a real process: realistic frames, and figures that
agree with each other and with the file (never timing targets: those are for a quiet machine)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np

from vla_studio.bench.frames import texture_frames
from vla_studio.data.episode_file import EpisodeReader

KEYS = ("cameras", "size", "fps", "rate_hz", "seconds", "steps_expected", "steps_written",
        "frames_expected", "frames_produced", "frames_written", "frames_never_recorded",
        "fresh_frame_fraction", "frames_seen_by_loop", "frames_dropped", "recorder_frames_lost",
        "camera_drops", "loop_ticks_nominal", "writer_queue_max_fraction", "mb_per_s",
        "cpu_percent", "stop_to_ready_s", "finalize_s", "recorder_dropped_steps",
        "frames_never_seen_by_loop", "file_mb", "jpeg_kb_per_frame")


def bench_record(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "vla_studio", "--log-level", "WARNING", "bench",
                           "record", "--json", "--size", "160x120", "--seconds", "1.5", *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bench_record_reports_consistent_step_and_frame_figures(tmp_path):
    result = bench_record("--cameras", "2", "--fps", "15", "--rate", "30",
                          "--dataset", str(tmp_path))
    assert set(KEYS) <= set(result), sorted(set(KEYS) - set(result))
    cams, steps = result["cameras"], result["steps_written"]
    assert result["frames_expected"] == round(2 * 15 * 1.5) == 45  # nominal
    assert result["steps_expected"] >= 30 and steps == result["steps_expected"]
    assert result["recorder_frames_lost"] == 0 and result["frames_written"] > 0
    # every step carries at most one frame per camera, each distinct frame starts a fresh run
    assert 0.0 < result["fresh_frame_fraction"] <= 1.0
    assert abs(result["fresh_frame_fraction"] * cams * steps - result["frames_written"]) < 0.5
    # a produced frame is either in the file or never recorded
    assert 0 <= result["frames_never_recorded"] <= result["frames_produced"]
    assert result["frames_produced"] - result["frames_never_recorded"] <= result["frames_written"]
    assert 0.0 <= result["writer_queue_max_fraction"] <= 1.0

    # the file is the one measured, and its frames are the realistic texture, not colour bars
    [episode, _] = sorted((tmp_path / "episodes").glob("*.h5"))
    with EpisodeReader(episode) as ep:
        assert ep.num_steps == steps
        distinct = 0
        for cam in ("cam0", "cam1"):
            fi = ep.step(f"observation/image/{cam}/frame_index")
            distinct += len(np.unique(fi[fi >= 0]))
        assert distinct == result["frames_written"]
        bgr = cv2.imdecode(np.frombuffer(ep.image_bytes("cam0", 0), np.uint8), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int)
    scenes = texture_frames(160, 120, 30, seed=0)  # camera 0's scene
    assert min(np.abs(rgb - frame).mean() for frame in scenes) < 3.0


def test_frames_the_loop_ticks_past_are_counted_as_never_recorded():
    # a 30 fps camera and a 10 Hz loop: every step can carry a new frame, and about two of
    # every three frames are never recorded
    result = bench_record("--cameras", "1", "--fps", "30", "--rate", "10")
    steps, produced = result["steps_written"], result["frames_produced"]
    assert result["frames_expected"] == 45
    assert result["frames_written"] <= steps  # one camera: at most one frame per step
    assert result["frames_never_recorded"] >= produced - steps > 0
    assert abs(result["fresh_frame_fraction"] * steps - result["frames_written"]) < 0.5
