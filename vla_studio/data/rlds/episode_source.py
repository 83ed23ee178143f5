"""What the exporter needs from an episode file, and a summary read from its attributes.

The exporter reads episode files only through the :class:`EpisodeSource` protocol (the public API
of :class:`vla_studio.data.episode_file.EpisodeReader`). :func:`summarize` reads the cheap parts
(attributes, annotations, array shapes) once, during planning, so schema decisions and skip
reasons are known before any shard is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping, Protocol

import cv2
import h5py
import numpy as np

from vla_studio.data.checksums import FRAME_CRC, crc32c
from vla_studio.data.episode_file import FORMAT, FORMAT_VERSION, RECORDING_SUFFIX, STATE, STEPS
from vla_studio.data.integrity import (frame_checksum_problem, step_chunk_problem,
                                       structural_problem)
from vla_studio.data.video_storage import PACKET_CRC, is_video_format, open_frame_source

FORMAT_VERSIONS = (FORMAT_VERSION,)


class EpisodeSource(Protocol):
    """The episode-file reader API the exporter uses (``vla_studio.data.episode_file``)."""

    attrs: Mapping[str, Any]  # root attributes, JSON fields decoded
    num_steps: int
    cameras: list[str]  # cameras with colour images
    depth_cameras: list[str]

    file: h5py.File  # the open file: step arrays are read in bulk (see EpisodeRows)

    def image_format(self, camera: str) -> str: ...
    def image_size(self, camera: str) -> tuple[int, int]: ...
    def depth(self, camera: str) -> np.ndarray | None: ...
    def instructions(self) -> list[str]: ...
    def success(self) -> bool | None: ...
    def trim(self) -> tuple[int, int]: ...

    @property
    def annotations(self) -> Mapping[str, Any]: ...  # the sidecar's (merged) annotations


EpisodeOpener = Callable[[Path], ContextManager[EpisodeSource]]


class EpisodeSkipped(Exception):
    """An episode that cannot be exported; the message says why and, if possible, how to fix it."""


@dataclass(frozen=True)
class CameraLayout:
    """One camera's streams in one episode.

    Attributes:
        image_format: ``"jpeg"`` / ``"png"`` for a colour stream, None for a depth-only camera.
        width, height: colour frame size from the camera attributes.
        has_depth: whether the camera has a depth stream.
    """

    image_format: str | None
    width: int
    height: int
    has_depth: bool


@dataclass(frozen=True)
class EpisodeSummary:
    """Planning facts about one episode file (no image data read)."""

    path: Path
    episode_id: str
    created: str
    status: str
    success: bool | None
    num_steps: int
    trim: tuple[int, int]
    instructions: tuple[str, ...]
    cameras: Mapping[str, CameraLayout]
    state_shapes: Mapping[str, tuple[int, ...]]
    action_dim: int
    attrs: Mapping[str, Any] = field(default_factory=dict)
    annotations: Mapping[str, Any] = field(default_factory=dict)  # as merged from the sidecar
    recorded_instructions: tuple[str, ...] = ()
    recorded_success: bool | None = None

    @property
    def quality(self) -> int | None:
        q = self.annotations.get("quality")
        return int(q) if isinstance(q, int) and not isinstance(q, bool) else None

    @property
    def segments(self) -> list[dict[str, Any]]:
        return [dict(x) for x in self.annotations.get("segments") or ()]

    @property
    def tags(self) -> list[str]:
        return [str(t) for t in self.annotations.get("tags") or ()]

    @property
    def exported_steps(self) -> int:
        return self.trim[1] - self.trim[0]


def json_attr(value: Any, default: Any = None) -> Any:
    """An attribute stored as JSON text (or already decoded by the reader)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        if not value:
            return default
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return default
    return default if value is None else value


def text_attr(attrs: Mapping[str, Any], key: str) -> str:
    """A string attribute, '' when missing."""
    value = attrs.get(key, "")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    return "" if value is None else str(value)


def summarize(path: Path, reader: EpisodeSource) -> EpisodeSummary:
    """Read the planning facts of an open episode.

    Args:
        path: the episode file (for messages and metadata).
        reader: the open episode.

    Raises:
        EpisodeSkipped: the file is not an episode, is still recording, is empty, or its arrays
            disagree with its attributes.
    """
    attrs = dict(reader.attrs)
    fmt = text_attr(attrs, "format")
    if fmt != FORMAT:
        raise EpisodeSkipped(f"not a VLA Studio episode file (format attribute {fmt!r})")
    version = int(attrs.get("format_version", 0))
    if version not in FORMAT_VERSIONS:
        raise EpisodeSkipped(f"episode format version {version} is not supported by this "
                             f"exporter (supports {FORMAT_VERSIONS}); update VLA Studio")
    status = text_attr(attrs, "status")
    if status == "recording" or path.name.endswith(RECORDING_SUFFIX):
        raise EpisodeSkipped("still marked 'recording' (being recorded now, or interrupted and not "
                             "yet recovered: start VLA Studio once to recover it)")
    num_steps = int(reader.num_steps)
    if num_steps <= 0:
        raise EpisodeSkipped("has no steps")
    damaged = structural_problem(reader.file) or step_chunk_problem(reader.file, num_steps)[0]
    if damaged:  # frames are checked against their checksums as they are read (EpisodeRows)
        raise EpisodeSkipped(f"damaged: {damaged}")
    steps = reader.file[STEPS]
    action = steps.get("action")
    if not isinstance(action, h5py.Dataset) or action.ndim != 2 or action.shape[0] < num_steps:
        shape = getattr(action, "shape", None)
        raise EpisodeSkipped(f"steps/action has shape {shape}, expected [{num_steps}, D]; the "
                             "file is damaged")
    state_shapes = {}
    state = reader.file.get(STATE)
    for key, arr in (state.items() if state is not None else ()):
        if arr.shape[0] < num_steps:
            raise EpisodeSkipped(f"state '{key}' has {arr.shape[0]} rows for {num_steps} steps; "
                                 "the file is damaged")
        state_shapes[key] = tuple(int(d) for d in arr.shape[1:])
    depth = set(reader.depth_cameras)
    cameras: dict[str, CameraLayout] = {}
    for name in reader.cameras:
        width, height = (int(v) for v in reader.image_size(name))
        fmt = reader.image_format(name)
        # A camera stored as video is exported as JPEG (decoded and re-encoded).
        cameras[name] = CameraLayout("jpeg" if is_video_format(fmt) else fmt, width, height,
                                     name in depth)
    for name in depth - set(cameras):  # depth-only cameras
        cameras[name] = CameraLayout(None, 0, 0, True)
    start, end = (int(v) for v in reader.trim())
    start, end = max(0, start), min(num_steps, end)
    if end <= start:
        raise EpisodeSkipped(f"its trim range {tuple(reader.trim())} leaves no steps of "
                             f"{num_steps}; widen the trim in the episode browser")
    instructions = tuple(s.strip() for s in reader.instructions() if s and s.strip())
    recorded = json_attr(attrs.get("language_instructions"), None)
    if not isinstance(recorded, list) or not recorded:
        recorded = [text_attr(attrs, "language_instruction")]
    success_code = attrs.get("success", -1)
    annotations = dict(getattr(reader, "annotations", None) or {})
    return EpisodeSummary(
        path=path, episode_id=text_attr(attrs, "episode_id") or path.stem,
        created=text_attr(attrs, "created"), status=status, success=reader.success(),
        num_steps=num_steps, trim=(start, end), instructions=instructions, cameras=cameras,
        state_shapes=state_shapes, action_dim=int(action.shape[1]), attrs=attrs,
        annotations=annotations,
        recorded_instructions=tuple(str(x) for x in recorded if str(x).strip()),
        recorded_success=None if int(success_code) < 0 else bool(int(success_code)))


class EpisodeRows:
    """Bulk reads of one episode's exported step range ``[start, end)``.

    The reader's per-call accessors resolve paths and recount the committed steps every time
    (right for a file still being recorded); exported files are sealed (recording files are
    skipped), so one handle on ``steps/`` and slices of exactly the exported rows suffice. The
    reader stays the one place that knows labels, annotations and trims.

    Args:
        reader: the open episode.
        start, end: the exported step range.
    """

    def __init__(self, reader: EpisodeSource, start: int, end: int) -> None:
        self._steps = reader.file[STEPS]
        self._path = Path(reader.file.filename)
        self.start, self.end = start, end
        self.decoded_frames = 0  # video frames decoded (and encoded as JPEG) by frames()

    def has(self, name: str) -> bool:
        """Whether the episode has ``steps/<name>``."""
        return isinstance(self._steps.get(name), h5py.Dataset)

    def array(self, name: str, dtype: Any) -> np.ndarray:
        """Rows ``[start, end)`` of ``steps/<name>`` as ``dtype``.

        Raises:
            EpisodeSkipped: the dataset is missing or shorter than the range.
        """
        ds = self._steps.get(name)
        if not isinstance(ds, h5py.Dataset):
            raise EpisodeSkipped(f"steps/{name} is missing; the file is damaged")
        rows = np.asarray(ds[self.start:self.end], dtype)
        if len(rows) != self.end - self.start:
            raise EpisodeSkipped(f"steps/{name} has {ds.shape[0]} rows, fewer than the "
                                 f"{self.end} steps exported; the file is damaged")
        return rows

    def frames(self, camera: str, jpeg_quality: int = 95,
               size: tuple[int, int] | None = None) -> list[Any]:
        """Each step's encoded frame as a read-only uint8 array viewing one block read from the
        file (b"" for a step without an image); steps that share a frame share a view.

        A camera stored as video is decoded (through the episode's frame source) and each
        distinct frame encoded as a JPEG of ``jpeg_quality``, at ``size`` = (width, height)
        when given (scaled while decoding: no second resize later).

        Raises:
            EpisodeSkipped: the camera has no colour images, or its index points past its data.
        """
        group = self._steps.get(f"observation/image/{camera}")
        if not isinstance(group, h5py.Group):
            raise EpisodeSkipped(f"camera '{camera}' has no colour images in this episode")
        fmt = group.attrs.get("format", "jpeg")
        if is_video_format(fmt.decode() if isinstance(fmt, bytes) else str(fmt)):
            return self._video_frames(camera, group, jpeg_quality, size)
        index = self.array(f"observation/image/{camera}/index", np.int64)
        offsets, lengths = index[:, 0], index[:, 1]
        present = lengths > 0
        if not present.any():
            return [b""] * len(index)
        low, high = int(offsets[present].min()), int((offsets + lengths)[present].max())
        data = group["data"]
        if high > data.shape[0]:
            raise EpisodeSkipped(f"camera '{camera}' frames point past its image data; the file "
                                 "is damaged")
        block = data[low:high]
        block.flags.writeable = False  # read-only views are what the hardware checksum accepts
        frames = [block[o - low:o - low + n] if n else b"" for o, n in index.tolist()]
        if FRAME_CRC in group:  # never export bytes that changed on disk since recording
            problem = frame_checksum_problem(
                camera, index, self.array(f"observation/image/{camera}/{FRAME_CRC}", np.uint32),
                frames, self.start)
            if problem:
                raise EpisodeSkipped(f"damaged: {problem}")
        return frames

    def _video_frames(self, camera: str, group: h5py.Group, jpeg_quality: int,
                      size: tuple[int, int] | None) -> list[Any]:
        table = np.asarray(group["packets"][()], np.int64).reshape(-1, 3)
        crcs = np.asarray(group[PACKET_CRC][()], np.uint32)
        data = group["data"][()]  # a camera's video is a few MB per minute: one read
        for number, (offset, length, _) in enumerate(table.tolist()):
            if crc32c(data[offset:offset + length]) != int(crcs[number]):
                raise EpisodeSkipped(f"damaged: camera '{camera}' video packet {number} fails its "
                                     "checksum (video bytes changed on disk)")
        shown = self.array(f"observation/image/{camera}/video_frame", np.int64)
        source = open_frame_source(self._path)
        try:
            ids = source.frame_ids(camera)
            encoded: dict[int, Any] = {}
            params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
            wanted = [s for s in range(self.start, self.end) if ids[s] >= 0]
            frames = source.iter_color(camera, wanted, size)
            try:
                for step, rgb in frames:
                    number = int(ids[step])
                    if number in encoded or rgb is None:
                        continue
                    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
                    if not ok:
                        raise EpisodeSkipped(f"camera '{camera}' frame {number} cannot be "
                                             "encoded as JPEG")
                    buf.flags.writeable = False
                    encoded[number] = buf.reshape(-1)
                    self.decoded_frames += 1
            finally:
                frames.close()
        except ValueError as exc:  # a packet that does not decode
            raise EpisodeSkipped(f"damaged: camera '{camera}' video does not decode ({exc})") \
                from None
        finally:
            source.close()
        return [encoded.get(int(n), b"") if n >= 0 else b"" for n in shown.tolist()]
