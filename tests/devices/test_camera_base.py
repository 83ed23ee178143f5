"""The capture-thread base every camera shares: timing, counters, staleness, gaps, reconnects."""

from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np
import pytest

from tests.waiting import wait_until
from vla_studio.core.profile import parse_profile
from vla_studio.devices.cameras.base import (Camera, CameraConfig, CameraState, CameraStatus,
                                             FrameGap, RawFrame, StreamEnded)
from vla_studio.devices.cameras.state_events import camera_event
from vla_studio.devices.cameras.synthetic import SyntheticCamera, SyntheticCameraConfig
from vla_studio.devices.registry import config_class_for
from vla_studio.station import Station

END = object()
IMG = np.zeros((4, 4, 3), np.uint8)


class ScriptedCamera(Camera):
    """A backend the test drives: frames come from a queue; opens and reads fail on demand."""

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        self.frames: queue.Queue = queue.Queue()
        self.open_error = ""
        self.read_error = ""
        self.warn_on_open = ""
        self.hang = threading.Event()  # set: _read blocks until released (a stuck driver)
        self.release = threading.Event()
        self.opens = self.closes = 0
        self.close_threads: list[str] = []

    def _open(self) -> None:
        self.opens += 1
        if self.open_error:
            raise OSError(self.open_error)
        if self.warn_on_open:
            self._warn(self.warn_on_open)
            self.warn_on_open = ""

    def _read(self, timeout_s: float) -> RawFrame | None:
        if self.hang.is_set():
            self.release.wait(30)
        if self.read_error:
            raise OSError(self.read_error)
        try:
            item = self.frames.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if item is END:
            raise StreamEnded("end of the test clip")
        return item

    def _close(self) -> None:
        self.closes += 1
        self.close_threads.append(threading.current_thread().name)


def make(name: str = "cam", **kw) -> ScriptedCamera:
    kw.setdefault("fps", 30.0)
    kw.setdefault("max_backoff_s", 0.05)
    return ScriptedCamera(CameraConfig(name=name, **kw))


@pytest.fixture
def cam():
    cameras: list[ScriptedCamera] = []

    def build(**kw) -> ScriptedCamera:
        c = make(**kw)
        cameras.append(c)
        return c

    yield build
    for c in cameras:
        c.release.set()
        c.disconnect()


def test_frames_carry_host_capture_time_device_time_and_sequential_indices(cam):
    c = cam()
    c.connect()
    before = time.monotonic()
    for k in range(3):
        c.frames.put(RawFrame(color=IMG, t_device=10.0 + k, device_index=100 + k))
    frame = c.wait_for_frame(after_index=1, timeout_s=2)
    assert frame is not None and frame.index == 2
    assert before <= frame.t_capture <= time.monotonic()
    assert frame.t_device == 12.0
    status = c.status()
    assert status.state == CameraState.STREAMING
    assert (status.delivered, status.dropped) == (3, 0)


def test_device_counter_gaps_are_counted_as_exact_drops_and_late_frames(cam):
    c = cam()
    c.connect()
    t0, p = time.monotonic(), 1 / 30
    for k, idx in enumerate((0, 1, 4)):
        c.frames.put(RawFrame(color=IMG, device_index=idx, t_capture=t0 + p * idx))
    assert c.wait_for_frame(after_index=1, timeout_s=2) is not None
    status = c.status()
    assert status.dropped == 2
    assert status.late == 1  # the frame after the hole arrived three periods later


def test_without_a_device_counter_drops_are_estimated_from_arrival_times(cam):
    c = cam()
    c.connect()
    t0, p = time.monotonic(), 1 / 30
    for slot in (0, 1, 4, 5):
        c.frames.put(RawFrame(color=IMG, t_capture=t0 + p * slot))
    assert c.wait_for_frame(after_index=2, timeout_s=2) is not None
    assert c.status().dropped == 2


def test_a_device_slower_than_requested_is_not_reported_as_dropping(cam):
    c = cam()
    c._set_mode(fps=15.0)  # the backend negotiated 15 fps although 30 were asked for
    c.connect()
    t0, p = time.monotonic(), 1 / 15
    for slot in range(4):
        c.frames.put(RawFrame(color=IMG, t_capture=t0 + p * slot))
    assert c.wait_for_frame(after_index=2, timeout_s=2) is not None
    status = c.status()
    assert (status.dropped, status.late) == (0, 0)


def test_silent_camera_goes_stale_records_a_gap_and_recovers(cam):
    c = cam(stale_after_ms=100.0, reconnect_after_ms=10_000.0)
    changes: list[tuple[CameraState, CameraState]] = []
    c.add_listener(lambda s, prev: changes.append((prev, s.state)))
    c.connect()
    c.frames.put(RawFrame(color=IMG))
    assert c.wait_for_frame(timeout_s=2) is not None
    assert wait_until(lambda: c.status().state == CameraState.STALE)
    stale = c.status()
    assert stale.fps == 0.0
    assert stale.gaps[-1].is_open and "no frame" in stale.gaps[-1].reason
    assert (CameraState.STREAMING, CameraState.STALE) in changes
    lost = camera_event(stale, CameraState.STREAMING)
    assert lost is not None and lost.kind == "camera.lost"

    c.frames.put(RawFrame(color=IMG))
    assert wait_until(lambda: c.status().state == CameraState.STREAMING)
    status = c.status()
    gap = status.gaps[-1]
    assert not gap.is_open and gap.duration_s() >= 0.1
    assert status.gap_count == 1
    assert status.gaps_between(gap.t_start, gap.t_end) == [gap]
    assert (CameraState.STALE, CameraState.STREAMING) in changes
    restored = camera_event(status, CameraState.STALE)
    assert restored is not None and restored.kind == "camera.restored"
    assert "without frames" in restored.message


def test_read_failure_reconnects_and_streams_again(cam):
    c = cam()
    c.warn_on_open = "the lens cap is on"
    c.connect()
    c.frames.put(RawFrame(color=IMG))
    assert c.wait_for_frame(timeout_s=2) is not None
    assert c.status().warnings == ("the lens cap is on",)
    c.read_error = "USB device gone"
    assert wait_until(lambda: c.status().state == CameraState.RECONNECTING)
    status = c.status()
    assert "USB device gone" in status.last_error
    assert status.reconnects >= 1 and c.closes >= 1
    assert status.gaps[-1].is_open
    c.read_error = ""
    c.frames.put(RawFrame(color=IMG))
    assert wait_until(lambda: c.status().state == CameraState.STREAMING)
    status = c.status()
    assert c.opens >= 2
    assert status.warnings == ()  # warnings belong to a connection; the new one has none
    assert status.last_error == ""
    assert not status.gaps[-1].is_open
    assert "USB device gone" in status.gaps[-1].reason  # why frames were missing stays known


def test_a_missing_device_never_raises_and_is_retried_with_backoff(cam):
    c = cam(max_backoff_s=0.1)
    c.open_error = "no camera at index 7"
    c.connect(timeout_s=2.0)  # returns: the failure is in the status, not an exception
    assert c.is_connected
    status = c.status()
    assert status.state == CameraState.RECONNECTING
    assert "no camera at index 7" in status.last_error
    assert c.latest() is None
    assert wait_until(lambda: c.opens >= 3)
    c.open_error = ""
    c.frames.put(RawFrame(color=IMG))
    assert wait_until(lambda: c.status().state == CameraState.STREAMING)


def test_without_reconnect_a_failed_open_stops_the_camera(cam):
    c = cam(reconnect=False)
    c.open_error = "no such device"
    c.connect(timeout_s=2.0)
    assert wait_until(lambda: not c.is_connected)
    assert c.status().state == CameraState.STOPPED
    assert c.opens == 1


def test_end_of_a_finite_source_ends_the_camera_without_reconnecting(cam):
    c = cam()
    c.connect()
    c.frames.put(RawFrame(color=IMG))
    c.frames.put(END)
    assert wait_until(lambda: c.status().state == CameraState.ENDED)
    assert wait_until(lambda: not c.is_connected)
    status = c.status()
    assert status.last_error == "end of the test clip"
    assert c.opens == 1 and c.closes == 1
    event = camera_event(status, CameraState.STREAMING)
    assert event is not None and event.kind == "camera.ended"


def test_latest_and_status_never_block_while_the_driver_is_stuck(cam):
    c = cam(stale_after_ms=80.0, reconnect_after_ms=60_000.0)
    c.connect()
    c.frames.put(RawFrame(color=IMG))
    first = c.wait_for_frame(timeout_s=2)
    c.hang.set()
    time.sleep(0.15)  # the capture thread is now stuck inside _read
    t = time.monotonic()
    frame, status = c.latest(), c.status()
    assert time.monotonic() - t < 0.05  # returns at once, with the last frame
    assert frame is first
    assert status.state == CameraState.STALE  # detected without the capture thread's help
    assert status.gaps[-1].is_open
    c.release.set()


def test_disconnect_joins_the_named_capture_thread_and_closes_on_it(cam):
    c = cam(name="wrist")
    c.connect()
    c.frames.put(RawFrame(color=IMG))
    assert c.wait_for_frame(timeout_s=2) is not None
    assert "camera-wrist" in [t.name for t in threading.enumerate()]
    c.disconnect()
    assert not c.is_connected
    assert "camera-wrist" not in [t.name for t in threading.enumerate()]
    assert c.close_threads == ["camera-wrist"]
    assert c.status().state == CameraState.STOPPED
    c.disconnect()  # twice is fine


def test_gaps_between_reports_only_gaps_overlapping_the_interval():
    closed = FrameGap(10.0, 12.0, "read failed")
    still_open = FrameGap(20.0, None, "no frame")
    status = CameraStatus("c", CameraState.STALE, 0, 0, 0, 0, 0.0, None, "",
                          gaps=(closed, still_open))
    assert status.gaps_between(0.0, 9.0) == []
    assert status.gaps_between(11.0, 15.0) == [closed]
    assert status.gaps_between(13.0, 19.0) == []
    assert status.gaps_between(25.0, 30.0) == [still_open]
    assert closed.duration_s() == 2.0
    assert still_open.duration_s(now=23.0) == 3.0


def test_synthetic_device_loses_frames_older_than_its_queue_while_the_reader_stalls():
    cam = SyntheticCamera(SyntheticCameraConfig(name="s", width=8, height=6, fps=50,
                                                queue_frames=2))
    cam._open()
    first = cam._read(1.0)
    time.sleep(0.2)  # ~10 periods without reading
    late = cam._read(1.0)
    nxt = cam._read(1.0)
    assert first.device_index == 0
    assert late.device_index >= 5  # frames beyond the 2-frame queue were lost: a visible gap
    assert nxt.device_index == late.device_index + 1  # the buffered frame follows at once
    assert late.t_capture < nxt.t_capture <= time.monotonic()


def test_camera_trouble_is_published_on_the_station_event_bus():
    profile = parse_profile({
        "name": "t", "control_rate_hz": 20, "robot": {"type": "null"},
        "cameras": [{"type": "synthetic", "name": "flaky", "width": 8, "height": 6,
                     "fail_after_frames": 5, "max_backoff_s": 0.05}],
    }, config_class_for, source="test")
    station = Station.from_profile(profile)
    try:
        station.connect()
        assert wait_until(lambda: any(e.kind == "camera.lost" for e in station.events.history))
        event = next(e for e in station.events.history if e.kind == "camera.lost")
        assert event.level == logging.WARNING
        assert event.data["camera"] == "flaky"
        assert "unplugged" in event.message
    finally:
        station.close()
