"""OpenCV cameras: USB webcams (index or /dev/video path), video files and network streams.

```
  source = 0 | "/dev/video2"  -> V4L2 device: FOURCC (MJPG) negotiated first, then size and fps
  source = "demo.mp4"         -> video file played as a live camera at the profile's fps
  source = "rtsp://..."       -> FFmpeg stream with open/read timeouts
```
Every frame is stamped when ``grab()`` returns, before decoding, so decode time never hides in
the timestamp; for V4L2 devices the kernel's buffer timestamp (taken when the frame was
captured, on the same monotonic clock) is used instead when the driver provides it. Frames are
RGB at the profile's size: a device that cannot give that size is resized, and says so in
``status().warnings``.

Video files behave like a camera that keeps running: a reader that falls behind gets the frames
still in the device queue (``buffer_size``) with their capture times, and loses older ones
(counted as drops, exactly, from the frame position); looping files continue their frame
counter, and a file that vanishes is reported and picked up again when it comes back.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from vla_studio.core.config import option
from vla_studio.devices.base import DetectedDevice
from vla_studio.devices.cameras.base import Camera, CameraConfig, RawFrame, StreamEnded
from vla_studio.devices.cameras.discovery import CameraInfo

log = logging.getLogger(__name__)

# Profile names of camera controls -> OpenCV property names (looked up on cv2 when used).
CONTROLS = {
    "exposure": "CAP_PROP_EXPOSURE",
    "auto_exposure": "CAP_PROP_AUTO_EXPOSURE",
    "gain": "CAP_PROP_GAIN",
    "brightness": "CAP_PROP_BRIGHTNESS",
    "contrast": "CAP_PROP_CONTRAST",
    "saturation": "CAP_PROP_SATURATION",
    "sharpness": "CAP_PROP_SHARPNESS",
    "gamma": "CAP_PROP_GAMMA",
    "white_balance": "CAP_PROP_WB_TEMPERATURE",
    "auto_white_balance": "CAP_PROP_AUTO_WB",
    "focus": "CAP_PROP_FOCUS",
    "autofocus": "CAP_PROP_AUTOFOCUS",
    "zoom": "CAP_PROP_ZOOM",
    "backlight": "CAP_PROP_BACKLIGHT",
}
BACKENDS = ("auto", "v4l2", "ffmpeg", "gstreamer", "dshow", "msmf", "avfoundation")
MAX_SKIP_FRAMES = 300  # a file reader further behind than this restarts its schedule instead


@dataclass(frozen=True)
class OpenCVCameraConfig(CameraConfig):
    """An OpenCV capture source."""

    source: int | str = option(0, help="device index (0), device path (/dev/video0), video file, "
                                       "or stream URL (rtsp://, http://)")
    fourcc: str = option("", help='pixel format to ask a device for, e.g. "MJPG" (saves USB '
                                  'bandwidth at high resolutions) or "YUYV"; "" = driver default')
    loop: bool = option(True, help="video files: start again at the end (false: the camera ends)")
    realtime: bool = option(True, help="video files: play at the profile's fps and skip frames "
                                       "when behind, like a camera; false: every frame, as fast "
                                       "as they are read")
    backend: str = option("auto", choices=BACKENDS, help="OpenCV capture backend")
    buffer_size: int = option(4, min=0, max=32,
                              help="frames the device queues while the reader is late (more: "
                                   "fewer drops; 1: never an old frame; 0: driver default)")
    timeout_ms: int = option(5000, min=100, help="streams and files: open/read timeout")
    controls: dict[str, float] = option(default_factory=dict,
                                        help="device controls, e.g. {exposure = 156, gain = 0} "
                                             "(values as the backend expects them); names: "
                                             + ", ".join(CONTROLS))

    def __post_init__(self) -> None:
        if self.depth:
            raise ValueError("OpenCV cameras have no depth stream: remove 'depth = true', or use "
                             "type = \"realsense\" for a depth camera")
        if not self.color:
            raise ValueError("an OpenCV camera captures colour images; 'color' must be true")
        if self.fourcc and (len(self.fourcc) != 4 or not self.fourcc.isascii()):
            raise ValueError(f"fourcc {self.fourcc!r} must be 4 characters, e.g. \"MJPG\" or "
                             "\"YUYV\" (or \"\" for the driver's default)")
        unknown = sorted(set(self.controls) - set(CONTROLS))
        if unknown:
            raise ValueError(f"unknown camera control {unknown[0]!r}; known controls: "
                             f"{', '.join(CONTROLS)}")
        if isinstance(self.source, str) and not self.source.strip():
            raise ValueError("source is empty: give a device index, /dev/videoN, a video file "
                             "or a stream URL")


@dataclass(frozen=True)
class CaptureSource:
    """What ``source`` names, classified once.

    Attributes:
        kind: ``"device"`` (index or /dev path), ``"file"`` or ``"stream"``.
        target: what ``cv2.VideoCapture.open`` gets (an int index or a string).
    """

    kind: Literal["device", "file", "stream"]
    target: int | str
    description: str = field(default="")


def classify_source(source: int | str) -> CaptureSource:
    """Index, device node, stream URL or video file (``~`` is expanded for files)."""
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        index = int(source)
        return CaptureSource("device", index, f"camera index {index}")
    text = source.strip()
    if text.startswith("/dev/"):
        return CaptureSource("device", text, f"device {text}")
    if "://" in text:
        return CaptureSource("stream", text, f"stream {text}")
    path = str(Path(text).expanduser())
    return CaptureSource("file", path, f"video file {path}")


def kernel_timestamp(pos_msec: float, now: float) -> float | None:
    """The V4L2 buffer timestamp (``CAP_PROP_POS_MSEC``) as host monotonic seconds, or None.

    Linux UVC drivers stamp buffers on CLOCK_MONOTONIC, the clock of ``time.monotonic()``; the
    value is trusted only when it is in the recent past (other drivers use other clocks).
    """
    t = pos_msec / 1000.0
    return t if 0.0 <= now - t < 1.0 else None


def fourcc_code(text: str) -> int:
    return sum(ord(ch) << (8 * i) for i, ch in enumerate(text[:4]))


def fourcc_text(code: float) -> str:
    value = int(code)
    return "".join(chr((value >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ") if value > 0 else ""


class OpenCVCamera(Camera):
    """A camera read through OpenCV's VideoCapture (webcam, video file or network stream)."""

    config_class: ClassVar[type] = OpenCVCameraConfig
    config: OpenCVCameraConfig

    def __init__(self, config: OpenCVCameraConfig) -> None:
        super().__init__(config)
        self.source = classify_source(config.source)
        self._cap: Any = None
        self._next_t = 0.0
        self._position = 0  # file frame number of the next grab, counting loops
        self._loop_offset = 0  # frames of earlier passes through a looping file
        self._loop_time = 0.0  # seconds of earlier passes (for t_device)
        self._file_frames = 0
        self._resize_from: tuple[int, int] | None = None

    def requested_mode(self) -> dict:
        mode = super().requested_mode()
        if self.config.fourcc:
            mode["fourcc"] = self.config.fourcc
        return mode

    # ----- discovery ------------------------------------------------------------------------
    @classmethod
    def enumerate(cls) -> list[CameraInfo]:
        """Video capture devices with their modes (V4L2 on Linux; index probing elsewhere)."""
        if sys.platform.startswith("linux"):
            from vla_studio.devices.cameras import v4l2

            return [CameraInfo("opencv", str(d.index), d.card, d.path, d.modes,
                               {"driver": d.driver, "bus": d.bus_info})
                    for d in v4l2.list_devices()]
        return _probe_indices(range(4))

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        try:
            return [info.to_detected() for info in cls.enumerate()]
        except Exception:  # detection never raises (vla-studio devices must always list)
            log.debug("OpenCV camera detection failed", exc_info=True)
            return []

    # ----- capture thread -------------------------------------------------------------------
    def _open(self) -> None:
        import cv2

        src, c = self.source, self.config
        if src.kind == "file" and not os.path.isfile(str(src.target)):
            raise FileNotFoundError(f"video file {src.target} does not exist; check 'source' "
                                    "(relative paths are relative to the working directory)")
        cap = cv2.VideoCapture()
        api = _backend_id(cv2, c.backend, src.kind)
        params: list[int] = []
        if src.kind != "device" and api in (cv2.CAP_FFMPEG, cv2.CAP_ANY):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, c.timeout_ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, c.timeout_ms]
        ok = cap.open(src.target, api, params) if params else cap.open(src.target, api)
        if not ok or not cap.isOpened():
            cap.release()
            raise OSError(self._open_failure_message())
        self._cap = cap
        if src.kind == "device":
            self._configure_device(cv2)
        else:
            if c.controls:
                self._warn(f"controls ({', '.join(c.controls)}) only apply to devices; ignored "
                           f"for a {src.kind}")
            self._file_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        actual_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fourcc = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        self._resize_from = None
        if (width, height) != (c.width, c.height) and width > 0 and height > 0:
            self._resize_from = (width, height)
            self._warn(f"{src.description} gives {width}x{height}, not the requested "
                       f"{c.width}x{c.height}: frames are resized (set width/height to "
                       f"{width}x{height} to avoid it)")
        if src.kind == "device" and c.fourcc and fourcc and fourcc != c.fourcc:
            self._warn(f"the device did not accept FOURCC {c.fourcc} at {width}x{height}; it "
                       f"streams {fourcc}")
        delivered_fps = c.fps if src.kind == "file" and c.realtime else actual_fps
        mode = {"width": width, "height": height, "fps": delivered_fps, "fourcc": fourcc,
                "backend": cap.getBackendName(), "source": src.description}
        if src.kind == "file":
            mode.update(file_fps=actual_fps, file_frames=self._file_frames)
        if self._resize_from:
            mode["resized_to"] = f"{c.width}x{c.height}"
        self._set_mode(**mode)
        if src.kind == "device" and actual_fps and abs(actual_fps - c.fps) > 0.5:
            self._warn(f"the device runs at {actual_fps:g} fps, not the requested {c.fps:g}")
        self._next_t = time.monotonic()

    def _configure_device(self, cv2: Any) -> None:
        cap, c = self._cap, self.config
        # FOURCC first: V4L2 drivers pick the sizes and rates a pixel format allows.
        if c.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, fourcc_code(c.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
        cap.set(cv2.CAP_PROP_FPS, c.fps)
        if c.buffer_size:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, c.buffer_size)
        for name, value in c.controls.items():
            prop = getattr(cv2, CONTROLS[name])
            if not cap.set(prop, float(value)):
                self._warn(f"control {name} = {value:g} is not supported by this device or "
                           f"backend ({cap.getBackendName()})")

    def _open_failure_message(self) -> str:
        src = self.source
        if src.kind == "device":
            return (f"cannot open {src.description}: no such camera, or it is in use by another "
                    "program. Run `vla-studio cameras list` to see the attached cameras")
        if src.kind == "stream":
            return (f"cannot open {src.description}: no answer within "
                    f"{self.config.timeout_ms} ms or the URL is wrong")
        return (f"cannot open {src.description}: not a video OpenCV can decode "
                "(try an .mp4 or .avi file)")

    def _read(self, timeout_s: float) -> RawFrame | None:
        if self.source.kind == "file":
            return self._read_file(timeout_s)
        cap = self._cap
        if not cap.grab():
            raise OSError(f"{self.source.description} stopped delivering frames (unplugged?)")
        now = time.monotonic()
        t_capture, t_device = now, None
        if self.source.kind == "device":
            import cv2

            t_kernel = kernel_timestamp(cap.get(cv2.CAP_PROP_POS_MSEC), now)
            if t_kernel is not None:
                t_capture = t_device = t_kernel
        ok, bgr = cap.retrieve()
        if not ok or bgr is None:
            raise OSError(f"{self.source.description}: a frame could not be decoded")
        return RawFrame(color=self._to_rgb(bgr), t_device=t_device, t_capture=t_capture)

    def _read_file(self, timeout_s: float) -> RawFrame | None:
        import cv2

        c, cap = self.config, self._cap
        skip = 0
        due = self._next_t
        if c.realtime:
            if not self._wait_until_due(due, timeout_s):
                return None
            # Like a camera, the file keeps running while nobody reads it: a late reader gets
            # the oldest frame still in the device queue (buffer_size frames, captured on
            # time); older frames are lost, and counted as drops through the frame position.
            behind = int((time.monotonic() - due) / self.period_s)
            queue = max(1, c.buffer_size)
            if behind >= queue:
                skip = behind - queue + 1
                if skip > MAX_SKIP_FRAMES:  # stalled for long: restart the clock from now
                    due, skip = time.monotonic(), 0
        for _ in range(skip):
            if not self._grab_file():
                break
        if not self._grab_file():
            return None  # the file was reopened for the next pass; read again
        due += skip * self.period_s
        t_capture = due if c.realtime else time.monotonic()
        index = self._position - 1
        t_device = self._loop_time + cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        ok, bgr = cap.retrieve()
        if not ok or bgr is None:
            raise OSError(f"{self.source.description}: frame {index} could not be decoded")
        self._next_t = due + self.period_s
        return RawFrame(color=self._to_rgb(bgr), t_device=t_device, device_index=index,
                        t_capture=t_capture)

    def _grab_file(self) -> bool:
        """Advance one frame; at the end, loop (if the file is still there) or end."""
        if self._cap.grab():
            self._position += 1
            return True
        passed = self._position - self._loop_offset
        if passed == 0:
            raise OSError(f"{self.source.description} has no readable frames")
        if not self.config.loop:
            raise StreamEnded(f"end of {self.source.description} after {passed} frames "
                              "(set loop = true to repeat it)")
        if not os.path.isfile(str(self.source.target)):
            raise FileNotFoundError(f"{self.source.description} is gone (deleted or its disk "
                                    "was unmounted); waiting for it to come back")
        import cv2

        self._loop_time += passed / (float(self._mode.get("file_fps") or 0) or self.config.fps)
        self._loop_offset = self._position
        # Seeking back is much faster than reopening (no container probe), so the frame after
        # the loop is not late; reopen only if the container cannot seek.
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            self._cap.release()
            self._cap = None
            schedule = self._next_t
            self._open()
            self._next_t = schedule  # the camera's clock runs on across the loop
        return False

    def _to_rgb(self, bgr: np.ndarray) -> np.ndarray:
        import cv2

        c = self.config
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        if self._resize_from is not None or bgr.shape[:2] != (c.height, c.width):
            bgr = cv2.resize(bgr, (c.width, c.height), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False  # shared with the loop, the recorder and the GUI
        return rgb

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def _backend_id(cv2: Any, name: str, kind: str) -> int:
    if name == "auto":
        # Files and URLs always go through FFmpeg (its timeouts work); devices use the
        # platform's native API.
        if kind != "device":
            return cv2.CAP_FFMPEG
        return cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
    return getattr(cv2, f"CAP_{name.upper()}")


def _probe_indices(indices: range) -> list[CameraInfo]:
    """Open indices one by one (platforms without V4L2); reports the default mode only."""
    import cv2

    from vla_studio.devices.cameras.discovery import CameraMode

    found = []
    for index in indices:
        cap = cv2.VideoCapture(index)
        try:
            if not cap.isOpened():
                continue
            mode = CameraMode("color", fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)),
                              int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                              int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                              (float(cap.get(cv2.CAP_PROP_FPS) or 0.0),))
            found.append(CameraInfo("opencv", str(index), f"camera {index}",
                                    modes=(mode,), details={"backend": cap.getBackendName()}))
        finally:
            cap.release()
    return found
