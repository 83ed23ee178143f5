"""The episode file: one HDF5 file per episode, its layout, and the reader every consumer uses.

Layout (format ``vla-studio-episode``, version 1; RLDS names so export is a mapping)::

    /                                   root attrs: format, format_version, episode_id (UUID),
                                        created (ISO-8601 UTC), language_instruction,
                                        language_instructions (JSON, primary first), task,
                                        success (int8 -1/0/1), success_source (operator/robot/""),
                                        status (recording/complete/recovered), operator, notes,
                                        scene_id, station_id, station_name, station_profile (TOML),
                                        robot_type, action_space_kind, action_names (JSON),
                                        cameras (JSON: type, size, fps, intrinsics, depth_scale),
                                        control_rate_hz, software_version, policy_id,
                                        confidence_mean/_min/_method (policy runs), seed (-1 =
                                        none), num_steps, duration_s, start_time_unix,
                                        start_time_monotonic, safety_counts, camera_stats (JSON:
                                        frames/duplicates/gaps/drops/late per camera),
                                        source_counts (JSON), flags (JSON list), dropped_steps
    steps/action                        float32 [T, D]  what the robot received
    steps/requested_action              float32 [T, D]  NaN rows when the loop held
    steps/action_source                 uint8 [T]       0 hold, 1 teleop, 2 policy, 3 intervention,
                                        4 paused (held because the run was paused; files
                                        from before 4 existed hold those steps as 0); the
                                        DAgger labels derive from it (vla_studio.data.dagger)
    steps/safety_flags                  uint32 [T]
    steps/is_first|is_last|is_terminal  bool [T]
    steps/reward, steps/discount        float32 [T]
    steps/timestamp                     float64 [T]     host monotonic tick time (attr t0_unix)
    steps/policy_action, confidence     policy/DAgger runs only (NaN where no policy drove)
    steps/policy_latency_ms             float32 [T]   observation-to-chunk latency of the step's
                                        chunk (NaN = none); chunk_seq int32 [T] that chunk's
                                        number in the run, chunk_index int32 [T] the action's
                                        index in it (-1 = none); policy runs only (files
                                        recorded before them have none of the three)
    steps/observation/state/<key>       float32 [T, ...]
    steps/observation/image/<cam>/data          uint8 [N]   concatenated JPEG/PNG bytes
    steps/observation/image/<cam>/index         int64 [T, 2] (offset, length); length 0 = no image
    steps/observation/image/<cam>/crc32c        uint32 [T]  CRC-32C of the bytes index points at
    steps/observation/image/<cam>/frame_index   int64 [T]   camera sequence number, -1 = none
    steps/observation/image/<cam>/capture_time  float64 [T] host monotonic
    steps/observation/image/<cam>/device_time   float64 [T] NaN when the device gives none
        (a camera transcoded to video has data/packets/packet_crc32c/video_frame instead of
        data/index/crc32c, and format "av1" or "h264": see vla_studio.data.video_storage)
    steps/observation/depth/<cam>               uint16 [T, H, W] (shuffle + deflate, lossless)
    steps/observation/depth_crc32c/<cam>        uint32 [T]  CRC-32C of each raw depth frame
    steps/observation/timing/<cam>/...          frame_index/capture_time/device_time of
                                                depth-only cameras (no colour image group)
    checksums/step_chunks               int64 [K, 3] (start, end, CRC-32C) per appended batch
                                        of steps, over the columns in its attr ``covers``
                                        (every fixed-size step dataset except is_first,
                                        is_last, is_terminal and reward, which sealing sets)
    annotations/                        legacy only: edits made by older versions (now in
                                        the sidecar; read while no sidecar exists)

A sealed file is never written again. Labels decided later (success marked after saving,
instructions, quality, notes, trim, segments) and their edit log live in the sidecar
``<name>.annotations.json`` beside it (see :mod:`vla_studio.data.annotations`); every reader
merges them over the root attributes. ``steps/reward`` as stored reflects the success known when
the file was sealed; :meth:`EpisodeReader.step` derives it from the current success label
instead (1 on the last step of a success only).

Checksums (see :mod:`vla_studio.data.checksums` for exactly what each covers) are written while
recording; files recorded before them have none and still read. :mod:`vla_studio.data.integrity`
checks the structure (at index time) and every checksum (``vla-studio dataset verify``).

While an episode is recorded its file is ``<name>.h5.recording`` (HDF5 SWMR, flushed every
fraction of a second, committed step count in ``_journal/committed_steps``); it becomes
``<name>.h5`` with status ``complete`` when saved, or ``recovered`` after a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from vla_studio.core.types import SourceKind
from vla_studio.data.annotations import AnnotationState, load_annotations

FORMAT = "vla-studio-episode"
FORMAT_VERSION = 1
EPISODE_SUFFIX = ".h5"
RECORDING_SUFFIX = ".h5.recording"

STATUS_RECORDING = "recording"
STATUS_COMPLETE = "complete"
STATUS_RECOVERED = "recovered"

SUCCESS_UNKNOWN, SUCCESS_FAILURE, SUCCESS_SUCCESS = -1, 0, 1

SOURCE_LABELS = ("hold", "teleop", "policy", "intervention", "paused")
SOURCE_CODES = {SourceKind.HOLD: 0, SourceKind.TELEOP: 1, SourceKind.POLICY: 2,
                SourceKind.INTERVENTION: 3}
HOLD, TELEOP, POLICY, INTERVENTION, PAUSED = range(5)
PAUSED_PREFIX = "paused: "  # the control loop's hold reason while the session is not running


def source_code(source: SourceKind, hold_reason: str = "") -> int:
    """The ``steps/action_source`` code of a step: a hold while the run was paused is
    ``PAUSED`` (4), any other hold ``HOLD`` (0)."""
    if source == SourceKind.HOLD and hold_reason.startswith(PAUSED_PREFIX):
        return PAUSED
    return SOURCE_CODES.get(source, HOLD)

# Root attributes stored as JSON text (decoded by the reader).
JSON_ATTRS = frozenset({"language_instructions", "action_names", "cameras", "safety_counts",
                        "camera_stats", "source_counts", "flags"})

STEPS = "steps"
STATE = "steps/observation/state"
IMAGE = "steps/observation/image"
DEPTH = "steps/observation/depth"
TIMING = "steps/observation/timing"
JOURNAL = "_journal"
COMMITTED = "_journal/committed_steps"
# Step columns whose values follow the success label (see EpisodeReader.step): the reward and
# is_terminal of the last step are 1/True only for a success (RLDS offline-RL semantics: an
# episode that ended without success is truncated, not terminal), whatever was sealed.
DERIVED_STEPS = frozenset({"reward", "is_terminal"})


class EpisodeFileError(ValueError):
    """A file that is not a readable VLA Studio episode; the message names the file and why."""


def success_to_bool(value: Any) -> bool | None:
    """-1/0/1 (or None/bool) as stored -> None/False/True."""
    if value is None:
        return None
    v = int(value)
    return None if v < 0 else bool(v)


def success_to_code(value: bool | None) -> int:
    return SUCCESS_UNKNOWN if value is None else (SUCCESS_SUCCESS if value else SUCCESS_FAILURE)


def decode_attrs(attrs: h5py.AttributeManager, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """Root attributes (all, or only ``keys`` that exist) as plain Python values, JSON fields
    decoded."""
    out: dict[str, Any] = {}
    for key in (attrs if keys is None else [k for k in keys if k in attrs]):
        value = attrs[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        if key in JSON_ATTRS and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # keep the raw text rather than hide the attribute
        out[key] = value
    return out


class EpisodeReader:
    """Read one episode file (complete, recovered, or still recording).

    The file is opened on first use (or on ``with``), read-only; a ``.h5.recording`` file is
    opened in SWMR mode and shows only its committed steps. Use as a context manager::

        with EpisodeReader(path) as ep:
            jpeg = ep.image_bytes("front", 0)
            actions = ep.step("action")

    Args:
        path: the episode file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f: h5py.File | None = None
        self._attrs: dict[str, Any] | None = None
        self._annotations: AnnotationState | None = None
        self._index_cache: dict[str, np.ndarray] = {}

    # ----- opening ---------------------------------------------------------------------------
    @property
    def file(self) -> h5py.File:
        """The open ``h5py.File`` (opened on first access)."""
        if self._f is None:
            live = self.path.name.endswith(RECORDING_SUFFIX)
            try:
                f = h5py.File(self.path, "r", swmr=live)
            except FileNotFoundError:
                raise EpisodeFileError(f"{self.path}: no such episode file") from None
            except OSError as exc:
                raise EpisodeFileError(f"{self.path}: not a readable HDF5 file ({exc})") from None
            fmt = f.attrs.get("format")
            if fmt != FORMAT:
                f.close()
                raise EpisodeFileError(f"{self.path}: not a VLA Studio episode (format attribute "
                                       f"is {fmt!r}, expected {FORMAT!r})")
            self._f = f
        return self._f

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> "EpisodeReader":
        _ = self.file
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- metadata --------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes, JSON fields decoded (``cameras`` is a dict, ``flags`` a list...)."""
        if self._attrs is None:
            self._attrs = decode_attrs(self.file.attrs)
        return self._attrs

    @property
    def annotations(self) -> dict[str, Any]:
        """The labels decided after recording (the sidecar's, else a legacy in-file group's;
        empty when none were made). See :mod:`vla_studio.data.annotations`."""
        return self.annotation_state.annotations

    @property
    def annotation_state(self) -> AnnotationState:
        """The annotations with their edit log, origin and any problem reading the sidecar."""
        if self._annotations is None:
            self._annotations = load_annotations(self.path, self.file)
        return self._annotations

    @property
    def num_steps(self) -> int:
        if self.path.name.endswith(RECORDING_SUFFIX) and COMMITTED in self.file:
            committed = self.file[COMMITTED]
            committed.refresh()
            return min(int(committed[0]), self.file[f"{STEPS}/timestamp"].shape[0])
        return int(self.file[f"{STEPS}/timestamp"].shape[0])

    @property
    def cameras(self) -> list[str]:
        """Cameras with colour images, in the station's order."""
        group = self.file.get(IMAGE)
        if group is None:
            return []
        order = list(self.attrs.get("cameras") or {})
        names = set(group.keys())
        return [n for n in order if n in names] + sorted(names - set(order))

    @property
    def depth_cameras(self) -> list[str]:
        group = self.file.get(DEPTH)
        return sorted(group.keys()) if group is not None else []

    def image_format(self, camera: str) -> str:
        """How the camera's colour frames are stored: ``"jpeg"`` or ``"png"`` (encoded images,
        one per frame), or ``"av1"`` / ``"h264"`` (video; see
        :mod:`vla_studio.data.video_storage`)."""
        value = self._image_group(camera).attrs["format"]
        return value.decode() if isinstance(value, bytes) else str(value)

    @property
    def storage(self) -> str:
        """The episode's colour storage in one word: ``jpeg``, ``png``, ``av1``, ``h264``,
        ``mixed`` or ``none``."""
        from vla_studio.data.video_storage import camera_formats, storage_of

        return storage_of(camera_formats(self.file))

    def frames(self):
        """A :class:`~vla_studio.data.frame_source.FrameSource` of this episode's frames, for
        any storage (its own file handle; close it when done)."""
        from vla_studio.data.video_storage import open_frame_source

        return open_frame_source(self.path)

    def image_size(self, camera: str) -> tuple[int, int]:
        """``(width, height)`` of the camera's colour images."""
        g = self._image_group(camera)
        return int(g.attrs["width"]), int(g.attrs["height"])

    # ----- data ------------------------------------------------------------------------------
    def image_index(self, camera: str) -> np.ndarray:
        """``[T, 2]`` (offset, length) of each step's encoded image (length 0 = none).

        The encoded-image accessors (this, :meth:`image_bytes`, :meth:`iter_image_bytes`) work
        for JPEG/PNG storage; a camera stored as video is read through :meth:`frames`.
        """
        if camera not in self._index_cache:
            group = self._image_group(camera)
            if "index" not in group:
                raise EpisodeFileError(
                    f"{self.path.name}: camera {camera!r} is stored as "
                    f"{self.image_format(camera)} video, not as encoded images; read its "
                    "frames through EpisodeReader.frames()")
            self._index_cache[camera] = group["index"][: self.num_steps]
        return self._index_cache[camera]

    def image_bytes(self, camera: str, i: int) -> bytes:
        """Encoded image of step ``i`` (b"" when the step has no image)."""
        n = self.num_steps
        if not -n <= i < n:
            raise IndexError(f"step {i} out of range (episode has {n} steps)")
        offset, length = (int(v) for v in self.image_index(camera)[i])
        if length == 0:
            return b""
        return self._image_group(camera)["data"][offset:offset + length].tobytes()

    def iter_image_bytes(self, camera: str, block_bytes: int = 16 << 20) -> Iterator[bytes]:
        """Every step's encoded image in order (b"" for none), reading the byte buffer in large
        blocks: much faster than :meth:`image_bytes` per step for whole-episode passes."""
        index = self.image_index(camera)
        data = self._image_group(camera)["data"]
        block, block_start = np.empty(0, np.uint8), 0
        for offset, length in index.tolist():
            if length == 0:
                yield b""
                continue
            if offset < block_start or offset + length > block_start + block.size:
                block_start = offset
                end = min(data.shape[0], max(offset + length, offset + block_bytes))
                block = data[block_start:end]
            yield block[offset - block_start: offset - block_start + length].tobytes()

    def depth(self, camera: str) -> np.ndarray | None:
        """``[T, H, W]`` uint16 depth of ``camera``, or None when it has none."""
        ds = self.file.get(f"{DEPTH}/{camera}")
        return None if ds is None else ds[: self.num_steps]

    def state(self) -> dict[str, np.ndarray]:
        """Every robot state feature, ``[T, ...]`` float32."""
        group = self.file.get(STATE)
        if group is None:
            return {}
        n = self.num_steps
        return {k: group[k][:n] for k in group.keys()}

    def step(self, name: str) -> np.ndarray:
        """Any dataset under ``steps/`` by its relative path, e.g. ``"action"``, ``"reward"``,
        ``"observation/image/front/capture_time"``.

        ``reward`` follows the episode's current success label (which may have been set after
        the file was sealed): 1 on the last step of a success, 0 everywhere else.
        """
        ds = self.file.get(f"{STEPS}/{name}")
        if not isinstance(ds, h5py.Dataset):
            raise KeyError(f"{self.path.name}: no dataset steps/{name}")
        rows = ds[: self.num_steps]
        if name in DERIVED_STEPS and not self.path.name.endswith(RECORDING_SUFFIX):
            rows = np.zeros_like(rows)
            if len(rows) and self.success() is True:
                rows[-1] = 1
        return rows

    def has_step(self, name: str) -> bool:
        return isinstance(self.file.get(f"{STEPS}/{name}"), h5py.Dataset)

    # ----- labels, annotations first ---------------------------------------------------------
    def instructions(self) -> list[str]:
        """Language instructions, primary first (annotations override the recorded ones)."""
        ann = self.annotations.get("instructions")
        if ann:
            return [str(s) for s in ann]
        recorded = self.attrs.get("language_instructions")
        if isinstance(recorded, list) and recorded:
            return [str(s) for s in recorded]
        primary = self.attrs.get("language_instruction", "")
        return [primary] if primary else []

    def success(self) -> bool | None:
        """Whether the episode succeeded (annotation first); None when unknown."""
        if "success" in self.annotations:
            return success_to_bool(self.annotations["success"])
        return success_to_bool(self.attrs.get("success", SUCCESS_UNKNOWN))

    def success_source(self) -> str:
        """Who decided :meth:`success` (``operator``, ``robot``, ``researcher`` or '')."""
        if "success" in self.annotations:
            return str(self.annotations.get("success_source", ""))
        return str(self.attrs.get("success_source", ""))

    def trim(self) -> tuple[int, int]:
        """``[start, end)`` step range to use (the whole episode unless trimmed)."""
        n = self.num_steps
        trim = self.annotations.get("trim")
        if trim is None:
            return 0, n
        start, end = int(trim[0]), int(trim[1])
        return max(0, min(start, n)), max(0, min(end, n))

    def _image_group(self, camera: str) -> h5py.Group:
        group = self.file.get(f"{IMAGE}/{camera}")
        if group is None:
            raise KeyError(f"{self.path.name}: no colour images for camera {camera!r}; "
                           f"cameras: {', '.join(self.cameras) or '(none)'}")
        return group
