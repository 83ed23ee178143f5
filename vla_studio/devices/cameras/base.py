"""Camera base: one owned capture thread per camera, honest timestamps, never-blocking access.

```
  capture thread (camera-<name>)                         consumers (any thread)
  _open() -> loop: _read(timeout) -> RawFrame  --put-->  LatestSlot[Frame]  --latest()-->  loop
     ^            | raises / stale too long              (newest only; readers never wait)   GUI
     +-- backoff -+-> _close(), state RECONNECTING                                          bench
```
Backends implement ``_open``, ``_read`` and ``_close``, all called on the capture thread only (an
EGL renderer or a librealsense pipeline stays in the thread that made it). The base stamps every
frame with host monotonic time, counts delivered, dropped and late frames, detects staleness, and
reconnects with exponential backoff. A failing camera never raises into the caller: its state and
last error are in :meth:`Camera.status`.
"""

from __future__ import annotations

import abc
import collections
import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from vla_studio.core.config import option
from vla_studio.core.events import LatestSlot
from vla_studio.core.types import Feature, Frame
from vla_studio.devices.base import Device, DeviceConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraConfig(DeviceConfig):
    """Fields every camera accepts in a station profile's ``[[cameras]]`` table."""

    width: int = option(640, min=1, help="requested image width, pixels")
    height: int = option(480, min=1, help="requested image height, pixels")
    fps: float = option(30.0, min=0.1, max=1000.0, help="requested frame rate")
    color: bool = option(True, help="capture colour images")
    depth: bool = option(False, help="capture depth images (uint16)")
    stale_after_ms: float = option(0.0, min=0.0, help="no frame for this long = stale; 0 = auto")
    reconnect_after_ms: float = option(2000.0, min=1.0, help="stale this long = reopen the device")
    reconnect: bool = option(True, help="reopen a failed device with backoff")
    max_backoff_s: float = option(5.0, min=0.01, help="longest wait between reopen attempts")


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the colour stream (depth aligned to it, or its own when not)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "none"
    coeffs: tuple[float, ...] = ()
    depth_scale: float | None = None  # metres per depth unit

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class RawFrame:
    """What a backend's ``_read`` returns."""

    color: np.ndarray | None = None
    depth: np.ndarray | None = None
    t_device: float | None = None  # seconds, device clock
    device_index: int | None = None  # device frame counter, for exact drop counts
    t_capture: float | None = None  # host monotonic arrival time if the backend measured it


class CameraState(str, enum.Enum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALE = "stale"
    RECONNECTING = "reconnecting"


@dataclass(frozen=True)
class CameraStatus:
    """A consistent snapshot of a camera's health, for panes, recording and benchmarks."""

    name: str
    state: CameraState
    delivered: int
    dropped: int
    late: int
    reconnects: int
    fps: float
    last_frame_age_s: float | None
    last_error: str
    mode: dict = field(default_factory=dict)


class Camera(Device):
    """A camera with a capture thread. See the module docstring for the threading contract."""

    config_class: ClassVar[type[DeviceConfig]] = CameraConfig
    config: CameraConfig

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened_once = threading.Event()
        self._lock = threading.Lock()
        self._state = CameraState.STOPPED
        self._last_error = ""
        self._delivered = self._dropped = self._late = self._reconnects = 0
        self._arrivals: collections.deque[float] = collections.deque(maxlen=61)
        self._last_device_index: int | None = None
        self._mode: dict = {}
        self._intrinsics: CameraIntrinsics | None = None

    # ----- backend API (capture thread only) -------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None:
        """Open the device. Raise an exception whose message says what is wrong and how to fix."""

    @abc.abstractmethod
    def _read(self, timeout_s: float) -> RawFrame | None:
        """Block until the next frame (None on timeout). Raise when the device is gone."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the device. Must not raise."""

    def _set_mode(self, **mode: object) -> None:
        """Backends report the negotiated mode (actual width, height, fps, fourcc, ...)."""
        with self._lock:
            self._mode = dict(mode)

    def _set_intrinsics(self, intrinsics: CameraIntrinsics | None) -> None:
        self._intrinsics = intrinsics

    # ----- public API ------------------------------------------------------------------------
    @property
    def features(self) -> dict[str, Feature]:
        """Image features, known before connecting."""
        c, feats = self.config, {}
        if c.color:
            feats["color"] = Feature("uint8", (c.height, c.width, 3))
        if c.depth:
            feats["depth"] = Feature("uint16", (c.height, c.width), unit="depth units")
        return feats

    @property
    def intrinsics(self) -> CameraIntrinsics | None:
        return self._intrinsics

    @property
    def period_s(self) -> float:
        return 1.0 / self.config.fps

    @property
    def stale_after_s(self) -> float:
        ms = self.config.stale_after_ms
        return ms / 1000.0 if ms > 0 else max(0.25, 5.0 * self.period_s)

    @property
    def is_connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def connect(self, timeout_s: float = 5.0) -> None:
        """Start the capture thread and wait (up to ``timeout_s``) for the first open attempt.

        Never raises for a missing or failing device: see :meth:`status`. A camera that is not
        there yet keeps being retried (with backoff) while ``reconnect`` is on.
        """
        if self.is_connected:
            return
        self._stop.clear()
        self._opened_once.clear()
        self._set_state(CameraState.CONNECTING)
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        self._opened_once.wait(timeout_s)

    def disconnect(self) -> None:
        """Stop and join the capture thread; the device is closed on that thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10.0)
            if thread.is_alive():
                log.error("camera %s: capture thread did not stop within 10 s", self.name)
        self._set_state(CameraState.STOPPED)

    def latest(self) -> Frame | None:
        """The newest frame, or None before the first one. Never blocks."""
        return self._slot.get()

    def wait_for_frame(self, after_index: int = -1, timeout_s: float = 1.0) -> Frame | None:
        """Block until a frame with index > ``after_index`` arrives (for previews and tests)."""
        deadline = time.monotonic() + timeout_s
        frame, seq = self._slot.get_with_seq()
        while frame is None or frame.index <= after_index:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            frame, seq = self._slot.wait_newer(seq, remaining)
        return frame

    def status(self) -> CameraStatus:
        now = time.monotonic()
        with self._lock:
            arrivals = list(self._arrivals)
            state = self._state
            age = now - arrivals[-1] if arrivals else None
            if state == CameraState.STREAMING and age is not None and age > self.stale_after_s:
                state = CameraState.STALE
            fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 2 and arrivals[-1] > arrivals[0] else 0.0
            return CameraStatus(self.name, state, self._delivered, self._dropped, self._late,
                                self._reconnects, fps, age, self._last_error, dict(self._mode))

    # ----- capture thread --------------------------------------------------------------------
    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._last_error = error

    def _run(self) -> None:
        backoff = 0.25
        opened = False
        last_frame_t = time.monotonic()
        try:
            while not self._stop.is_set():
                if not opened:
                    try:
                        self._open()
                    except Exception as exc:  # any backend failure is reported, never raised
                        self._set_state(CameraState.RECONNECTING, f"{exc}")
                        log.warning("camera %s: cannot open: %s", self.name, exc)
                        self._opened_once.set()
                        if not self.config.reconnect:
                            self._set_state(CameraState.STOPPED)
                            return
                        self._stop.wait(backoff)
                        backoff = min(backoff * 2.0, self.config.max_backoff_s)
                        continue
                    opened, last_frame_t = True, time.monotonic()
                    self._last_device_index = None
                    self._set_state(CameraState.STREAMING, "")
                    self._opened_once.set()
                try:
                    raw = self._read(min(0.2, self.stale_after_s))
                except Exception as exc:
                    log.warning("camera %s: read failed: %s", self.name, exc)
                    opened = self._reopen_later(f"read failed: {exc}")
                    continue
                now = time.monotonic()
                if raw is None:
                    if now - last_frame_t > self.config.reconnect_after_ms / 1000.0:
                        opened = self._reopen_later(
                            f"no frame for {now - last_frame_t:.1f} s")
                    continue
                last_frame_t = now
                backoff = 0.25
                self._deliver(raw, now)
        finally:
            if opened:
                self._safe_close()

    def _reopen_later(self, why: str) -> bool:
        self._safe_close()
        with self._lock:
            self._reconnects += 1
        self._set_state(CameraState.RECONNECTING, why)
        if not self.config.reconnect:
            self._stop.set()
        self._stop.wait(0.25)
        return False

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception:
            log.exception("camera %s: close failed", self.name)

    def _deliver(self, raw: RawFrame, now: float) -> None:
        t_capture = raw.t_capture if raw.t_capture is not None else now
        period = self.period_s
        with self._lock:
            prev = self._arrivals[-1] if self._arrivals else None
            if raw.device_index is not None:
                if self._last_device_index is not None:
                    self._dropped += max(0, raw.device_index - self._last_device_index - 1)
                self._last_device_index = raw.device_index
            elif prev is not None:
                gaps = int(round((t_capture - prev) / period)) - 1
                if gaps > 0 and t_capture - prev > 1.5 * period:
                    self._dropped += gaps
            if prev is not None and t_capture - prev > 1.5 * period:
                self._late += 1
            index = self._delivered
            self._delivered += 1
            self._arrivals.append(t_capture)
            if self._state != CameraState.STREAMING:
                self._state = CameraState.STREAMING
        self._slot.put(Frame(self.name, index, t_capture, raw.color, raw.depth, raw.t_device))
