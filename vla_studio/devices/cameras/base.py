"""Camera base: one owned capture thread per camera, honest timestamps, never-blocking access.

```
  capture thread (camera-<name>)                         consumers (any thread)
  _open() -> loop: _read(timeout) -> RawFrame  --put-->  LatestSlot[Frame]  --latest()-->  loop
     ^            | raises / stale too long              (newest only; readers never wait)   GUI
     +-- backoff -+-> _close(), state RECONNECTING                                          bench
```
Backends implement ``_open``, ``_read`` and ``_close``, all called on the capture thread only (an
EGL renderer or a librealsense pipeline stays in the thread that made it). The base stamps every
frame with host monotonic time, counts delivered, dropped and late frames, detects staleness,
records gaps, and reconnects with exponential backoff. A failing camera never raises into the
caller: its state, last error and gaps are in :meth:`Camera.status`.

States (:class:`CameraState`)::

    CONNECTING --first frame--> STREAMING --no frame for stale_after--> STALE
         |                        ^   |                                   |
         | open fails             |   | read raises / silent for          | silent for
         v                        |   v reconnect_after                   v reconnect_after
    RECONNECTING --reopen + first frame                              RECONNECTING
    STREAMING --backend raises StreamEnded (a video file or recording that does not loop)--> ENDED

Counters: *delivered* frames reached :meth:`latest`; *dropped* frames were produced by the device
but never delivered (exact from device frame counters, estimated from arrival times otherwise);
*late* frames arrived more than 1.5 frame periods after the previous one. A *gap* is a period
longer than ``stale_after`` without frames (stale, failed, reconnecting, ended); recording uses
:meth:`CameraStatus.gaps_between` to pause an episode or flag it.
"""

from __future__ import annotations

import abc
import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from vla_studio.core.config import option
from vla_studio.core.events import LatestSlot
from vla_studio.core.types import Feature, Frame
from vla_studio.devices.base import Device, DeviceConfig
from vla_studio.devices.cameras.geometry import CameraExtrinsics
from vla_studio.devices.cameras.status import CameraListener, CameraState, CameraStatus, FrameGap

__all__ = ["Camera", "CameraConfig", "CameraListener", "CameraIntrinsics", "CameraState", "CameraStatus",
           "FrameGap", "RawFrame", "StreamEnded"]

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.25
MAX_GAPS_KEPT = 64


@dataclass(frozen=True)
class CameraConfig(DeviceConfig):
    """Fields every camera accepts in a station profile's ``[[cameras]]`` table."""

    width: int = option(640, min=1, max=16384, help="requested image width, pixels")
    height: int = option(480, min=1, max=16384, help="requested image height, pixels")
    fps: float = option(30.0, min=0.1, max=1000.0, help="requested frame rate")
    color: bool = option(True, help="capture colour images")
    depth: bool = option(False, help="capture depth images (uint16)")
    stale_after_ms: float = option(0.0, min=0.0, help="no frame for this long = stale; 0 = auto")
    reconnect_after_ms: float = option(2000.0, min=1.0, help="stale this long = reopen the device")
    reconnect: bool = option(True, help="reopen a failed device with backoff")
    max_backoff_s: float = option(5.0, min=0.01, help="longest wait between reopen attempts")
    pose: tuple[float, ...] = option(
        (), help="camera pose in the robot base frame, [x, y, z, roll, pitch, yaw] (m, rad; "
                 "OpenCV optical axes): lets the policy overlay draw the predicted path")

    def __post_init__(self) -> None:
        if self.pose and len(self.pose) != 6:
            raise ValueError(f"pose has {len(self.pose)} values; a camera pose is "
                             "[x, y, z, roll, pitch, yaw] (metres, radians)")


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


class StreamEnded(Exception):
    """Raised by a backend's ``_read`` when a finite source has no more frames (not an error:
    the camera goes to ENDED and its thread exits without reconnecting)."""


class Camera(Device):
    """A camera with a capture thread. See the module docstring for the threading contract."""

    config_class: ClassVar[type[DeviceConfig]] = CameraConfig
    config: CameraConfig
    # True for cameras that render the robot's own world (a simulator): a camera-only preview
    # must then connect the robot too (it only holds; nothing moves without the control loop).
    needs_robot: ClassVar[bool] = False

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
        self._actual_period_s: float | None = None
        self._intrinsics: CameraIntrinsics | None = None
        self._warnings: tuple[str, ...] = ()
        self._gaps: collections.deque[FrameGap] = collections.deque(maxlen=MAX_GAPS_KEPT)
        self._open_gap: FrameGap | None = None
        self._gap_count = 0
        self._t_connect = 0.0
        self._t_opened = 0.0
        self._listeners: list[CameraListener] = []
        self._backoff = INITIAL_BACKOFF_S  # capture thread only
        self._failures = 0  # failures in a row, capture thread only

    # ----- backend API (capture thread only) -------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None:
        """Open the device. Raise an exception whose message says what is wrong and how to fix."""

    @abc.abstractmethod
    def _read(self, timeout_s: float) -> RawFrame | None:
        """Block until the next frame (None on timeout). Raise when the device is gone, or
        :class:`StreamEnded` when a finite source has no more frames."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the device. Must not raise."""

    def _set_mode(self, **mode: object) -> None:
        """Backends report the negotiated mode (actual width, height, fps, fourcc, ...).

        A positive ``fps`` also becomes the frame period drop and late estimates use, so a
        device that cannot give the requested rate is not reported as dropping frames.
        """
        fps = mode.get("fps")
        with self._lock:
            self._mode = dict(mode)
            self._actual_period_s = 1.0 / float(fps) if isinstance(fps, (int, float)) and fps > 0 else None

    def _wait_until_due(self, due: float, timeout_s: float) -> bool:
        """For sources that pace themselves (files, simulators, synthetic): sleep until ``due``
        (host monotonic). Returns False, after sleeping ``timeout_s``, when ``due`` is further
        away than that, so the capture thread gets to check for a stop and call ``_read`` again."""
        wait = due - time.monotonic()
        if wait > timeout_s:
            time.sleep(timeout_s)
            return False
        if wait > 0:
            time.sleep(wait)
        return True

    def _set_intrinsics(self, intrinsics: CameraIntrinsics | None) -> None:
        self._intrinsics = intrinsics

    def _warn(self, message: str) -> None:
        """Report a non-fatal problem of the current connection (cleared before each reopen)."""
        log.warning("camera %s: %s", self.name, message)
        with self._lock:
            if message not in self._warnings:
                self._warnings = (*self._warnings, message)

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

    def extrinsics_for(self, frame: Frame | None = None) -> CameraExtrinsics | None:
        """The camera's pose when ``frame`` was taken (None: unknown).

        The profile's ``pose`` by default; devices that know better (the simulator, a wrist
        camera moving with the arm) override this. Any thread; never blocks.
        """
        return CameraExtrinsics.from_pose(self.config.pose) if self.config.pose else None

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

    def requested_mode(self) -> dict:
        """What the profile asks of the device (backends add their own keys, e.g. fourcc)."""
        c = self.config
        return {"width": c.width, "height": c.height, "fps": c.fps}

    def add_listener(self, callback: CameraListener) -> Callable[[], None]:
        """Call ``callback(status, previous_state)`` after every state change.

        It runs on the capture thread: it must be quick and must not block (append to a queue,
        publish an event). Returns a function that removes it.
        """
        with self._lock:
            self._listeners = [*self._listeners, callback]

        def remove() -> None:
            with self._lock:
                self._listeners = [cb for cb in self._listeners if cb is not callback]

        return remove

    def connect(self, timeout_s: float = 5.0) -> None:
        """Start the capture thread and wait (up to ``timeout_s``) for the first open attempt.

        Never raises for a missing or failing device: see :meth:`status`. A camera that is not
        there yet keeps being retried (with backoff) while ``reconnect`` is on.
        """
        if self.is_connected:
            return
        self._stop.clear()
        self._opened_once.clear()
        self._t_connect = time.monotonic()
        self._transition(CameraState.CONNECTING)
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
        with self._lock:
            if self._open_gap is not None:  # a deliberate stop ends the gap bookkeeping
                self._close_gap(time.monotonic())
        self._transition(CameraState.STOPPED)

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
            return self._status_locked(now)

    # ----- bookkeeping (lock held) -----------------------------------------------------------
    def _status_locked(self, now: float) -> CameraStatus:
        arrivals = list(self._arrivals)
        state = self._state
        last = arrivals[-1] if arrivals else None
        age = now - last if last is not None else None
        silent = now - max(last if last is not None else 0.0, self._t_opened)
        gaps = list(self._gaps)
        if state == CameraState.STREAMING and silent > self.stale_after_s:
            # The capture thread is stuck inside a backend call; report what the operator sees.
            state = CameraState.STALE
            if self._open_gap is None:
                gaps.append(FrameGap(last if last is not None else self._t_opened, None,
                                     f"no frame for {silent:.2f} s"))
        if self._open_gap is not None:
            gaps.append(self._open_gap)
        fps = 0.0
        if (state == CameraState.STREAMING and len(arrivals) > 2 and arrivals[-1] > arrivals[0]):
            fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        return CameraStatus(self.name, state, self._delivered, self._dropped, self._late,
                            self._reconnects, fps, age, self._last_error, dict(self._mode),
                            self.requested_mode(), self._warnings, tuple(gaps), self._gap_count,
                            last)

    def _open_gap_locked(self, reason: str) -> None:
        if self._open_gap is None:
            start = self._arrivals[-1] if self._arrivals else self._t_connect
            self._open_gap = FrameGap(start, None, reason)
            self._gap_count += 1

    def _close_gap(self, t_end: float) -> None:
        if self._open_gap is not None:
            gap = self._open_gap
            self._gaps.append(FrameGap(gap.t_start, max(t_end, gap.t_start), gap.reason))
            self._open_gap = None

    def _transition(self, state: CameraState, error: str | None = None,
                    gap_reason: str | None = None) -> None:
        """Change state (and error), open a gap if asked; tell the listeners if the state changed."""
        with self._lock:
            previous = self._state
            self._state = state
            if error is not None:
                self._last_error = error
            if gap_reason is not None:
                self._open_gap_locked(gap_reason)
            if previous == state:  # a new error in the same state (retries) is not news
                return
            listeners = self._listeners
            status = self._status_locked(time.monotonic()) if listeners else None
        for cb in listeners:
            try:
                cb(status, previous)  # type: ignore[arg-type]
            except Exception:
                log.exception("camera %s: state listener %r failed", self.name, cb)

    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        self._transition(state, error)

    # ----- capture thread --------------------------------------------------------------------
    def _run(self) -> None:
        self._backoff = INITIAL_BACKOFF_S
        self._failures = 0
        opened = False
        last_frame_t = time.monotonic()
        try:
            while not self._stop.is_set():
                if not opened:
                    with self._lock:
                        self._warnings = ()
                    try:
                        self._open()
                    except Exception as exc:  # any backend failure is reported, never raised
                        self._log_failure("cannot open: %s", exc)
                        self._transition(CameraState.RECONNECTING, f"{exc}",
                                         gap_reason=f"cannot open: {exc}")
                        self._opened_once.set()
                        if not self.config.reconnect:
                            self._transition(CameraState.STOPPED)
                            return
                        self._wait_backoff()
                        continue
                    opened, last_frame_t = True, time.monotonic()
                    with self._lock:
                        self._last_device_index = None
                        self._t_opened = last_frame_t
                    self._opened_once.set()
                try:
                    raw = self._read(min(0.2, self.stale_after_s))
                except StreamEnded as exc:
                    why = str(exc) or "the stream ended"
                    log.info("camera %s: %s", self.name, why)
                    self._safe_close()
                    opened = False
                    self._transition(CameraState.ENDED, why, gap_reason=why)
                    return
                except Exception as exc:
                    self._log_failure("read failed: %s", exc)
                    opened = self._reopen_later(f"read failed: {exc}")
                    continue
                now = time.monotonic()
                if raw is None:
                    silent = now - last_frame_t
                    if silent > self.config.reconnect_after_ms / 1000.0:
                        self._log_failure("%s", f"no frame for {silent:.1f} s")
                        opened = self._reopen_later(f"no frame for {silent:.1f} s")
                    elif silent > self.stale_after_s and self._state != CameraState.STALE:
                        why = f"no frame for {silent:.2f} s"
                        self._transition(CameraState.STALE, why, gap_reason=why)
                    continue
                last_frame_t = now
                self._backoff, self._failures = INITIAL_BACKOFF_S, 0
                self._deliver(raw, now)
        finally:
            if opened:
                self._safe_close()

    def _log_failure(self, fmt: str, exc: object) -> None:
        # The first failure in a row is a warning; the retries that follow are not news.
        self._failures += 1
        log.log(logging.WARNING if self._failures == 1 else logging.DEBUG,
                "camera %s: " + fmt, self.name, exc)

    def _wait_backoff(self) -> None:
        self._stop.wait(self._backoff)
        self._backoff = min(self._backoff * 2.0, self.config.max_backoff_s)

    def _reopen_later(self, why: str) -> bool:
        self._safe_close()
        with self._lock:
            self._reconnects += 1
        self._transition(CameraState.RECONNECTING, why, gap_reason=why)
        if not self.config.reconnect:
            self._stop.set()
        self._wait_backoff()
        return False

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception:
            log.exception("camera %s: close failed", self.name)

    def _deliver(self, raw: RawFrame, now: float) -> None:
        t_capture = raw.t_capture if raw.t_capture is not None else now
        recovered = False
        with self._lock:
            period = self._actual_period_s or self.period_s
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
            if self._open_gap is not None:
                self._close_gap(t_capture)
            recovered = self._state != CameraState.STREAMING
        self._slot.put(Frame(self.name, index, t_capture, raw.color, raw.depth, raw.t_device))
        if recovered:  # frames flow again: the error is history (kept in the gap's reason)
            self._transition(CameraState.STREAMING, "")
