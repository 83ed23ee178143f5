"""OpenCV cameras through the real cv2.VideoCapture path: video files written by the tests, an
HTTP MJPEG stream served by the tests (an IP camera that can die), and V4L2 enumeration."""

from __future__ import annotations

import errno
import http.server
import os
import socketserver
import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.waiting import wait_until
from vla_studio.core.config import ConfigError
from vla_studio.core.profile import parse_profile
from vla_studio.devices.cameras import v4l2
from vla_studio.devices.cameras.base import CameraState
from vla_studio.devices.cameras.opencv import (OpenCVCamera, OpenCVCameraConfig, classify_source,
                                               fourcc_code, fourcc_text, kernel_timestamp)
from vla_studio.devices.registry import CAMERAS, config_class_for


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (64, 48), fps: float = 30) -> Path:
    """An MJPG .avi whose frame k is pure red (BGR 0,0,255) with a column of brightness k*10."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for k in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 2] = 255
        img[:, 0] = min(255, k * 10)
        writer.write(img)
    writer.release()
    return path


@pytest.fixture
def cameras():
    made: list[OpenCVCamera] = []

    def build(**kw) -> OpenCVCamera:
        kw.setdefault("name", "cv")
        kw.setdefault("width", 64)
        kw.setdefault("height", 48)
        kw.setdefault("max_backoff_s", 0.1)
        cam = OpenCVCamera(OpenCVCameraConfig(**kw))
        made.append(cam)
        return cam

    yield build
    for cam in made:
        cam.disconnect()


def test_video_file_frames_arrive_as_rgb_with_file_timestamps_and_mode(tmp_path, cameras):
    path = write_video(tmp_path / "clip.avi")
    cam = cameras(source=str(path), realtime=False, loop=False)
    cam.connect()
    frames = [cam.wait_for_frame(after_index=i - 1, timeout_s=3) for i in range(3)]
    first = frames[0]
    assert first.color.shape == (48, 64, 3) and first.color.dtype == np.uint8
    r, g, b = first.color[24, 32]
    assert r > 200 and g < 40 and b < 40  # BGR from OpenCV became RGB
    assert not first.color.flags.writeable  # frames are shared across threads read-only
    for frame in frames:  # nothing dropped, so frame k of the capture is frame k of the file
        assert frame.t_device == pytest.approx(frame.index / 30, abs=1e-3)
    status = cam.status()
    assert status.mode["fourcc"] == "MJPG"
    assert status.mode["backend"] == "FFMPEG"
    assert status.mode["file_frames"] == 12 and status.mode["file_fps"] == pytest.approx(30)
    assert status.requested == {"width": 64, "height": 48, "fps": 30.0}


def test_a_size_the_source_cannot_give_is_resized_and_reported(tmp_path, cameras):
    path = write_video(tmp_path / "clip.avi", size=(64, 48))
    cam = cameras(source=str(path), width=32, height=24, realtime=False)
    cam.connect()
    frame = cam.wait_for_frame(timeout_s=3)
    assert frame.color.shape == (24, 32, 3)
    status = cam.status()
    assert status.mode["resized_to"] == "32x24"
    assert any("gives 64x48, not the requested 32x24" in w for w in status.warnings)


def test_a_looping_file_keeps_its_frame_counter_and_clock_running(tmp_path, cameras):
    path = write_video(tmp_path / "clip.avi", frames=5)
    cam = cameras(source=str(path), realtime=False, loop=True)
    cam.connect()
    frame = cam.wait_for_frame(after_index=12, timeout_s=5)
    assert frame is not None
    assert frame.t_device == pytest.approx(frame.index / 30, abs=1e-3)  # 3rd pass, clock runs on
    status = cam.status()
    assert status.dropped == 0 and status.state == CameraState.STREAMING


def read_after_stall(path: Path, buffer_size: int, stall_frames: int):
    """Drive the backend directly (the stall is then deterministic): first frame, stall, next."""
    cam = OpenCVCamera(OpenCVCameraConfig(name="cv", source=str(path), width=64, height=48,
                                          fps=30, buffer_size=buffer_size))
    cam._open()
    try:
        first = cam._read(1.0)
        time.sleep(stall_frames / 30)
        return first, cam._read(1.0), cam._read(1.0), time.monotonic()
    finally:
        cam._close()


def test_a_reader_behind_a_realtime_file_loses_frames_beyond_the_device_queue(tmp_path):
    path = write_video(tmp_path / "clip.avi", frames=30)
    first, late, _, _ = read_after_stall(path, buffer_size=1, stall_frames=6)
    assert first.device_index == 0
    assert late.device_index >= 5  # the camera kept running: ~5 frames passed unread, lost


def test_a_briefly_late_reader_gets_the_queued_frames_with_their_capture_times(tmp_path):
    path = write_video(tmp_path / "clip.avi", frames=30)
    first, queued, nxt, now = read_after_stall(path, buffer_size=8, stall_frames=3)
    assert (queued.device_index, nxt.device_index) == (1, 2)  # nothing lost
    assert queued.t_capture == pytest.approx(first.t_capture + 1 / 30, abs=1e-6)
    assert nxt.t_capture == pytest.approx(first.t_capture + 2 / 30, abs=1e-6)
    assert nxt.t_capture < now  # captured on schedule, handed over late


def test_a_file_that_does_not_loop_ends_the_camera(tmp_path, cameras):
    path = write_video(tmp_path / "clip.avi", frames=6)
    cam = cameras(source=str(path), realtime=False, loop=False)
    cam.connect()
    assert wait_until(lambda: cam.status().state == CameraState.ENDED)
    status = cam.status()
    assert status.delivered == 6
    assert "after 6 frames" in status.last_error and "loop = true" in status.last_error


def test_a_vanished_file_is_reported_and_picked_up_again_when_it_returns(tmp_path, cameras):
    path = write_video(tmp_path / "clip.avi", frames=4)
    cam = cameras(source=str(path), fps=60, loop=True)
    cam.connect()
    assert cam.wait_for_frame(timeout_s=3) is not None
    data = path.read_bytes()
    path.unlink()
    assert wait_until(lambda: cam.status().state == CameraState.RECONNECTING)
    status = cam.status()
    assert str(path) in status.last_error
    assert status.gaps[-1].is_open
    path.write_bytes(data)
    assert wait_until(lambda: cam.status().state == CameraState.STREAMING)
    assert not cam.status().gaps[-1].is_open


def test_a_missing_video_file_says_which_file_and_what_to_check(tmp_path, cameras):
    cam = cameras(source=str(tmp_path / "nope.mp4"))
    cam.connect(timeout_s=3)
    status = cam.status()
    assert status.state == CameraState.RECONNECTING
    assert "nope.mp4 does not exist" in status.last_error


def test_an_absent_device_index_fails_with_a_hint_and_never_raises(cameras):
    cam = cameras(source=63)
    cam.connect(timeout_s=5)
    status = cam.status()
    assert status.state == CameraState.RECONNECTING
    assert "camera index 63" in status.last_error and "cameras list" in status.last_error


class _MJPEGServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """An IP camera: multipart JPEG over HTTP at 30 fps, until told to stop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        self.halt = threading.Event()
        super().__init__(("127.0.0.1", port), _MJPEGHandler)
        self.thread = threading.Thread(target=self.serve_forever, name="mjpeg-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/stream.mjpg"

    def stop(self) -> None:
        self.halt.set()
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class _MJPEGHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :, 1] = 200  # green
        jpg = cv2.imencode(".jpg", img)[1].tobytes()
        try:
            while not self.server.halt.is_set():
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                time.sleep(1 / 30)
        except (BrokenPipeError, ConnectionResetError):
            pass


def test_a_network_camera_that_dies_mid_stream_is_reconnected_when_it_comes_back(cameras):
    server = _MJPEGServer()
    port = server.server_address[1]
    cam = cameras(source=server.url, timeout_ms=1000)
    try:
        cam.connect(timeout_s=5)
        frame = cam.wait_for_frame(timeout_s=5)
        assert frame is not None and frame.color[10, 10, 1] > 150  # green arrives as green
        assert cam.status().mode["backend"] == "FFMPEG"
        server.stop()
        assert wait_until(lambda: cam.status().state == CameraState.RECONNECTING)
        assert "stopped delivering frames" in cam.status().gaps[-1].reason  # why it went
        server = _MJPEGServer(port)
        assert wait_until(lambda: cam.status().state == CameraState.STREAMING, timeout=10)
        assert cam.status().reconnects >= 1
    finally:
        server.stop()


def test_profile_errors_name_the_problem_and_the_fix():
    def load(camera: dict) -> None:
        parse_profile({"name": "t", "control_rate_hz": 10, "robot": {"type": "null"},
                       "cameras": [{"type": "opencv", **camera}]}, config_class_for, source="p.toml")

    with pytest.raises(ConfigError, match="no depth stream.*realsense"):
        load({"depth": True})
    with pytest.raises(ConfigError, match="must be 4 characters"):
        load({"fourcc": "MJ"})
    with pytest.raises(ConfigError, match="unknown camera control 'shutter'"):
        load({"controls": {"shutter": 1.0}})
    with pytest.raises(ConfigError, match="backend"):
        load({"backend": "quicktime"})
    load({"source": "/dev/video2", "fourcc": "MJPG", "controls": {"exposure": 100}})


def test_opencv_kind_is_registered():
    assert CAMERAS.load("opencv") is OpenCVCamera


def test_sources_are_classified_as_devices_files_or_streams():
    assert classify_source(0).target == 0
    assert classify_source("2").kind == "device" and classify_source("2").target == 2
    assert classify_source("/dev/video4").kind == "device"
    assert classify_source("rtsp://cam.local/live").kind == "stream"
    file = classify_source("~/clip.mp4")
    assert file.kind == "file" and file.target == os.path.expanduser("~/clip.mp4")


def test_kernel_buffer_timestamps_are_used_only_when_on_the_monotonic_clock():
    now = 1000.0
    assert kernel_timestamp(999_980.0, now) == pytest.approx(999.98)
    assert kernel_timestamp(0.0, now) is None  # not a monotonic-clock stamp
    assert kernel_timestamp(1.7e12, now) is None  # wall clock, not monotonic
    assert fourcc_text(fourcc_code("MJPG")) == "MJPG"
    assert fourcc_text(0) == ""


# ----- V4L2 enumeration ------------------------------------------------------------------------
def test_v4l2_request_numbers_match_the_kernel_headers():
    assert v4l2.VIDIOC_QUERYCAP == 0x80685600
    assert v4l2.VIDIOC_ENUM_FMT == 0xC0405602
    assert v4l2.VIDIOC_ENUM_FRAMESIZES == 0xC02C564A
    assert v4l2.VIDIOC_ENUM_FRAMEINTERVALS == 0xC034564B


class FakeWebcam:
    """Answers V4L2 ioctls like a UVC webcam: MJPG 1280x720@30,15 + 640x480@30; YUYV
    640x480@30; a second node is metadata-only."""

    FORMATS = [(fourcc_code("MJPG"), {(1280, 720): [(1, 30), (1, 15)], (640, 480): [(1, 30)]}),
               (fourcc_code("YUYV"), {(640, 480): [(1, 30)]})]

    def __init__(self) -> None:
        self.fds: dict[int, str] = {}
        self.closed: list[int] = []

    def open(self, path: str) -> int:
        fd = len(self.fds) + 3
        self.fds[fd] = path
        return fd

    def close(self, fd: int) -> None:
        self.closed.append(fd)

    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes:
        meta = self.fds[fd].endswith("1")
        if request == v4l2.VIDIOC_QUERYCAP:
            caps = 0x00800000 if meta else v4l2.V4L2_CAP_VIDEO_CAPTURE
            return v4l2.CAPABILITY.pack(b"uvcvideo", b"HD Webcam", b"usb-0000:00:14.0-1", 1,
                                        caps | v4l2.V4L2_CAP_DEVICE_CAPS, caps)
        index = struct.unpack_from("=I", arg)[0]
        if request == v4l2.VIDIOC_ENUM_FMT:
            if index >= len(self.FORMATS):
                raise OSError(errno.EINVAL, "end")
            return v4l2.FMTDESC.pack(index, 1, 0, b"fmt", self.FORMATS[index][0], 0)
        if request == v4l2.VIDIOC_ENUM_FRAMESIZES:
            fourcc = struct.unpack_from("=I", arg, 4)[0]
            sizes = list(dict(self.FORMATS)[fourcc])
            if index >= len(sizes):
                raise OSError(errno.EINVAL, "end")
            return v4l2.FRMSIZEENUM.pack(index, fourcc, 1, *sizes[index], 0, 0, 0, 0)
        if request == v4l2.VIDIOC_ENUM_FRAMEINTERVALS:
            fourcc, w, h = struct.unpack_from("=III", arg, 4)
            rates = dict(self.FORMATS)[fourcc][(w, h)]
            if index >= len(rates):
                raise OSError(errno.EINVAL, "end")
            return v4l2.FRMIVALENUM.pack(index, fourcc, w, h, 1, *rates[index], 0, 0, 0, 0)
        raise OSError(errno.ENOTTY, "unknown ioctl")


def test_v4l2_walk_lists_capture_nodes_with_formats_sizes_and_rates():
    io = FakeWebcam()
    devices = v4l2.list_devices(io, ["/dev/video0", "/dev/video1"])
    assert len(devices) == 1  # the metadata node is not a camera
    cam = devices[0]
    assert (cam.index, cam.card, cam.driver) == (0, "HD Webcam", "uvcvideo")
    modes = [(m.pixel_format, m.width, m.height, m.fps) for m in cam.modes]
    assert modes == [("MJPG", 1280, 720, (30.0, 15.0)), ("MJPG", 640, 480, (30.0,)),
                     ("YUYV", 640, 480, (30.0,))]
    assert sorted(io.closed) == [3, 4]  # every node opened was closed


def test_v4l2_nodes_are_listed_in_index_order(tmp_path):
    sysfs = tmp_path / "video4linux"
    sysfs.mkdir()
    for name in ("video10", "video2", "video0", "v4l-subdev0"):
        (sysfs / name).mkdir()
    assert v4l2.capture_nodes(sysfs, Path("/dev")) == ["/dev/video0", "/dev/video2", "/dev/video10"]
    assert v4l2.capture_nodes(tmp_path / "missing", tmp_path / "nodev") == []


def test_detection_never_raises_and_reports_modes_for_vla_studio_devices(monkeypatch):
    real = v4l2.list_devices
    monkeypatch.setattr(v4l2, "list_devices", lambda io=None, nodes=None: real(
        FakeWebcam(), ["/dev/video0"]))
    found = OpenCVCamera.detect()
    assert [(d.kind, d.id) for d in found] == [("opencv", "0")]
    assert found[0].details["modes"] == "color MJPG 1280x720@30,15 640x480@30; color YUYV 640x480@30"
    monkeypatch.setattr(v4l2, "list_devices", lambda io=None, nodes=None: 1 / 0)
    assert OpenCVCamera.detect() == []
