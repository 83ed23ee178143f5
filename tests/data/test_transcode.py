"""Transcoding a sealed episode to video keeps the recording: the same steps, timing, depth and
labels, pictures within the PSNR target, every checksum valid, and nothing lost when anything
goes wrong (damaged input, the episode moved meanwhile, a crash at any moment, a full disk)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from vla_studio.bench.replay_episode import CameraPlan
from vla_studio.data.annotations import write_annotations
from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.integrity import verify_episode
from vla_studio.data.transcode import (OUTCOME_CHANGED, OUTCOME_FAILED, OUTCOME_READY,
                                       OUTCOME_SKIPPED, OUTCOME_TRANSCODED, commit_transcoded,
                                       remove_stale_temporaries, temp_path_for, transcode_episode)
from vla_studio.data.video_codec import VideoSettings
from vla_studio.data.video_storage import camera_formats, open_frame_source

from .video_episodes import decoded_frames, small_episode, step_arrays

CHILD = Path(__file__).with_name("transcode_child.py")


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_transcoded_episode_keeps_steps_timing_depth_and_pictures(tmp_path, codec):
    path = small_episode(tmp_path)
    write_annotations(path, {"success": False, "notes": "kept"}, source="researcher")
    before_steps, before_frames = step_arrays(path), decoded_frames(path)
    with EpisodeReader(path) as ep:
        before_attrs, before_depth = dict(ep.attrs), ep.depth("front")
    source = open_frame_source(path)
    times = {c: source.capture_times(c) for c in source.cameras}
    sequence = {c: source.sequence_numbers(c) for c in source.cameras}
    source.close()

    result = transcode_episode(path, VideoSettings(codec=codec))

    assert result.outcome == OUTCOME_TRANSCODED, result.message
    assert result.bytes_after < result.bytes_before and result.psnr_db_min >= 25
    assert not temp_path_for(path).exists()
    verdict = verify_episode(path)
    assert verdict.status == "ok" and verdict.steps_checked == 60, verdict.problems
    with h5py.File(path, "r") as f:
        assert camera_formats(f) == {"front": codec, "wrist": codec}
        assert f.attrs["storage"] == "video"
    after_steps = step_arrays(path)
    assert set(after_steps) == set(before_steps)
    for key, values in before_steps.items():
        assert np.array_equal(values, after_steps[key], equal_nan=True), key
    with EpisodeReader(path) as ep:
        assert ep.success() is False and ep.annotations["notes"] == "kept"  # sidecar kept
        assert np.array_equal(ep.depth("front"), before_depth)  # lossless
        assert ep.attrs["episode_id"] == before_attrs["episode_id"]
    source = open_frame_source(path)
    for cam, frames in decoded_frames(path).items():
        assert np.array_equal(source.capture_times(cam), times[cam], equal_nan=True)
        assert np.array_equal(source.sequence_numbers(cam), sequence[cam])
        for step, (old, new) in enumerate(zip(before_frames[cam], frames)):
            assert (old is None) == (new is None), (cam, step)
            if old is not None:
                assert new.shape == old.shape and cv2.PSNR(old, new) >= 25, (cam, step)
        # random access decodes the same pictures as reading in order
        for step in (37, 3, 59, 0, 22):
            if frames[step] is not None:
                assert np.array_equal(source.read_color(cam, step), frames[step]), (cam, step)
    source.close()
    again = transcode_episode(path)
    assert again.outcome == OUTCOME_SKIPPED and "already" in again.message


def test_a_damaged_episode_is_left_as_recorded(tmp_path):
    path = small_episode(tmp_path)
    with h5py.File(path, "r+") as f:  # one flipped byte inside a JPEG frame
        data = f["steps/observation/image/front/data"]
        data[5000] = data[5000] ^ 0xFF
    before = path.read_bytes()
    result = transcode_episode(path)
    assert result.outcome == OUTCOME_FAILED and "damaged" in result.message
    assert path.read_bytes() == before and not temp_path_for(path).exists()


def test_nothing_is_committed_when_the_episode_was_trashed_meanwhile(tmp_path):
    path = small_episode(tmp_path)
    ready = transcode_episode(path, commit=False)
    assert ready.outcome == OUTCOME_READY and temp_path_for(path).exists()
    trashed = Dataset(tmp_path).trash(path)
    result = commit_transcoded(ready)
    assert result.outcome == OUTCOME_CHANGED
    assert not path.exists() and not temp_path_for(path).exists()  # not resurrected
    assert verify_episode(trashed).status == "ok"
    with h5py.File(trashed, "r") as f:
        assert camera_formats(f)["front"] == "jpeg"


def _frames_shown(path: Path) -> int:
    return sum(f is not None for f in decoded_frames(path)["front"])


def _child(path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), str(path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])))


def _assert_valid(path: Path, frames_expected: int) -> str:
    """The episode verifies and reads every frame; returns its storage."""
    removed = remove_stale_temporaries(path.parent)
    assert not temp_path_for(path).exists(), removed
    verdict = verify_episode(path)
    assert verdict.status == "ok", verdict.problems
    frames = decoded_frames(path)
    assert sum(f is not None for f in frames["front"]) == frames_expected
    with h5py.File(path, "r") as f:
        return camera_formats(f)["front"]


@pytest.mark.parametrize("crash_at", ["write", "before_rename", "after_rename"])
def test_a_crash_at_any_phase_leaves_a_valid_episode(tmp_path, crash_at):
    path = small_episode(tmp_path, steps=45)
    shown = _frames_shown(path)
    proc = _child(path, "--crash-at", crash_at)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 9, err[-2000:]
    storage = _assert_valid(path, shown)
    assert storage == ("av1" if crash_at == "after_rename" else "jpeg")
    assert transcode_episode(path).outcome in (OUTCOME_TRANSCODED, OUTCOME_SKIPPED)
    assert _assert_valid(path, shown) == "av1"


def test_kill_9_at_random_moments_never_loses_the_episode(tmp_path):
    path = small_episode(tmp_path, steps=150, cameras=(CameraPlan("front", 320, 240),))
    shown = _frames_shown(path)
    rng = np.random.default_rng(7)
    storages = []
    for attempt in range(4):
        proc = _child(path)
        assert proc.stdout.readline().strip() == "started"
        time.sleep(float(rng.uniform(0.02, 0.8)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        storages.append(_assert_valid(path, shown))
        if storages[-1] == "av1":
            break
    result = transcode_episode(path)
    assert result.outcome in (OUTCOME_TRANSCODED, OUTCOME_SKIPPED), result.message
    assert _assert_valid(path, shown) == "av1"


def test_a_full_disk_leaves_the_jpeg_episode(tmp_path):
    """Writes past a file size limit fail with EFBIG (what a full disk does to a write): the
    transcode gives up, removes its temporary file and leaves the JPEG episode as it was."""
    path = small_episode(tmp_path)
    shown = _frames_shown(path)
    before = path.read_bytes()
    proc = _child(path, "--fsize", str(40_000))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["outcome"] == "no_space", result
    assert path.read_bytes() == before and not temp_path_for(path).exists()
    assert _assert_valid(path, shown) == "jpeg"


@pytest.mark.parametrize("check_first", [True, False])
def test_a_full_filesystem_leaves_the_jpeg_episode(tmp_path, check_first):
    """The same on a real full disk: a tmpfs (in a private mount namespace) with room for the
    episode and a little more. The transcoder sees there is too little room and does not
    start; told to go ahead anyway, writing the video runs out of space (ENOSPC)."""
    from .test_disk_full import can_mount_tmpfs

    if not can_mount_tmpfs():
        pytest.skip("cannot mount a tmpfs here (no user namespaces)")
    path = small_episode(tmp_path)
    shown = _frames_shown(path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    size_kb = path.stat().st_size // 1024 + 48
    inner = mnt / "episodes" / path.name
    script = (f"mount -t tmpfs -o size={size_kb}k tmpfs {mnt} && mkdir {mnt}/episodes && "
              f"cp {path} {inner} && {sys.executable} {CHILD} {inner} "
              f"--reserve {0 if check_first else -10**12}; "
              f"cp -r {mnt}/episodes {tmp_path}/after")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ,
                                               PYTHONPATH=str(Path(__file__).parents[2])))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "no_space", result
    assert ("free space needed" in result["message"]) == check_first, result
    after = tmp_path / "after"
    assert sorted(p.name for p in after.iterdir()) == [path.name]  # no temporary file left
    assert (after / path.name).read_bytes() == path.read_bytes()
    assert _assert_valid(after / path.name, shown) == "jpeg"


def test_a_transcode_in_progress_elsewhere_is_left_alone(tmp_path):
    """Two transcoders never share a temporary file: the second one, and the stale-file
    cleanup, leave a temporary file whose lock a running transcode holds."""
    from vla_studio.data.transcode import temp_lock

    path = small_episode(tmp_path)
    temp = temp_path_for(path)
    with temp_lock(temp):  # as a running transcode in another process holds it
        temp.write_bytes(b"being written")
        result = transcode_episode(path)
        assert result.outcome == OUTCOME_SKIPPED and "another process" in result.message
        assert remove_stale_temporaries(path.parent) == []
        assert temp.read_bytes() == b"being written"
    assert remove_stale_temporaries(path.parent) == [temp]  # released: stale now
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
