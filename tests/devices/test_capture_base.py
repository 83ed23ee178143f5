"""The camera base's capture thread: timing, counters, staleness, reconnect, never blocking."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from vla_studio.core.config import option
from vla_studio.devices.cameras.base import Camera, CameraConfig, CameraState, RawFrame
from vla_studio.devices.cameras.synthetic import SyntheticCamera, SyntheticCameraConfig


@dataclass(frozen=True)
class ScriptedConfig(CameraConfig):
    open_failures: int = option(0, min=0)


class ScriptedCamera(Camera):
    """A backend whose behaviour the test controls: failures to open, frames, silence, gaps."""

    config_class = ScriptedConfig

    def __init__(self, config: ScriptedConfig) -> None:
        super().__init__(config)
        self.opens = 0
        self.closes = 0
        self.silent = threading.Event()
        self.device_index = 0
        self.skip_next = 0

    def _open(self) -> None:
        self.opens += 1
        if self.opens <= self.config.open_failures:
            raise OSError(f"/dev/video9 busy (attempt {self.opens})")

    def _read(self, timeout_s: float) -> RawFrame | None:
        if self.silent.is_set():
            time.sleep(timeout_s)
            return None
        time.sleep(self.period_s)
        self.device_index += 1 + self.skip_next
        self.skip_next = 0
        return RawFrame(color=np.zeros((4, 4, 3), np.uint8), device_index=self.device_index,
                        t_device=self.device_index * self.period_s)

    def _close(self) -> None:
        self.closes += 1


def scripted(**kw) -> ScriptedCamera:
    return ScriptedCamera(ScriptedConfig(name="cam", width=4, height=4, fps=100, **kw))


def test_frames_carry_increasing_index_and_monotonic_host_time():
    cam = SyntheticCamera(SyntheticCameraConfig(name="s", width=32, height=24, fps=60))
    cam.connect()
    try:
        frames = []
        last = -1
        for _ in range(5):
            f = cam.wait_for_frame(last, timeout_s=2.0)
            frames.append(f)
            last = f.index
        assert [f.index for f in frames] == sorted({f.index for f in frames})
        assert all(b.t_capture > a.t_capture for a, b in zip(frames, frames[1:]))
        assert frames[0].color.shape == (24, 32, 3) and frames[0].camera == "s"
        assert cam.status().state == CameraState.STREAMING
        assert cam.intrinsics is not None and cam.intrinsics.width == 32
    finally:
        cam.disconnect()
    assert not any(t.name == "camera-s" for t in threading.enumerate())


def test_latest_never_blocks_even_before_the_first_frame():
    cam = scripted(open_failures=1000)
    t0 = time.monotonic()
    assert cam.latest() is None
    cam.connect(timeout_s=1.0)
    try:
        assert cam.latest() is None
        assert time.monotonic() - t0 < 1.5
    finally:
        cam.disconnect()


def test_a_device_that_fails_to_open_is_reported_and_retried_with_backoff():
    cam = scripted(open_failures=2)
    cam.connect(timeout_s=2.0)
    try:
        status = cam.status()
        assert status.state in (CameraState.RECONNECTING, CameraState.STREAMING)
        assert cam.wait_for_frame(timeout_s=5.0) is not None  # third attempt opens
        assert cam.opens == 3
        assert cam.status().state == CameraState.STREAMING and cam.status().last_error == ""
    finally:
        cam.disconnect()


def test_gaps_in_device_frame_numbers_count_as_drops():
    cam = scripted()
    cam.connect()
    try:
        first = cam.wait_for_frame(timeout_s=2.0)
        cam.skip_next = 3
        cam.wait_for_frame(first.index + 2, timeout_s=2.0)
        assert cam.status().dropped == 3
    finally:
        cam.disconnect()


def test_silent_camera_goes_stale_then_is_reopened():
    cam = ScriptedCamera(ScriptedConfig(name="cam", width=4, height=4, fps=100,
                                        stale_after_ms=60, reconnect_after_ms=300))
    cam.connect()
    try:
        assert cam.wait_for_frame(timeout_s=2.0) is not None
        cam.silent.set()
        deadline = time.monotonic() + 2.0
        while cam.status().state != CameraState.STALE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cam.status().state == CameraState.STALE
        deadline = time.monotonic() + 3.0
        while cam.status().reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cam.status().reconnects >= 1 and cam.closes >= 1
        assert "no frame" in cam.status().last_error
        cam.silent.clear()
        last = cam.latest().index
        assert cam.wait_for_frame(last, timeout_s=3.0) is not None  # streams again
    finally:
        cam.disconnect()


def test_unplugged_camera_reconnects_and_keeps_counting():
    cam = SyntheticCamera(SyntheticCameraConfig(name="u", width=8, height=8, fps=100,
                                                fail_after_frames=5))
    cam.connect()
    try:
        deadline = time.monotonic() + 3.0
        while cam.status().reconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        status = cam.status()
        assert status.reconnects >= 1 and "unplugged" in status.last_error
    finally:
        cam.disconnect()
    assert cam.status().state == CameraState.STOPPED
