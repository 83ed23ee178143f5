"""A virtual RealSense camera built with librealsense's own ``software_device`` (test support).

Frames pushed through it are real librealsense frames: the pipeline, the syncer, alignment and
the recorder treat them exactly like a USB camera's. A pusher thread plays the camera's clock.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pyrealsense2 as rs

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
