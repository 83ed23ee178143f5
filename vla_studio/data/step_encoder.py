"""Turning control-loop steps into column buffers ready to append to an episode file.

Runs on the recorder's writer thread. Colour frames are encoded once per (camera, frame index):
when the camera is slower than the loop, consecutive steps see the same frame and their index
rows point at the same bytes. Depth frames are compressed here (byte shuffle + deflate, the same
pipeline HDF5's shuffle and gzip filters apply) so the file writer can store ready-made chunks;
``cv2.imencode`` and ``zlib.compress`` release the GIL, which keeps the control loop on time.
Each frame's CRC-32C is computed here, from the bytes just encoded (colour) or the raw frame
(depth), so the file carries a checksum of exactly what the camera gave (see
:mod:`vla_studio.data.checksums`).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from vla_studio.core.safety import SafetyFlag
from vla_studio.core.types import Frame, SourceKind, Step
from vla_studio.data.checksums import crc32c, depth_crc32c
from vla_studio.data.episode_file import SOURCE_CODES

log = logging.getLogger(__name__)

DEPTH_DEFLATE_LEVEL = 1  # depth compresses poorly beyond level 1 and costs 2-3x the time


@dataclass(frozen=True)
class CameraSchema:
    """What an episode file stores for one camera.

    Attributes:
        name: camera name in the station.
        type: registry type (``"opencv"``, ``"realsense"``, ``"sim"``...).
        color: whether colour images are stored.
        width, height: colour image size.
        depth_shape: ``(H, W)`` of depth images, or None without depth.
        fps: configured frame rate.
        stale_after_s: a frame older than this (relative to the tick) counts as "no image"
            (the camera is lost).
        intrinsics: pinhole intrinsics as a dict, or None.
        depth_scale: metres per depth unit, or None.
    """

    name: str
    type: str
    color: bool
    width: int
    height: int
    depth_shape: tuple[int, int] | None
    fps: float
    stale_after_s: float
    intrinsics: dict | None = None
    depth_scale: float | None = None

    def metadata(self) -> dict:
        return {"type": self.type, "width": self.width, "height": self.height, "fps": self.fps,
                "color": self.color, "depth": self.depth_shape is not None,
                "intrinsics": self.intrinsics, "depth_scale": self.depth_scale}


@dataclass(frozen=True)
class EpisodeSchema:
    """Everything needed to lay out an episode file before the first step is written.

    Attributes:
        action_names: names of the action vector's elements.
        action_space_kind: ``"ee_delta"`` or ``"joint_position"``.
        state: state feature name -> per-step shape.
        cameras: the cameras, in station order.
        image_format: ``"jpeg"`` or ``"png"``.
        jpeg_quality: 1..100.
        with_policy: store ``policy_action``, ``confidence``, ``policy_latency_ms``,
            ``chunk_seq`` and ``chunk_index`` (a policy was loaded at start).
    """

    action_names: tuple[str, ...]
    action_space_kind: str
    state: dict[str, tuple[int, ...]]
    cameras: tuple[CameraSchema, ...]
    image_format: str = "jpeg"
    jpeg_quality: int = 90
    with_policy: bool = False

    @property
    def action_dim(self) -> int:
        return len(self.action_names)


@dataclass
class CameraRows:
    """Per-step image columns of one camera, plus the new encoded bytes they point into."""

    index: list[tuple[int, int]] = field(default_factory=list)
    crc32c: list[int] = field(default_factory=list)  # of the colour frame each index row points at
    depth_crc32c: list[int] = field(default_factory=list)  # of each step's raw depth frame
    frame_index: list[int] = field(default_factory=list)
    capture_time: list[float] = field(default_factory=list)
    device_time: list[float] = field(default_factory=list)
    new_bytes: list[bytes] = field(default_factory=list)
    depth_chunks: list[bytes] = field(default_factory=list)


@dataclass
class StepBatch:
    """Column buffers of consecutive steps, not yet written."""

    action: list[np.ndarray] = field(default_factory=list)
    requested: list[np.ndarray] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    safety_flags: list[int] = field(default_factory=list)
    timestamp: list[float] = field(default_factory=list)
    state: dict[str, list[np.ndarray]] = field(default_factory=dict)
    policy_action: list[np.ndarray] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    policy_latency_ms: list[float] = field(default_factory=list)
    chunk_index: list[int] = field(default_factory=list)
    chunk_seq: list[int] = field(default_factory=list)
    cameras: dict[str, CameraRows] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.timestamp)


@dataclass
class CameraStats:
    """Per-camera counts over an episode (stored in the ``camera_stats`` attribute)."""

    frames: int = 0  # distinct frames stored
    duplicates: int = 0  # steps that reused the previous step's frame
    gaps: int = 0  # steps without an image (camera missing or stale)
    shape_mismatches: int = 0  # frames whose size differed from the file's and were not stored


class StepEncoder:
    """Encodes the steps of one episode into :class:`StepBatch` buffers.

    Args:
        schema: the episode's layout.
        data_offsets: bytes already in each camera's image buffer (non-zero when appending).
    """

    def __init__(self, schema: EpisodeSchema, data_offsets: dict[str, int] | None = None) -> None:
        self.schema = schema
        self._next_offset = {c.name: 0 for c in schema.cameras if c.color}
        self._next_offset.update(data_offsets or {})
        self._last_color: dict[str, tuple[int, tuple[int, int], int]] = {}
        self._last_depth: dict[str, tuple[int, bytes, int]] = {}
        self._empty_depth: dict[str, tuple[bytes, int]] = {}
        self.camera_stats = {c.name: CameraStats() for c in schema.cameras}
        self.safety_counts: Counter[str] = Counter()
        self.source_counts: Counter[str] = Counter()
        self.policy_stats = PolicyStats()
        self.steps = 0
        self.bytes_encoded = 0
        self._batch = self._new_batch()
        self._nan_action = np.full(schema.action_dim, np.nan, np.float32)

    def _new_batch(self) -> StepBatch:
        return StepBatch(state={k: [] for k in self.schema.state},
                         cameras={c.name: CameraRows() for c in self.schema.cameras})

    @property
    def pending(self) -> int:
        """Steps encoded but not yet taken."""
        return len(self._batch)

    def take(self) -> StepBatch:
        """The steps encoded since the last call; a fresh batch starts."""
        batch, self._batch = self._batch, self._new_batch()
        return batch

    def missing_cameras(self, step: Step) -> list[str]:
        """Cameras whose frame in ``step`` is absent or older than their staleness limit."""
        missing = []
        frames = step.observation.frames
        for cam in self.schema.cameras:
            frame = frames.get(cam.name)
            if frame is None or step.t - frame.t_capture > cam.stale_after_s:
                missing.append(cam.name)
        return missing

    def add(self, step: Step, missing: list[str] | tuple[str, ...] = ()) -> None:
        """Encode ``step``; cameras in ``missing`` get "no image" rows."""
        b, schema = self._batch, self.schema
        b.action.append(self._vector(step.action))
        b.requested.append(self._vector(step.requested))
        b.source.append(SOURCE_CODES.get(step.source, 0))
        b.safety_flags.append(int(step.safety_flags) & 0xFFFFFFFF)
        b.timestamp.append(float(step.t))
        state = step.observation.state
        for key, shape in schema.state.items():
            value = state.get(key)
            arr = np.full(shape, np.nan, np.float32)
            if value is not None:
                v = np.asarray(value, dtype=np.float32)
                if v.size == arr.size:
                    arr = v.reshape(shape)
            b.state[key].append(arr)
        if schema.with_policy:
            extras = step.extras
            b.policy_action.append(self._vector(extras.get("policy_action")))
            conf = _scalar(extras.get("confidence"))
            b.confidence.append(conf)
            b.policy_latency_ms.append(_scalar(extras.get("policy_latency_ms")))
            b.chunk_index.append(_index(extras.get("chunk_index")))
            b.chunk_seq.append(_index(extras.get("chunk_seq")))
            if step.source == SourceKind.POLICY:
                self.policy_stats.add(conf, str(extras.get("confidence_method") or ""))
        for cam in schema.cameras:
            frame = None if cam.name in missing else step.observation.frames.get(cam.name)
            self._add_frame(cam, frame, b.cameras[cam.name])
        self.steps += 1
        self.source_counts[step.source.value] += 1
        if step.safety_flags:
            for flag in SafetyFlag:
                if flag and step.safety_flags & flag:
                    self.safety_counts[flag.name.lower()] += 1

    def _vector(self, value: object) -> np.ndarray:
        if value is None:
            return self._nan_action
        try:
            v = np.asarray(value, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            return self._nan_action
        return v if v.shape == self._nan_action.shape else self._nan_action

    def _add_frame(self, cam: CameraSchema, frame: Frame | None, rows: CameraRows) -> None:
        stats = self.camera_stats[cam.name]
        if frame is None:
            stats.gaps += 1
            rows.frame_index.append(-1)
            rows.capture_time.append(math.nan)
            rows.device_time.append(math.nan)
        else:
            rows.frame_index.append(int(frame.index))
            rows.capture_time.append(float(frame.t_capture))
            rows.device_time.append(math.nan if frame.t_device is None else float(frame.t_device))
        if cam.color:
            entry, crc = self._color_entry(cam, frame, rows, stats)
            rows.index.append(entry)
            rows.crc32c.append(crc)
        if cam.depth_shape is not None:
            chunk, crc = self._depth_chunk(cam, frame, stats)
            rows.depth_chunks.append(chunk)
            rows.depth_crc32c.append(crc)

    def _color_entry(self, cam: CameraSchema, frame: Frame | None, rows: CameraRows,
                     stats: CameraStats) -> tuple[tuple[int, int], int]:
        """The step's ``(offset, length)`` index row and the CRC of the bytes it points at."""
        offset = self._next_offset[cam.name]
        if frame is None or frame.color is None:
            return (offset, 0), 0
        last = self._last_color.get(cam.name)
        if last is not None and last[0] == frame.index:
            stats.duplicates += 1
            return last[1], last[2]
        img = frame.color
        if img.shape != (cam.height, cam.width, 3):
            stats.shape_mismatches += 1
            if stats.shape_mismatches == 1:
                log.warning("camera %s: frame %s does not match the episode's %dx%d; stored as "
                            "no image", cam.name, img.shape, cam.width, cam.height)
            return (offset, 0), 0
        data = encode_color(img, self.schema.image_format, self.schema.jpeg_quality)
        rows.new_bytes.append(data)
        entry, crc = (offset, len(data)), crc32c(data)
        self._next_offset[cam.name] = offset + len(data)
        self._last_color[cam.name] = (frame.index, entry, crc)
        stats.frames += 1
        self.bytes_encoded += len(data)
        return entry, crc

    def _depth_chunk(self, cam: CameraSchema, frame: Frame | None,
                     stats: CameraStats) -> tuple[bytes, int]:
        """The step's compressed depth chunk and the CRC of the raw frame."""
        shape = cam.depth_shape
        assert shape is not None
        if frame is not None and frame.depth is not None:
            last = self._last_depth.get(cam.name)
            if last is not None and last[0] == frame.index:
                if not cam.color:
                    stats.duplicates += 1
                return last[1], last[2]
            if frame.depth.shape == shape:
                chunk, crc = compress_depth(frame.depth), depth_crc32c(frame.depth)
                self._last_depth[cam.name] = (frame.index, chunk, crc)
                if not cam.color:
                    stats.frames += 1
                self.bytes_encoded += len(chunk)
                return chunk, crc
            stats.shape_mismatches += 1
        if cam.name not in self._empty_depth:
            zeros = np.zeros(shape, np.uint16)
            self._empty_depth[cam.name] = (compress_depth(zeros), depth_crc32c(zeros))
        return self._empty_depth[cam.name]


def _scalar(value: object) -> float:
    """The first element of ``value`` as a float; NaN when there is none."""
    if value is None:
        return math.nan
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return math.nan
    return float(arr[0]) if arr.size else math.nan


def _index(value: object) -> int:
    """An integer index from ``value``; -1 when there is none."""
    number = _scalar(value)
    return int(number) if math.isfinite(number) else -1


@dataclass
class PolicyStats:
    """Confidence over the steps a policy drove (the episode's ``confidence_*`` attributes)."""

    steps: int = 0
    known: int = 0
    total: float = 0.0
    low: float = math.inf
    methods: Counter[str] = field(default_factory=Counter)

    def add(self, confidence: float, method: str) -> None:
        self.steps += 1
        if math.isfinite(confidence):
            self.known += 1
            self.total += confidence
            self.low = min(self.low, confidence)
        if method:
            self.methods[method] += 1

    def attrs(self) -> dict:
        """``confidence_mean``/``confidence_min`` (NaN: unknown) and ``confidence_method``."""
        mean = self.total / self.known if self.known else math.nan
        low = self.low if self.known else math.nan
        method = self.methods.most_common(1)[0][0] if self.methods else ""
        return {"confidence_mean": round(mean, 4) if self.known else mean,
                "confidence_min": round(low, 4) if self.known else low,
                "confidence_method": method}


def encode_color(rgb: np.ndarray, image_format: str, jpeg_quality: int) -> bytes:
    """Encode an RGB image as JPEG or PNG bytes (decoders give back RGB)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # OpenCV encoders expect BGR
    if image_format == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {image_format}")
    return buf.tobytes()


def compress_depth(depth: np.ndarray) -> bytes:
    """One ``[1, H, W]`` uint16 chunk as HDF5's shuffle + deflate filters would store it."""
    raw = np.ascontiguousarray(depth, dtype=np.uint16)
    shuffled = raw.view(np.uint8).reshape(-1, 2).T.tobytes()
    return zlib.compress(shuffled, DEPTH_DEFLATE_LEVEL)
