"""RealSense cameras through librealsense itself: software devices pushed by the tests and
recordings made with rs.recorder, played back through a normal pipeline."""

from __future__ import annotations

import gc
import threading
import time
from types import SimpleNamespace

import numpy as np
import pyrealsense2 as rs
import pytest

from tests.waiting import wait_until
from vla_studio.core.config import ConfigError
from vla_studio.core.profile import parse_profile
from vla_studio.devices.cameras.base import CameraState
from vla_studio.devices.cameras.realsense import (RealSenseCamera, RealSenseCameraConfig,
                                                  host_capture_time)
from vla_studio.devices.registry import CAMERAS, config_class_for

# ----- a virtual RealSense camera built with librealsense's own software_device ----------------
# Frames pushed through it are real librealsense frames: the pipeline, the syncer, alignment
# and the recorder treat them exactly like a USB camera's. A pusher thread plays its clock.
DEPTH_UNITS = 0.001


class SoftwareRealSense:
    """A colour (rgb8) + depth (z16) software device with intrinsics, options and a clock.

    Args:
        serial: the serial number librealsense reports.
        width, height, fps: both streams' mode.
        exposure_option: give the colour sensor a writable exposure option (white balance is
            deliberately absent, to test unsupported options).
    """

    def __init__(self, serial: str, width: int = 64, height: int = 48, fps: int = 30,
                 exposure_option: bool = True, depth_size: tuple[int, int] | None = None) -> None:
        self.serial, self.width, self.height, self.fps = serial, width, height, fps
        self.depth_width, self.depth_height = depth_size or (width, height)
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, "Software RealSense")
        self.device.register_info(rs.camera_info.firmware_version, "0.0.0.1")
        self.depth_sensor = self.device.add_sensor("Stereo Module")
        self.color_sensor = self.device.add_sensor("RGB Camera")
        self.intrinsics = self._intrinsics(width, height)
        self.depth_profile = self.depth_sensor.add_video_stream(self._stream(
            rs.stream.depth, 0, rs.format.z16, 2, self.depth_width, self.depth_height), True)
        self.color_profile = self.color_sensor.add_video_stream(
            self._stream(rs.stream.color, 1, rs.format.rgb8, 3, width, height), True)
        self.depth_sensor.add_read_only_option(rs.option.depth_units, DEPTH_UNITS)
        if exposure_option:
            # librealsense 2.59's software options swap step and default: this is
            # min 1, max 10000, step 1, default 156 as get_option_range reports it.
            self.color_sensor.add_option(rs.option.exposure, rs.option_range(1, 10000, 156, 1), True)
        ext = rs.extrinsics()
        ext.rotation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
        ext.translation = [0.0, 0.0, 0.0]
        self.depth_profile.register_extrinsics_to(self.color_profile, ext)
        self.device.create_matcher(rs.matchers.default)
        self.pushed = 0
        self.skip_numbers: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0_ms = 1_000.0

    @staticmethod
    def _intrinsics(width: int, height: int) -> rs.intrinsics:
        """The same lens at any resolution: focal length and centre scale with the size."""
        intr = rs.intrinsics()
        intr.width, intr.height = width, height
        intr.fx = intr.fy = 0.8 * width
        intr.ppx, intr.ppy = width / 2, height / 2
        intr.model = rs.distortion.brown_conrady
        intr.coeffs = [0.0] * 5
        return intr

    def _stream(self, kind, uid: int, fmt, bpp: int, width: int, height: int) -> rs.video_stream:
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = kind, 0, uid
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = width, height, self.fps, bpp, fmt
        vs.intrinsics = self._intrinsics(width, height)
        return vs

    def push(self, k: int) -> None:
        """Push frame number ``k`` on both sensors (colour value k % 256, depth 1000 + k)."""
        ts = self.t0_ms + k * 1000.0 / self.fps
        color = np.full((self.height, self.width, 3), k % 256, np.uint8)
        depth = np.full((self.depth_height, self.depth_width), 1000 + k, np.uint16)
        for sensor, profile, pixels, bpp in ((self.color_sensor, self.color_profile, color, 3),
                                             (self.depth_sensor, self.depth_profile, depth, 2)):
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = pixels, pixels.shape[1] * bpp, bpp
            f.timestamp, f.domain, f.frame_number = ts, rs.timestamp_domain.hardware_clock, k
            f.profile = profile.as_video_stream_profile()
            if bpp == 2:
                f.depth_units = DEPTH_UNITS
            sensor.on_video_frame(f)
        self.pushed += 1

    def start(self) -> "SoftwareRealSense":
        """Push frames at ``fps`` from a thread until :meth:`stop` (numbers in skip_numbers are
        never pushed: the device 'drops' them)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"rs-push-{self.serial}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        k, period = 0, 1.0 / self.fps
        next_t = time.monotonic()
        while not self._stop.is_set():
            if k not in self.skip_numbers:
                self.push(k)
            k += 1
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def record_clip(path: str, frames: int = 30, width: int = 64, height: int = 48, fps: int = 30,
                serial: str = "REC0001") -> None:
    """Record ``frames`` frames of a software camera to ``path`` with ``rs.recorder``."""
    cam = SoftwareRealSense(serial, width, height, fps)
    recorder = rs.recorder(path, cam.device)
    sensors = recorder.query_sensors()
    received: list[int] = []
    for sensor in sensors:
        sensor.open(sensor.get_stream_profiles()[0])
        sensor.start(lambda f: received.append(f.get_frame_number()))
    for k in range(frames):
        cam.push(k)
        time.sleep(1.0 / fps)
    deadline = time.monotonic() + 2.0
    while len(received) < 2 * frames and time.monotonic() < deadline:
        time.sleep(0.01)
    for sensor in sensors:
        sensor.stop()
        sensor.close()
    del sensors, recorder  # the recorder finishes the file when it is destroyed


# ----- tests ---------------------------------------------------------------------------------
@pytest.fixture
def rig():
    """Builds software cameras (started) and RealSenseCameras; stops everything afterwards."""
    made: dict[str, list] = {"devices": [], "cameras": []}

    def device(serial: str, **kw) -> SoftwareRealSense:
        dev = SoftwareRealSense(serial, **kw)
        made["devices"].append(dev)
        return dev

    def camera(devices: list[SoftwareRealSense] | None = None, **kw) -> RealSenseCamera:
        kw.setdefault("name", "rs")
        kw.setdefault("width", 64)
        kw.setdefault("height", 48)
        kw.setdefault("max_backoff_s", 0.1)
        source = None if devices is None else (lambda: [d.device for d in devices])
        cam = RealSenseCamera(RealSenseCameraConfig(**kw), device_source=source)
        made["cameras"].append(cam)
        return cam

    yield SimpleNamespace(device=device, camera=camera)
    for cam in made["cameras"]:
        cam.disconnect()
    for dev in made["devices"]:
        dev.stop()


def test_serial_selects_the_camera_among_those_connected(rig):
    a, b = rig.device("SW-A"), rig.device("SW-B").start()
    cam = rig.camera([a, b], serial="SW-B")
    cam.connect()
    assert cam.wait_for_frame(timeout_s=3) is not None
    status = cam.status()
    assert status.mode["serial"] == "SW-B" and status.mode["device"] == "Software RealSense"
    assert status.state == CameraState.STREAMING


def test_an_unknown_serial_names_the_cameras_that_are_connected(rig):
    cam = rig.camera([rig.device("SW-A"), rig.device("SW-B")], serial="SW-X")
    cam.connect(timeout_s=3)
    status = cam.status()
    assert status.state == CameraState.RECONNECTING
    assert "RealSense SW-X is not connected (connected: SW-A, SW-B)" in status.last_error


def test_several_cameras_without_a_serial_ask_for_one(rig):
    cam = rig.camera([rig.device("SW-A"), rig.device("SW-B")])
    cam.connect(timeout_s=3)
    assert "set 'serial'" in cam.status().last_error


def test_colour_and_depth_carry_hardware_timestamps_and_frame_numbers(rig):
    dev = rig.device("SW-1").start()
    cam = rig.camera([dev], depth=True)
    cam.connect()
    frame = cam.wait_for_frame(after_index=3, timeout_s=3)
    assert frame.color.shape == (48, 64, 3) and frame.depth.shape == (48, 64)
    k = int(frame.depth[0, 0]) - 1000  # the device frame number this frame came from
    assert frame.color[0, 0, 0] == k % 256  # colour and depth come from the same frame set
    assert frame.t_device == pytest.approx(dev.t0_ms / 1000 + k / dev.fps, abs=1e-6)
    assert not frame.color.flags.writeable and not frame.depth.flags.writeable
    assert cam.status().mode["timestamp_domain"] == "hardware_clock"


def test_frames_the_device_never_delivered_are_counted_from_frame_numbers(rig):
    dev = rig.device("SW-1")
    dev.skip_numbers = {8, 9, 10}
    dev.start()
    cam = rig.camera([dev])
    cam.connect()
    assert wait_until(lambda: (cam.latest() is not None and cam.latest().color[0, 0, 0] > 12))
    assert cam.status().dropped >= 3


def test_depth_is_aligned_to_colour_only_on_request(rig):
    dev = rig.device("SW-1", depth_size=(32, 24)).start()
    raw = rig.camera([dev], name="raw", depth=True, depth_width=32, depth_height=24)
    raw.connect()
    frame = raw.wait_for_frame(after_index=1, timeout_s=3)
    assert frame.depth.shape == (24, 32)
    assert raw.features["depth"].shape == (24, 32)
    assert raw.depth_intrinsics.width == 32
    raw.disconnect()

    aligned = rig.camera([dev], name="aligned", depth=True, depth_width=32, depth_height=24,
                         align_depth=True)
    aligned.connect()
    frame = aligned.wait_for_frame(after_index=1, timeout_s=3)
    assert frame.depth.shape == (48, 64)  # depth resampled onto the colour image
    assert aligned.features["depth"].shape == (48, 64)
    centre = int(frame.depth[24, 32])
    assert abs(centre - (1000 + int(frame.color[0, 0, 0]))) <= 2  # same scene, same frame
    assert aligned.depth_intrinsics is None  # depth now shares the colour intrinsics
    assert aligned.status().mode["aligned"] is True


def test_intrinsics_and_depth_scale_come_from_the_device(rig):
    dev = rig.device("SW-1").start()
    cam = rig.camera([dev], depth=True)
    cam.connect()
    assert cam.wait_for_frame(timeout_s=3) is not None
    intr = cam.intrinsics
    assert (intr.width, intr.height) == (64, 48)
    assert intr.fx == pytest.approx(0.8 * 64) and intr.cx == pytest.approx(32)
    assert intr.distortion_model == "brown_conrady" and len(intr.coeffs) == 5
    assert intr.depth_scale == pytest.approx(DEPTH_UNITS)
    assert cam.status().mode["depth_scale"] == pytest.approx(DEPTH_UNITS)


def test_options_are_set_before_streaming_and_unsupported_ones_are_reported(rig):
    dev = rig.device("SW-1").start()
    cam = rig.camera([dev], exposure=200.0, white_balance=4500.0,
                     depth_options={"laser_power": 150.0, "no_such_option": 1.0})
    cam.connect()
    assert cam.wait_for_frame(timeout_s=3) is not None
    assert dev.color_sensor.get_option(rs.option.exposure) == 200.0
    warnings = cam.status().warnings
    assert any("white_balance is not supported by the RGB Camera sensor" in w for w in warnings)
    assert any("laser_power is not supported by the Stereo Module sensor" in w for w in warnings)
    assert any("'no_such_option' is not a librealsense option" in w for w in warnings)
    # Turning auto exposure off is implied by a manual exposure: not a warning on this device.
    assert not any("enable_auto_exposure" in w for w in warnings)


def test_an_option_outside_the_device_range_is_refused_with_the_range(rig):
    dev = rig.device("SW-1").start()
    cam = rig.camera([dev], exposure=50_000.0)
    cam.connect()
    assert cam.wait_for_frame(timeout_s=3) is not None
    assert any("exposure = 50000 is outside 1..10000" in w for w in cam.status().warnings)


def test_an_unplugged_camera_is_reopened_when_it_comes_back(rig):
    dev = rig.device("SW-1").start()
    attached = [dev]
    cam = rig.camera(attached, serial="SW-1", reconnect_after_ms=300.0)
    cam.connect()
    assert cam.wait_for_frame(timeout_s=3) is not None
    dev.stop()
    attached.clear()  # unplugged: frames stop and the device is no longer listed
    assert wait_until(lambda: "not connected" in cam.status().last_error)
    assert cam.status().state == CameraState.RECONNECTING
    attached.append(dev)
    dev.start()
    assert wait_until(lambda: cam.status().state == CameraState.STREAMING)
    assert cam.status().reconnects >= 1


def test_a_recording_plays_back_through_the_pipeline_and_ends(rig, tmp_path):
    path = tmp_path / "clip.db3"
    record_clip(str(path), frames=20)
    gc.collect()
    cam = rig.camera(None, playback=str(path), depth=True, loop=False)
    cam.connect()
    first = cam.wait_for_frame(timeout_s=5)
    assert first is not None and first.depth is not None
    assert wait_until(lambda: cam.status().state == CameraState.ENDED)
    status = cam.status()
    assert 15 <= status.delivered <= 20
    assert status.mode["serial"] == "REC0001" and status.mode["playback"] == str(path)
    assert status.mode["depth_scale"] == pytest.approx(DEPTH_UNITS)
    last = cam.latest()
    k = int(last.depth[0, 0]) - 1000
    assert last.t_device == pytest.approx(1.0 + k / 30, abs=1e-3)  # the recorded device clock
    assert "loop = true" in status.last_error


def test_playback_that_goes_away_is_reopened_when_the_recording_is_back(rig, tmp_path):
    path = tmp_path / "clip.db3"
    record_clip(str(path), frames=10)
    gc.collect()
    cam = rig.camera(None, playback=str(path), loop=True, reconnect_after_ms=300.0)
    cam.connect()
    assert cam.wait_for_frame(after_index=12, timeout_s=5) is not None  # it loops
    moved = tmp_path / "elsewhere.db3"
    path.rename(moved)
    cam._playback.pause()  # the playback device stops delivering
    assert wait_until(lambda: "does not exist" in cam.status().last_error)
    assert cam.status().state == CameraState.RECONNECTING
    moved.rename(path)
    assert wait_until(lambda: cam.status().state == CameraState.STREAMING)


def test_a_recording_without_the_requested_streams_says_what_it_has(rig, tmp_path):
    path = tmp_path / "clip.db3"
    record_clip(str(path), frames=5)
    gc.collect()
    cam = rig.camera(None, playback=str(path), width=640, height=480)
    cam.connect(timeout_s=5)
    error = cam.status().last_error
    assert "cannot stream color rgb8 640x480@30" in error
    assert "color rgb8 64x48@30" in error


def test_enumerate_lists_serials_and_stream_modes(rig):
    info = RealSenseCamera.enumerate([rig.device("SW-7").device])[0]
    assert (info.kind, info.id, info.name) == ("realsense", "SW-7", "Software RealSense")
    assert info.details["firmware_version"] == "0.0.0.1"
    assert info.modes_summary() == "color rgb8 64x48@30; depth z16 64x48@30"
    assert RealSenseCamera.detect() == []  # no USB cameras on this machine; never raises


def test_profile_errors_name_the_problem_and_the_fix():
    def load(camera: dict) -> None:
        parse_profile({"name": "t", "control_rate_hz": 10, "robot": {"type": "null"},
                       "cameras": [{"type": "realsense", **camera}]}, config_class_for,
                      source="p.toml")

    with pytest.raises(ConfigError, match="align_depth aligns depth to colour"):
        load({"align_depth": True})
    with pytest.raises(ConfigError, match="auto_exposure = false"):
        load({"exposure": 100, "auto_exposure": True})
    with pytest.raises(ConfigError, match="'color' or 'depth'"):
        load({"color": False})
    load({"serial": "123", "depth": True, "align_depth": True, "exposure": 100,
          "depth_options": {"laser_power": 150}})
    assert CAMERAS.load("realsense") is RealSenseCamera


def test_host_capture_time_maps_host_clock_timestamps_onto_the_monotonic_clock():
    class FakeFrame:
        def __init__(self, domain, ts_ms, arrival_ms=None):
            self.domain, self.ts, self.arrival = domain, ts_ms, arrival_ms

        def get_frame_timestamp_domain(self):
            return self.domain

        def get_timestamp(self):
            return self.ts

        def supports_frame_metadata(self, key):
            return self.arrival is not None

        def get_frame_metadata(self, key):
            return self.arrival

    now, wall = 500.0, 1_700_000_000.0
    sensor_time = FakeFrame(rs.timestamp_domain.global_time, wall * 1000 - 20)
    assert host_capture_time(rs, sensor_time, now, wall) == pytest.approx(499.98)
    arrival = FakeFrame(rs.timestamp_domain.hardware_clock, 123456.0, wall * 1000 - 5)
    assert host_capture_time(rs, arrival, now, wall) == pytest.approx(499.995)
    unknown = FakeFrame(rs.timestamp_domain.hardware_clock, 123456.0)
    assert host_capture_time(rs, unknown, now, wall) is None
    future = FakeFrame(rs.timestamp_domain.global_time, wall * 1000 + 500)
    assert host_capture_time(rs, future, now, wall) is None
