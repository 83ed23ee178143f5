"""Compacting a dataset: which episodes to transcode, what it will save, and doing it.

``vla-studio dataset compact`` calls :func:`compact_dataset` (in the foreground, one episode
at a time, each one atomic: an interruption loses at most the episode being transcoded, and a
second run carries on where the first stopped); the background
:class:`~vla_studio.data.compactor.Compactor` uses :func:`candidates` and the same transcoder.
:func:`estimate` transcodes a short sample of the first episodes in memory to tell what a
whole run would save (``--dry-run``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import h5py
import numpy as np

from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_copy import camera_rates, distinct_frames, frames_in_order
from vla_studio.data.episode_file import IMAGE, STEPS
from vla_studio.data.transcode import (OUTCOME_NO_SPACE, OUTCOME_TRANSCODED, TranscodeControl,
                                       TranscodeResult, remove_stale_temporaries,
                                       transcode_episode, transcode_reason)
from vla_studio.data.video_codec import FrameEncoder, VideoSettings
from vla_studio.data.video_storage import camera_formats

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 3.0  # of each camera of each sampled episode (--dry-run)
SAMPLE_EPISODES = 2


def candidates(dataset: Dataset) -> list[Path]:
    """Sealed episodes of the dataset (not the trash) with cameras still stored as JPEG,
    oldest first."""
    return [p for p in dataset.episode_files() if not transcode_reason(p)]


@dataclass
class Estimate:
    """What compacting would do (``--dry-run``).

    Attributes:
        episodes: episodes that would be transcoded.
        jpeg_bytes: their JPEG frames.
        file_bytes: their files.
        expected_video_bytes: the JPEG frames as video (from the sample's ratio).
        expected_file_bytes: their files afterwards.
        sample_frames: frames encoded to measure it.
        cpu_s_per_frame: encoding cost in the sample (a whole transcode also decodes and checks
            every frame: about 1.5x this).
        already_video: episodes already compact.
    """

    episodes: int = 0
    jpeg_bytes: int = 0
    file_bytes: int = 0
    expected_video_bytes: int = 0
    expected_file_bytes: int = 0
    sample_frames: int = 0
    cpu_s_per_frame: float = 0.0
    already_video: int = 0
    frames: int = 0

    @property
    def saving_bytes(self) -> int:
        return max(0, self.file_bytes - self.expected_file_bytes)


def estimate(dataset: Dataset, settings: VideoSettings,
             sample_seconds: float = SAMPLE_SECONDS) -> Estimate:
    """What compacting ``dataset`` would save, measured on a sample (nothing is written)."""
    out = Estimate()
    episodes = candidates(dataset)
    out.already_video = sum(1 for p in dataset.episode_files()
                            if transcode_reason(p) == "already stored as video")
    out.episodes = len(episodes)
    sample_jpeg = sample_video = 0
    cpu = 0.0
    for k, path in enumerate(episodes):
        out.file_bytes += path.stat().st_size
        with h5py.File(path, "r") as f:
            t = int(f[f"{STEPS}/timestamp"].shape[0])
            rates = camera_rates(f)
            for cam, fmt in camera_formats(f).items():
                if fmt != "jpeg":
                    continue
                rows = distinct_frames(f[f"{IMAGE}/{cam}/index"][:t])
                out.jpeg_bytes += int(rows[:, 1].sum()) if len(rows) else 0
                out.frames += len(rows)
                if k < SAMPLE_EPISODES and len(rows):
                    n = max(1, int(sample_seconds * (rates.get(cam) or 30.0)))
                    group = f[f"{IMAGE}/{cam}"]
                    jpeg, video, seconds = _sample(group, rows[:n], settings, rates.get(cam, 0.0))
                    sample_jpeg, sample_video, cpu = sample_jpeg + jpeg, sample_video + video, \
                        cpu + seconds
                    out.sample_frames += min(n, len(rows))
    ratio = sample_video / sample_jpeg if sample_jpeg else 0.05
    out.expected_video_bytes = int(out.jpeg_bytes * ratio)
    out.expected_file_bytes = out.file_bytes - out.jpeg_bytes + out.expected_video_bytes
    out.cpu_s_per_frame = cpu / out.sample_frames if out.sample_frames else 0.0
    return out


def _sample(group: h5py.Group, rows: np.ndarray, settings: VideoSettings,
            fps: float) -> tuple[int, int, float]:
    """(JPEG bytes, video bytes, CPU seconds) of encoding ``rows`` of one camera."""
    width, height = int(group.attrs["width"]), int(group.attrs["height"])
    encoder = FrameEncoder(settings, width, height, fps)
    jpeg = video = 0
    c0 = time.process_time()
    for data in frames_in_order(group["data"], rows):
        jpeg += len(data)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        video += sum(len(p) for p, _ in encoder.encode(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    video += sum(len(p) for p, _ in encoder.encode(None))
    return jpeg, video, time.process_time() - c0


@dataclass
class CompactionReport:
    """What :func:`compact_dataset` did."""

    results: list[TranscodeResult] = field(default_factory=list)
    stale_removed: int = 0
    seconds: float = 0.0

    @property
    def transcoded(self) -> list[TranscodeResult]:
        return [r for r in self.results if r.outcome == OUTCOME_TRANSCODED]

    @property
    def not_transcoded(self) -> list[TranscodeResult]:
        return [r for r in self.results if r.outcome != OUTCOME_TRANSCODED]

    @property
    def saved_bytes(self) -> int:
        return sum(r.bytes_before - r.bytes_after for r in self.transcoded)


def compact_dataset(dataset: Dataset, settings: VideoSettings, *,
                    on_episode: Callable[[int, int, Path], None] | None = None,
                    on_frames: Callable[[int, int], None] | None = None,
                    on_result: Callable[[TranscodeResult], None] | None = None,
                    control: TranscodeControl | None = None) -> CompactionReport:
    """Transcode every candidate episode of ``dataset``, oldest first (in this thread).

    Args:
        on_episode: called with (episode number, episodes, path) before each one.
        on_frames: called with (frames done, frames) within the episode.
        on_result: called with each episode's result.
        control: checked before every frame (cancel).

    Stops early when the disk is full (every later episode would fail the same way).
    """
    t0 = time.monotonic()
    report = CompactionReport(stale_removed=len(remove_stale_temporaries(dataset.episodes_dir)))
    todo = candidates(dataset)
    for k, path in enumerate(todo):
        if on_episode is not None:
            on_episode(k, len(todo), path)
        result = transcode_episode(path, settings, control=control, progress=on_frames)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
        if result.outcome == OUTCOME_NO_SPACE:
            break
    report.seconds = time.monotonic() - t0
    return report
