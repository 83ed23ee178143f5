"""Is an episode file intact? A cheap structural check, and a full verification.

* :func:`structural_problem` opens every object of the file and checks that the step datasets
  agree with each other and with the step count, and that every image index row points inside
  its image data. It reads object headers and the small index arrays only (milliseconds), so the
  dataset index runs it on every file it (re-)reads: flipped bytes in the file's structure show
  up as a ``damaged`` episode in ``vla-studio dataset list``.
* :func:`verify_episode` also recomputes every checksum the file carries (per frame, per depth
  frame, per committed step chunk; see :mod:`vla_studio.data.checksums`) and decodes a sample of
  frames of each camera. ``vla-studio dataset verify`` runs it; it reads the whole file.

Files recorded before checksums verify as ``"no checksums"`` (structure and sample decoding
only); they are not damaged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from vla_studio.data.checksums import (DEPTH_CRC, FRAME_CRC, STEP_CHUNKS, crc32c, depth_crc32c,
                                       parse_covers, rows_crc32c)
from vla_studio.data.episode_file import (DEPTH, FORMAT, FORMAT_VERSION, IMAGE, RECORDING_SUFFIX,
                                          STEPS)
from vla_studio.data.video_storage import (EXTRADATA, PACKET_CRC, PACKETS, VIDEO_BUFFERS,
                                           VIDEO_FRAME, is_video_format)

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_DAMAGED = "damaged"
STATUS_NO_CHECKSUMS = "no checksums"
SAMPLE_FRAMES = 8  # decoded per camera
_BLOCK_BYTES = 16 << 20  # image bytes read at a time


@dataclass
class Verification:
    """What :func:`verify_episode` found in one file.

    Attributes:
        path: the episode file.
        status: ``"ok"``, ``"damaged"`` or ``"no checksums"`` (recorded before checksums:
            only the structure and a sample of frames could be checked).
        problems: what is wrong, one line each (empty unless damaged).
        steps: the episode's step count.
        steps_checked: steps whose row checksum matched.
        frames_checked: distinct colour frames whose checksum matched.
        depth_frames_checked: depth frames whose checksum matched.
        frames_decoded: sample frames that decoded.
        has_checksums: whether the file carries checksums (files recorded before them do not).
    """

    path: Path
    status: str = STATUS_OK
    problems: list[str] = field(default_factory=list)
    steps: int = 0
    steps_checked: int = 0
    frames_checked: int = 0
    depth_frames_checked: int = 0
    frames_decoded: int = 0
    has_checksums: bool = False

    @property
    def damaged(self) -> str:
        """Why the file is damaged ('' when it is not): the first problem found."""
        return self.problems[0] if self.problems else ""

    def as_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "status": self.status, "problems": list(self.problems),
                "steps": self.steps, "steps_checked": self.steps_checked,
                "frames_checked": self.frames_checked,
                "depth_frames_checked": self.depth_frames_checked,
                "frames_decoded": self.frames_decoded}


def describe(exc: BaseException) -> str:
    """A short reason from an h5py/HDF5 error (whose messages run over several lines)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = text.splitlines()[0] if text else type(exc).__name__
    return text[:160]


# ----- the cheap structural check ------------------------------------------------------------
def structural_problem(f: h5py.File) -> str:
    """Why the open episode ``f`` is structurally damaged ('' when it is not).

    Checks the format attribute, that every object opens, that every step dataset has one row
    per step (sealed files) and agrees with ``num_steps``, and that image index rows point
    inside their image data.
    """
    try:
        return _structure(f)
    except Exception as exc:  # HDF5 reports damage as OSError/KeyError/ValueError/RuntimeError
        return f"its structure cannot be read ({describe(exc)})"


def _structure(f: h5py.File) -> str:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if fmt != FORMAT:
        return f"not a VLA Studio episode (format attribute {fmt!r})"
    if int(f.attrs.get("format_version", 0)) > FORMAT_VERSION:
        return f"episode format version {f.attrs.get('format_version')} is newer than this VLA " \
               f"Studio reads ({FORMAT_VERSION})"
    steps = f.get(STEPS)
    if not isinstance(steps, h5py.Group):
        return "it has no steps group"
    datasets: dict[str, h5py.Dataset] = {}
    problem = _walk(steps.id, "", datasets)
    if problem:
        return problem
    ts = datasets.get("timestamp")
    if ts is None or ts.ndim != 1:
        return "steps/timestamp is missing"
    t = ts.shape[0]
    sealed = not Path(f.filename).name.endswith(RECORDING_SUFFIX)
    if sealed and "num_steps" in f.attrs and int(f.attrs["num_steps"]) != t:
        return f"the num_steps attribute says {int(f.attrs['num_steps'])} but steps/timestamp " \
               f"has {t} rows"
    for name, ds in datasets.items():
        if name.startswith("observation/image/") and name.endswith("/data"):
            if ds.ndim != 1:
                return f"steps/{name} has shape {ds.shape}, expected one byte buffer"
            continue
        if name.startswith("observation/image/") and name.rsplit("/", 1)[-1] in VIDEO_BUFFERS:
            continue  # a video camera's packets: one row per frame (checked below)
        if not ds.shape or (ds.shape[0] != t if sealed else ds.shape[0] < t):
            return f"steps/{name} has {ds.shape[0] if ds.shape else 0} rows for {t} steps"
    images = f.get(IMAGE)
    for camera in (images.keys() if isinstance(images, h5py.Group) else ()):
        fmt = images[camera].attrs.get("format", "jpeg")
        if is_video_format(fmt.decode() if isinstance(fmt, bytes) else str(fmt)):
            problem = _video_structure(camera, datasets, t)
            if problem:
                return problem
            continue
        index, data = datasets.get(f"observation/image/{camera}/index"), \
            datasets.get(f"observation/image/{camera}/data")
        if index is None or data is None or index.ndim != 2 or index.shape[1] != 2:
            return f"camera '{camera}' has no valid image index and data"
        rows = index[:t]
        if (rows < 0).any():
            return f"camera '{camera}' has a negative image offset or length"
        ends = rows[:, 0] + rows[:, 1]
        if ends.size and int(ends.max()) > data.shape[0]:
            step = int(np.argmax(ends > data.shape[0]))
            return f"camera '{camera}' step {step} points past its image data"
    chunks = f.get(STEP_CHUNKS)
    if chunks is not None:
        if not isinstance(chunks, h5py.Dataset) or chunks.ndim != 2 or chunks.shape[1] != 3:
            return f"{STEP_CHUNKS} is not a [K, 3] table"
        missing = [c for c in parse_covers(chunks.attrs["covers"]) if c not in datasets]
        if missing:
            return f"{STEP_CHUNKS} covers steps/{missing[0]}, which is missing"
    return ""


def _video_structure(camera: str, datasets: dict[str, h5py.Dataset], t: int) -> str:
    """Why a video camera's datasets do not fit together ('' when they do)."""
    prefix = f"observation/image/{camera}/"
    packets, data = datasets.get(prefix + PACKETS), datasets.get(prefix + "data")
    frames, crcs = datasets.get(prefix + VIDEO_FRAME), datasets.get(prefix + PACKET_CRC)
    if packets is None or data is None or frames is None or crcs is None or \
            packets.ndim != 2 or packets.shape[1] != 3:
        return f"camera '{camera}' has no valid video packets, frames and data"
    table = packets[()]
    if crcs.shape != (table.shape[0],):
        return f"camera '{camera}' has {crcs.shape[0]} packet checksums for {table.shape[0]} " \
               "packets"
    if (table[:, :2] < 0).any():
        return f"camera '{camera}' has a negative packet offset or length"
    if len(table) and int((table[:, 0] + table[:, 1]).max()) > data.shape[0]:
        return f"camera '{camera}' video packets point past its data"
    if len(table) and not table[0, 2]:
        return f"camera '{camera}' video does not start with a key frame"
    shown = frames[:t]
    if shown.size and (int(shown.min()) < -1 or int(shown.max()) >= table.shape[0]):
        return f"camera '{camera}' steps point past its video frames"
    return ""


def _walk(group: h5py.h5g.GroupID, prefix: str, out: dict[str, h5py.Dataset]) -> str:
    """Open every object below ``group`` (naming the first that fails). Low-level handles: the
    high-level wrappers cost several times more, and this runs for every file indexed."""
    for raw in group:
        name = f"{prefix}{raw.decode('utf-8', 'replace')}"
        try:
            obj = h5py.h5o.open(group, raw)
            if isinstance(obj, h5py.h5d.DatasetID):
                _ = obj.shape, obj.dtype
        except Exception as exc:
            return f"steps/{name} cannot be read ({describe(exc)})"
        if isinstance(obj, h5py.h5g.GroupID):
            problem = _walk(obj, f"{name}/", out)
            if problem:
                return problem
        elif isinstance(obj, h5py.h5d.DatasetID):
            out[name] = h5py.Dataset(obj)
    return ""


# ----- step chunks and frames (also used by the RLDS export) ---------------------------------
def step_chunk_problem(f: h5py.File, num_steps: int) -> tuple[str, int]:
    """Recompute every committed step chunk's checksum.

    Returns:
        (why a chunk does not match or cannot be read, or ''; steps whose checksum matched).
        A file without step checksums returns ('', 0).
    """
    chunks = f.get(STEP_CHUNKS)
    if not isinstance(chunks, h5py.Dataset):
        return "", 0
    try:
        table = chunks[()]
        covers = parse_covers(chunks.attrs["covers"])
        columns = [f[f"{STEPS}/{name}"][:num_steps] for name in covers]
    except Exception as exc:
        return f"the step data cannot be read ({describe(exc)})", 0
    checked = 0
    for start, end, crc in table.tolist():
        if end > num_steps:
            continue  # rows appended after the last commit, cut when the file was sealed
        if not 0 <= start < end:
            return f"{STEP_CHUNKS} has an invalid row ({start}, {end})", checked
        if rows_crc32c(c[start:end] for c in columns) != crc:
            return f"steps {start}..{end - 1} fail their checksum (step data changed on disk)", \
                checked
        checked += end - start
    return "", checked


def frame_checksum_problem(camera: str, index: np.ndarray, crcs: np.ndarray, frames: list[Any],
                           first_step: int = 0) -> str:
    """Compare encoded frames with their stored CRCs ('' when all match).

    Args:
        camera: for the message.
        index: ``[n, 2]`` (offset, length) rows of the steps checked.
        crcs: their stored CRCs.
        frames: each step's encoded bytes (bytes or uint8 arrays; steps sharing a frame may
            share an object: it is checked once).
        first_step: step number of row 0 (for the message).
    """
    seen: dict[tuple[int, int], int] = {}
    for i, ((offset, length), stored) in enumerate(zip(index.tolist(), crcs.tolist())):
        if not length:
            continue
        key = (offset, length)
        actual = seen.get(key)
        if actual is None:
            actual = seen[key] = crc32c(frames[i])
        if actual != stored:
            return f"camera '{camera}' frame of step {first_step + i} fails its checksum " \
                   f"(image bytes {offset}..{offset + length - 1} changed on disk)"
    return ""


# ----- full verification ---------------------------------------------------------------------
def verify_episode(path: str | Path, sample_frames: int = SAMPLE_FRAMES) -> Verification:
    """Check one episode file completely (see the module docstring). Never raises."""
    result = Verification(Path(path))
    try:
        f = h5py.File(result.path, "r")
    except Exception as exc:
        result.problems.append(f"not a readable HDF5 file ({describe(exc)})")
        result.status = STATUS_DAMAGED
        return result
    try:
        _verify_open(f, result, sample_frames)
    except Exception as exc:  # damage in a place the checks above did not foresee
        result.problems.append(f"reading it failed ({describe(exc)})")
    finally:
        f.close()
    if result.problems:
        result.status = STATUS_DAMAGED
    elif not result.has_checksums:
        result.status = STATUS_NO_CHECKSUMS
    return result


def _verify_open(f: h5py.File, result: Verification, sample_frames: int) -> None:
    problem = structural_problem(f)
    if problem:
        result.problems.append(problem)
        return
    t = result.steps = int(f[f"{STEPS}/timestamp"].shape[0])
    result.has_checksums = STEP_CHUNKS in f
    problem, result.steps_checked = step_chunk_problem(f, t)
    if problem:
        result.problems.append(problem)
    images = f.get(IMAGE)
    for camera in (images.keys() if isinstance(images, h5py.Group) else ()):
        problem = _verify_camera(images[camera], camera, t, result, sample_frames)
        if problem:
            result.problems.append(problem)
    depth_crcs = f.get(DEPTH_CRC)
    for camera in (depth_crcs.keys() if isinstance(depth_crcs, h5py.Group) else ()):
        problem = _verify_depth(f, camera, t, result)
        if problem:
            result.problems.append(problem)


def _verify_camera(group: h5py.Group, camera: str, t: int, result: Verification,
                   sample_frames: int) -> str:
    fmt = group.attrs.get("format", "jpeg")
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if is_video_format(fmt):
        return _verify_video(group, camera, fmt, result, sample_frames)
    index = group["index"][:t]
    data = group["data"]
    crcs = group[FRAME_CRC][:t] if FRAME_CRC in group else None
    distinct = sorted({(o, n) for o, n in index.tolist() if n})
    frames: dict[tuple[int, int], bytes] = {}
    block, block_start = np.empty(0, np.uint8), 0
    for offset, length in distinct:  # in file order, read in large blocks
        if offset < block_start or offset + length > block_start + block.size:
            block_start = offset
            block = data[offset:min(data.shape[0], max(offset + length, offset + _BLOCK_BYTES))]
        frames[(offset, length)] = block[offset - block_start:offset - block_start + length]
    if crcs is not None:
        problem = frame_checksum_problem(camera, index, crcs,
                                         [frames.get((o, n), b"") for o, n in index.tolist()])
        if problem:
            return problem
        result.frames_checked += len(distinct)
    picks = np.linspace(0, len(distinct) - 1, min(sample_frames, len(distinct))).round()
    for k in sorted({int(p) for p in picks}) if distinct else ():
        offset, length = distinct[k]
        image = cv2.imdecode(np.ascontiguousarray(frames[(offset, length)]), cv2.IMREAD_COLOR)
        if image is None:
            step = next(i for i, (o, n) in enumerate(index.tolist()) if (o, n) == (offset, length))
            return f"camera '{camera}' frame of step {step} does not decode as an image"
        result.frames_decoded += 1
    return ""


def _verify_video(group: h5py.Group, camera: str, codec: str, result: Verification,
                  sample_frames: int) -> str:
    """Every packet against its CRC, then a sample of groups of pictures decoded."""
    from vla_studio.data.video_codec import FrameDecoder, VideoCodecError

    table = np.asarray(group[PACKETS][()], np.int64).reshape(-1, 3)
    crcs = np.asarray(group[PACKET_CRC][()], np.uint32)
    data = group["data"]
    packets: list[bytes] = []
    block, block_start = np.empty(0, np.uint8), 0
    for number, (offset, length, _) in enumerate(table.tolist()):
        if offset < block_start or offset + length > block_start + block.size:
            block_start = offset
            block = data[offset:min(data.shape[0], max(offset + length, offset + _BLOCK_BYTES))]
        packet = block[offset - block_start:offset - block_start + length]
        if crc32c(packet) != int(crcs[number]):
            return f"camera '{camera}' video packet {number} fails its checksum (video bytes " \
                   f"{offset}..{offset + length - 1} changed on disk)"
        packets.append(packet.tobytes())
    result.frames_checked += len(packets)
    keys = np.flatnonzero(table[:, 2] != 0)
    if not keys.size:
        return ""
    extradata = group.get(EXTRADATA)
    try:
        decoder = FrameDecoder(codec, bytes(extradata[()]) if extradata is not None and
                               extradata.size else b"")
    except VideoCodecError as exc:
        return f"camera '{camera}' video cannot be decoded here ({exc})"
    picks = sorted({int(keys[int(k)]) for k in
                    np.linspace(0, keys.size - 1, min(sample_frames, keys.size)).round()})
    for key in picks:  # the key frame and the frame after it decode
        decoder.seek(key)
        end = min(len(packets), key + 2)
        got = 0
        try:
            for number in range(key, end):
                decoder.feed(number, packets[number])
            decoder.drain()
            while decoder.next_frame() is not None:
                got += 1
        except Exception as exc:  # noqa: BLE001 - FFmpeg reports damage as many error types
            return f"camera '{camera}' video frame {key} does not decode ({describe(exc)})"
        if got != end - key:
            return f"camera '{camera}' video frames {key}..{end - 1} do not decode"
        result.frames_decoded += got
    return ""


def _verify_depth(f: h5py.File, camera: str, t: int, result: Verification) -> str:
    crcs = f[f"{DEPTH_CRC}/{camera}"][:t]
    depth = f.get(f"{DEPTH}/{camera}")
    if not isinstance(depth, h5py.Dataset):
        return f"camera '{camera}' has depth checksums but no depth stream"
    rows = max(1, (64 << 20) // max(1, int(np.prod(depth.shape[1:])) * 2))
    for start in range(0, t, rows):
        try:
            block = depth[start:min(t, start + rows)]
        except Exception as exc:
            return f"camera '{camera}' depth frames from step {start} cannot be read " \
                   f"({describe(exc)})"
        for i, frame in enumerate(block):
            if depth_crc32c(frame) != int(crcs[start + i]):
                return f"camera '{camera}' depth frame of step {start + i} fails its checksum"
        result.depth_frames_checked += len(block)
    return ""
