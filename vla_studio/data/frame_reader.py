"""Decode-ahead for replay: one worker thread, a small frame cache, read-ahead while playing.

```
 GUI thread                                  replay-frames thread (owned by FrameReader)
 cached(step) -> FrameSet | None  (cache hit: shown at once)
 request(step, direction) --latest wins-->   decode the step's frames of every camera
                                             (synchronised by capture time), resize to the
                                             panes' sizes, colour-map depth
 on_ready(FrameSet) <--callback, worker------+ then read ahead: the next steps in the playing
   (the Qt side re-emits it as a queued        direction (or both neighbours when paused),
    signal; no widget is touched here)         stopping as soon as a newer request arrives
```
The worker hands each step's frames to a small pool (``replay-decode-*``, owned by the reader
like the worker, shut down with it): JPEG decoding and resizing release the GIL, so a step's
cameras decode in parallel; read-ahead runs one job per camera through
:meth:`FrameSource.iter_color` (what a video source decodes best in sequence). Only the frames
shown or about to be shown are ever decoded; the cache holds decoded, display-sized frames under
a byte budget (least recently used go first). Nothing here imports Qt: the worker hands over
numpy arrays.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from vla_studio.data.frame_source import FrameSource, fit_frame, synchronised_steps  # noqa: F401

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 96 << 20
DEFAULT_READ_AHEAD = 12  # steps decoded ahead while playing (0.4 s at 30 Hz)
DEFAULT_DECODERS = 2  # threads decoding a step's cameras (this machine class has two cores)
PAUSED_NEIGHBOURS = 2  # steps decoded either side while paused (frame stepping)


@dataclass(frozen=True)
class FrameSet:
    """Every pane's picture for one step.

    Attributes:
        step: the playhead step.
        color: colour camera -> ``HxWx3`` uint8 RGB at its display size (None: no frame).
        depth: depth camera -> colour-mapped ``HxWx3`` uint8 RGB (None: no depth).
        source_steps: camera (``name`` or ``name:depth``) -> the step whose stored frame is
            shown (capture-time synchronisation may pick a neighbour's).
        decode_ms: time spent decoding frames that were not cached (0 for a cache hit).
    """

    step: int
    color: dict[str, np.ndarray | None]
    depth: dict[str, np.ndarray | None]
    source_steps: dict[str, int] = field(default_factory=dict)
    decode_ms: float = 0.0


class DepthColours:
    """Depth in device units -> Turbo colours over a range fixed per episode (taken from the
    first frame decoded: stable colours while scrubbing), black where there is no depth."""

    def __init__(self) -> None:
        self.range_units: tuple[float, float] | None = None

    def to_rgb(self, depth: np.ndarray) -> np.ndarray:
        if self.range_units is None:
            valid = depth[::4, ::4]
            valid = valid[valid > 0]
            if valid.size >= 16:
                lo, hi = np.percentile(valid, (2, 98))
                self.range_units = (float(lo), float(max(hi, lo + 10)))
        lo, hi = self.range_units or (0.0, 65535.0)
        scaled = cv2.convertScaleAbs(cv2.subtract(depth, np.array([lo]), dtype=cv2.CV_16U)
                                     if lo > 0 else depth, alpha=254.0 / (hi - lo), beta=1.0)
        rgb = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
        rgb[depth == 0] = 0
        return rgb


class FrameCache:
    """Least-recently-used decoded frames under a byte budget (not thread-safe by itself)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.bytes = 0
        self._items: collections.OrderedDict[tuple, np.ndarray | None] = \
            collections.OrderedDict()

    def get(self, key: tuple) -> tuple[bool, np.ndarray | None]:
        if key not in self._items:
            return False, None
        self._items.move_to_end(key)
        return True, self._items[key]

    def put(self, key: tuple, frame: np.ndarray | None) -> None:
        if key in self._items:
            old = self._items.pop(key)
            self.bytes -= old.nbytes if old is not None else 0
        self._items[key] = frame
        self.bytes += frame.nbytes if frame is not None else 0
        while self.bytes > self.budget and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= evicted.nbytes if evicted is not None else 0

    def __len__(self) -> int:
        return len(self._items)


class FrameReader:
    """Serves a replay view's frames from a :class:`FrameSource` on the ``replay-frames`` thread.

    Args:
        source: the episode's frames (closed by :meth:`stop`).
        step_times: float64 ``[T]`` tick times (cameras are synchronised to them).
        on_ready: called on the worker thread with each requested :class:`FrameSet` that was not
            already cached when asked for; it must only hand the set over (emit a signal).
        cache_bytes: budget of decoded frames kept.
        read_ahead: steps decoded ahead while playing.
        decoders: threads decoding one step's cameras in parallel.
    """

    def __init__(self, source: FrameSource, step_times: np.ndarray,
                 on_ready: Callable[[FrameSet], None], *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 read_ahead: int = DEFAULT_READ_AHEAD, decoders: int = DEFAULT_DECODERS) -> None:
        self.source = source
        self.on_ready = on_ready
        self.read_ahead = read_ahead
        self.num_steps = source.num_steps
        times = np.asarray(step_times, np.float64)[: self.num_steps]
        self._show = {cam: synchronised_steps(times, source.capture_times(cam))
                      for cam in source.cameras}
        self._ids = {cam: source.frame_ids(cam) for cam in source.cameras}
        self._depth_show = {cam: synchronised_steps(times, source.capture_times(cam))
                            for cam in source.depth_cameras}
        for cam, shown in self._depth_show.items():
            if (shown < 0).all():  # no timing recorded: every step has its own depth frame
                self._depth_show[cam] = np.arange(self.num_steps, dtype=np.int64)
        self._colours = {cam: DepthColours() for cam in source.depth_cameras}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._cache = FrameCache(cache_bytes)
        self._cond = threading.Condition()
        self._want: tuple[int, int, int] | None = None  # (generation, step, direction)
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._decoders = max(1, decoders)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopping = False
        self.decoded = 0  # frames decoded (statistics)

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self._decoders, "replay-decode")
            self._thread = threading.Thread(target=self._run, name="replay-frames", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop and join the worker, then close the source."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("replay-frames did not stop within %.0f s", timeout_s)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.source.close()

    # ----- GUI side --------------------------------------------------------------------------
    def set_display_size(self, camera: str, size: tuple[int, int]) -> None:
        """Decode ``camera``'s frames to ``(width, height)`` pixels from now on (the pane's
        size); frames already cached keep their size (the pane scales them once)."""
        with self._cond:
            self._sizes[camera] = (max(1, int(size[0])), max(1, int(size[1])))

    def cached(self, step: int) -> FrameSet | None:
        """The step's frames if every one is cached (a cache hit costs no thread hop)."""
        with self._cond:
            return self._assemble(step)

    def request(self, step: int, direction: int = 0) -> None:
        """Ask for ``step`` (replaces any earlier request) and read ahead in ``direction``
        (+1 playing forward, -1 backward, 0 paused: both neighbours)."""
        step = max(0, min(int(step), self.num_steps - 1))
        with self._cond:
            self._generation += 1
            self._want = (self._generation, step, direction)
            self._cond.notify_all()

    # ----- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while self._want is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                generation, step, direction = self._want
                self._want = None
                ready = self._assemble(step)
            if ready is None:
                try:
                    frames = self._decode_step(step, generation)
                except Exception:  # a damaged frame must not end the view's frames
                    log.exception("replay: decoding step %d failed", step)
                    frames = None
                if frames is not None:
                    self.on_ready(frames)
            self._read_ahead(step, direction, generation)

    def _newer(self, generation: int) -> bool:
        with self._cond:
            return self._stopping or self._generation != generation

    def _decode_step(self, step: int, generation: int) -> FrameSet | None:
        t0 = time.perf_counter()
        if self._newer(generation):
            return None  # a newer request overtook this one: serve that instead
        self._load_all(self._keys(step))
        with self._cond:
            frames = self._assemble(step)
        if frames is None:
            return None
        return FrameSet(frames.step, frames.color, frames.depth, frames.source_steps,
                        (time.perf_counter() - t0) * 1e3)

    def _read_ahead(self, step: int, direction: int, generation: int) -> None:
        if direction:
            order = [step + direction * k for k in range(1, self.read_ahead + 1)]
        else:
            order = [step + s * k for k in range(1, PAUSED_NEIGHBOURS + 1) for s in (1, -1)]
        # One job per camera, each walking its frames nearest first through the source's
        # sequential path (iter_color: what a video source decodes best), the cameras in
        # parallel; every job stops as soon as a newer request arrives.
        lanes: dict[tuple[str, str], list[tuple]] = {}
        for ahead in order:
            if 0 <= ahead < self.num_steps:
                for key in self._keys(ahead):
                    lane = lanes.setdefault(key[:2], [])
                    if key not in lane and not self._cached(key):
                        lane.append(key)
        self._run_jobs([lambda keys=keys: self._load_lane(keys, generation)
                        for keys in lanes.values() if keys])

    def _load_lane(self, keys: list[tuple], generation: int) -> None:
        """Read ahead one camera's ``keys`` in order until a newer request arrives."""
        kind, cam = keys[0][:2]
        wanted = [k for k in keys if k[2] >= 0 and k[3] >= 0]
        for key in keys:
            if key not in wanted:
                self._store(key, None)
        if kind == "depth":
            for key in wanted:
                if self._newer(generation):
                    return
                self._load(key)
            return
        with self._cond:
            size = self._sizes.get(cam)
        frames = self.source.iter_color(cam, [k[3] for k in wanted], size)
        try:
            for key, (_, frame) in zip(wanted, frames):
                self._store(key, frame, decoded=True)
                if self._newer(generation):
                    return
        finally:
            frames.close()

    def _load_all(self, keys: list[tuple]) -> None:
        """Decode ``keys`` (one step's cameras) in parallel on the decode pool."""
        self._run_jobs([lambda key=key: self._load(key) for key in keys])

    def _run_jobs(self, jobs: list) -> None:
        pool = self._pool
        try:
            futures = [pool.submit(job) for job in jobs] if pool and len(jobs) > 1 else []
        except RuntimeError:  # the pool was shut down (stopping, or the interpreter exits)
            futures = []
        if not futures:
            for job in jobs:
                job()
        for future in futures:
            future.result()

    def _cached(self, key: tuple) -> bool:
        with self._cond:
            return self._cache.get(key[:3])[0]

    def _keys(self, step: int) -> list[tuple]:
        keys: list[tuple] = []
        for cam in self._show:
            src = int(self._show[cam][step])
            keys.append(("color", cam, int(self._ids[cam][src]) if src >= 0 else -1, src))
        for cam in self._depth_show:
            src = int(self._depth_show[cam][step])
            keys.append(("depth", cam, src, src))
        return keys

    def _load(self, key: tuple) -> None:
        kind, cam, ident, src = key
        with self._cond:
            hit, _ = self._cache.get(key[:3])
            size = self._sizes.get(f"{cam}:depth" if kind == "depth" else cam)
        if hit:
            return
        frame: np.ndarray | None = None
        if ident >= 0 and src >= 0:
            if kind == "color":
                frame = self.source.read_color(cam, src, size)
            else:
                raw = self.source.read_depth(cam, src)
                if raw is not None and size is not None:
                    raw = fit_frame(raw, size, nearest=True)
                frame = None if raw is None else self._colours[cam].to_rgb(raw)
        self._store(key, frame, decoded=ident >= 0 and src >= 0)

    def _store(self, key: tuple, frame: np.ndarray | None, decoded: bool = False) -> None:
        if frame is not None:
            frame.flags.writeable = False  # shared with the GUI thread: never changed
        with self._cond:
            self.decoded += int(decoded)
            self._cache.put(key[:3], frame)

    def _assemble(self, step: int) -> FrameSet | None:
        """The step's frames from the cache (lock held); None if one is missing."""
        color: dict[str, np.ndarray | None] = {}
        depth: dict[str, np.ndarray | None] = {}
        sources: dict[str, int] = {}
        for kind, cam, ident, src in self._keys(step):
            hit, frame = self._cache.get((kind, cam, ident))
            if not hit:
                return None
            (color if kind == "color" else depth)[cam] = frame
            sources[cam if kind == "color" else f"{cam}:depth"] = src
        return FrameSet(step, color, depth, sources)

    def depth_range_m(self, camera: str) -> tuple[float, float] | None:
        """The metric range the depth colours of ``camera`` span (once a frame was decoded)."""
        units = self._colours[camera].range_units
        if units is None:
            return None
        scale = self.source.depth_scale(camera)
        return units[0] * scale, units[1] * scale
