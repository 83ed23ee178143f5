"""Camera frames of a recorded episode, read lazily: the one interface every reader goes through.

:class:`FrameSource` is what the replay view (and any other reader of frames) asks for frames;
it never reads more than the frames asked for. :class:`Hdf5JpegFrameSource` reads the episode
file's JPEG/PNG-in-HDF5 layout (one byte buffer plus an ``(offset, length)`` index per camera,
see :mod:`vla_studio.data.episode_file`); a video-storage implementation (transcoded episodes)
implements the same interface, overriding :meth:`FrameSource.iter_color` to decode forward
from a key frame instead of seeking for every frame.

Timing is part of the interface: every camera's *capture* times per step, and a frame identity
per step (steps that saw the same frame share it), so a reader can line cameras up by when
their frames were captured rather than by step index (:func:`synchronised_steps`).
"""

from __future__ import annotations

import abc
import threading
from pathlib import Path
from typing import Iterator

import cv2
import h5py
import numpy as np

from vla_studio.data.episode_file import (DEPTH, IMAGE, RECORDING_SUFFIX, STEPS, TIMING,
                                          EpisodeFileError, decode_attrs)

DEFAULT_DEPTH_SCALE = 0.001  # metres per depth unit, when a camera does not say


class FrameSource(abc.ABC):
    """Read-only access to one episode's camera frames, decoded on request.

    Implementations are safe to call from one worker thread at a time (the replay view's
    decode thread); the timing arrays are read once, when the source is opened.
    """

    @property
    @abc.abstractmethod
    def num_steps(self) -> int: ...

    @property
    @abc.abstractmethod
    def cameras(self) -> tuple[str, ...]:
        """Cameras with colour frames, in the station's order."""

    @property
    @abc.abstractmethod
    def depth_cameras(self) -> tuple[str, ...]:
        """Cameras with depth frames."""

    @abc.abstractmethod
    def frame_size(self, camera: str) -> tuple[int, int]:
        """``(width, height)`` of the camera's colour frames (its depth frames for a depth-only
        camera)."""

    @abc.abstractmethod
    def capture_times(self, camera: str) -> np.ndarray:
        """float64 ``[T]``: host monotonic capture time of the frame each step saw (NaN when
        the step has no frame of this camera)."""

    @abc.abstractmethod
    def frame_ids(self, camera: str) -> np.ndarray:
        """int64 ``[T]``: identity of the stored colour frame each step shows, -1 for none;
        steps that saw the same frame have the same id (a cache key)."""

    @abc.abstractmethod
    def sequence_numbers(self, camera: str) -> np.ndarray:
        """int64 ``[T]``: the camera's own frame counter per step (-1 for none); a jump of
        more than one between distinct frames means the camera dropped frames."""

    @abc.abstractmethod
    def read_color(self, camera: str, step: int,
                   fit: tuple[int, int] | None = None) -> np.ndarray | None:
        """The colour frame step ``step`` saw, ``HxWx3`` uint8 RGB (None: no frame).

        Args:
            camera: a colour camera.
            step: the step.
            fit: ``(width, height)`` to scale the frame into, keeping its aspect ratio (a
                display's size: the decoder may decode at a reduced size); None: as stored.
        """

    @abc.abstractmethod
    def read_depth(self, camera: str, step: int) -> np.ndarray | None:
        """The depth frame of step ``step``, ``HxW`` uint16 device units (None: no depth)."""

    def depth_scale(self, camera: str) -> float:
        """Metres per depth unit."""
        return DEFAULT_DEPTH_SCALE

    def iter_color(self, camera: str, steps: list[int], fit: tuple[int, int] | None = None
                   ) -> Iterator[tuple[int, np.ndarray | None]]:
        """``(step, frame)`` for each of ``steps`` in order: the read-ahead path. A source
        whose frames decode best in sequence (video) overrides this."""
        for step in steps:
            yield step, self.read_color(camera, step, fit)

    def close(self) -> None:
        """Release the file (idempotent)."""


class Hdf5JpegFrameSource(FrameSource):
    """Frames of an episode file stored as JPEG/PNG bytes in HDF5 (the recording format).

    Opening reads only the per-step index and timing arrays (a few bytes per step and camera);
    each :meth:`read_color` reads one frame's bytes and decodes it. The file has its own
    read-only handle, apart from any :class:`~vla_studio.data.episode_file.EpisodeReader`.

    Args:
        path: the episode file (sealed or still recording).

    Raises:
        EpisodeFileError: not a readable episode file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        live = self.path.name.endswith(RECORDING_SUFFIX)
        try:
            self._f = h5py.File(self.path, "r", swmr=live)
        except OSError as exc:
            raise EpisodeFileError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        self._lock = threading.Lock()  # h5py handles are not meant for concurrent readers
        try:
            self._open()
        except (KeyError, ValueError) as exc:
            self._f.close()
            raise EpisodeFileError(f"{self.path}: cannot read its camera frames ({exc})") from None

    def _open(self) -> None:
        f = self._f
        self._n = int(f[f"{STEPS}/timestamp"].shape[0])
        attrs = decode_attrs(f.attrs, ("cameras",))
        meta = attrs.get("cameras") if isinstance(attrs.get("cameras"), dict) else {}
        images = f.get(IMAGE)
        names = list(images.keys()) if images is not None else []
        order = [n for n in meta if n in names] + sorted(set(names) - set(meta))
        self._cameras = tuple(order)
        depth = f.get(DEPTH)
        self._depth = tuple(sorted(depth.keys())) if depth is not None else ()
        self._meta = meta
        self._index: dict[str, np.ndarray] = {}
        self._timing: dict[str, dict[str, np.ndarray]] = {}
        self._format: dict[str, str] = {}
        for cam in self._cameras:
            g = images[cam]
            self._format[cam] = str(g.attrs.get("format", "jpeg"))
            self._timing[cam] = self._timing_of(g)
            self._open_color(cam, g)
        self._sizes: dict[str, tuple[int, int]] = {}
        for cam in self._cameras:
            g = images[cam]
            self._sizes[cam] = (int(g.attrs["width"]), int(g.attrs["height"]))
        for cam in self._depth:
            if cam not in self._sizes:
                shape = depth[cam].shape
                self._sizes[cam] = (int(shape[2]), int(shape[1]))
        for cam in self._depth:
            if cam not in self._timing:
                timing = f.get(f"{TIMING}/{cam}")
                self._timing[cam] = self._timing_of(timing) if timing is not None else {}

    def _open_color(self, camera: str, group: h5py.Group) -> None:
        """Read what a camera's colour frames need at open (the JPEG layout: the index)."""
        self._index[camera] = np.asarray(group["index"][: self._n], np.int64)

    def _has_frame(self, camera: str) -> np.ndarray | None:
        """bool ``[T]``: which steps have a colour frame of ``camera`` (None: not a colour
        camera)."""
        index = self._index.get(camera)
        return None if index is None else index[:, 1] > 0

    def _timing_of(self, group: h5py.Group) -> dict[str, np.ndarray]:
        out = {}
        for key, dtype in (("capture_time", np.float64), ("frame_index", np.int64)):
            if key in group:
                out[key] = np.asarray(group[key][: self._n], dtype)
        return out

    # ----- FrameSource -----------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return self._n

    @property
    def cameras(self) -> tuple[str, ...]:
        return self._cameras

    @property
    def depth_cameras(self) -> tuple[str, ...]:
        return self._depth

    def frame_size(self, camera: str) -> tuple[int, int]:
        return self._sizes[camera]

    def capture_times(self, camera: str) -> np.ndarray:
        times = self._timing.get(camera, {}).get("capture_time")
        if times is None:
            return np.full(self._n, np.nan)
        times = times.copy()
        present = self._has_frame(camera)
        if present is not None:
            times[~present] = np.nan
        return times

    def frame_ids(self, camera: str) -> np.ndarray:
        index = self._index.get(camera)
        if index is None:
            return np.full(self._n, -1, np.int64)
        return np.where(index[:, 1] > 0, index[:, 0], -1)

    def sequence_numbers(self, camera: str) -> np.ndarray:
        seq = self._timing.get(camera, {}).get("frame_index")
        return seq.copy() if seq is not None else np.full(self._n, -1, np.int64)

    def read_encoded(self, camera: str, step: int) -> bytes:
        """The stored bytes of step ``step``'s frame (b"" when it has none)."""
        offset, length = (int(v) for v in self._index[camera][step])
        if length == 0:
            return b""
        with self._lock:
            return self._f[f"{IMAGE}/{camera}/data"][offset:offset + length].tobytes()

    def read_color(self, camera: str, step: int,
                   fit: tuple[int, int] | None = None) -> np.ndarray | None:
        data = self.read_encoded(camera, step)
        if not data:
            return None
        flag = cv2.IMREAD_COLOR
        if fit is not None and self._format.get(camera) == "jpeg":
            width, height = self.frame_size(camera)
            # JPEG decodes at 1/2 or 1/4 size for almost nothing: when the display is that small.
            scale = min(fit[0] / width, fit[1] / height)
            flag = cv2.IMREAD_REDUCED_COLOR_4 if scale <= 0.25 else (
                cv2.IMREAD_REDUCED_COLOR_2 if scale <= 0.5 else cv2.IMREAD_COLOR)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        if bgr is None:
            return None
        if fit is not None:
            bgr = fit_frame(bgr, fit)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # after the resize: on fewer pixels

    def read_depth(self, camera: str, step: int) -> np.ndarray | None:
        if camera not in self._depth:
            return None
        with self._lock:
            return np.asarray(self._f[f"{DEPTH}/{camera}"][step])

    def depth_scale(self, camera: str) -> float:
        scale = (self._meta.get(camera) or {}).get("depth_scale")
        try:
            return float(scale) if scale else DEFAULT_DEPTH_SCALE
        except (TypeError, ValueError):
            return DEFAULT_DEPTH_SCALE

    def close(self) -> None:
        with self._lock:
            if self._f.id.valid:
                self._f.close()


def synchronised_steps(step_times: np.ndarray, capture_times: np.ndarray) -> np.ndarray:
    """For each step, the step whose stored frame to show so that cameras agree in time.

    A camera shows, at step ``i``'s tick time, the latest of its frames *captured* at or before
    that time (sample-and-hold), wherever that frame was stored: a frame still in transit at
    tick ``i`` (stored with a later step) but captured before it is shown at ``i``. Before the
    camera's first frame the first frame is shown.

    Args:
        step_times: float64 ``[T]`` tick times.
        capture_times: float64 ``[T]`` capture time of each step's frame (NaN: none).

    Returns:
        int64 ``[T]``: the step to read the frame from (-1 when the camera has no frame at all).
    """
    n = len(step_times)
    valid = np.flatnonzero(np.isfinite(capture_times))
    if valid.size == 0:
        return np.full(n, -1, np.int64)
    # One entry per distinct capture, in capture order (a frame seen by several ticks repeats).
    order = valid[np.argsort(capture_times[valid], kind="stable")]
    times = capture_times[order]
    keep = np.concatenate(([True], np.diff(times) > 0))
    order, times = order[keep], times[keep]
    pos = np.searchsorted(times, step_times, side="right") - 1
    return order[np.clip(pos, 0, len(order) - 1)].astype(np.int64)


def frame_gaps(capture_times: np.ndarray, sequence: np.ndarray, nominal_period_s: float | None
               ) -> list[tuple[int, str]]:
    """Steps where a camera lost frames: ``(step, why)`` for each distinct frame that came
    after dropped frames (its counter jumped), after a capture gap longer than 2.5 nominal
    periods, and for each step without any frame.

    Args:
        capture_times: float64 ``[T]`` (NaN = no frame).
        sequence: int64 ``[T]`` the camera's frame counter (-1 = none).
        nominal_period_s: the camera's frame period (None: the median interval).
    """
    out: list[tuple[int, str]] = []
    missing = ~np.isfinite(capture_times)
    for step in np.flatnonzero(missing):
        out.append((int(step), "no frame"))
    present = np.flatnonzero(~missing)
    if present.size < 2:
        return sorted(out)
    times = capture_times[present]
    fresh = np.concatenate(([True], np.diff(times) > 0))  # first step of each distinct frame
    steps, times, seq = present[fresh], times[fresh], sequence[present][fresh]
    intervals = np.diff(times)
    period = nominal_period_s or (float(np.median(intervals)) if intervals.size else 0.0)
    known = (seq[1:] >= 0) & (seq[:-1] >= 0)
    jumps = np.where(known, seq[1:] - seq[:-1], 1)  # vectorised: long episodes have 10^4 frames
    late = (period > 0) & (intervals > 2.5 * period) & (jumps <= 1)
    for k in np.flatnonzero((jumps > 1) | late) + 1:
        if jumps[k - 1] > 1:
            out.append((int(steps[k]), f"{int(jumps[k - 1]) - 1} frame(s) dropped by the camera"))
        else:
            out.append((int(steps[k]), f"{intervals[k - 1] * 1000:.0f} ms without a frame"))
    return sorted(out)


def fit_frame(frame: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``frame`` resized to fit ``size`` = (width, height), keeping its aspect ratio (the pane
    letterboxes the rest)."""
    h, w = frame.shape[:2]
    scale = min(size[0] / w, size[1] / h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    if (tw, th) == (w, h):
        return frame
    if nearest:  # depth: never blend a valid pixel with an invalid (0) one
        method = cv2.INTER_NEAREST
    else:  # area averaging only when shrinking a lot: linear looks the same and is 8x faster
        method = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    return cv2.resize(frame, (tw, th), interpolation=method)
