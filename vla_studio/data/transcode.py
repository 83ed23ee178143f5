"""Transcode a sealed episode's JPEG cameras to video, without ever risking the recording.

```
 <name>.h5 (JPEG, sealed)  --read, check every checksum-->  encode per camera, decode each packet
         |                                                  as it comes out, PSNR vs its JPEG
         |                                                          |
         |                 <name>.h5.compacting  <--write: steps copied as they are, depth
         |                          |                 copied lossless, video + packet CRCs,
         |                          |                 step checksums recomputed; fsync
         |                          v
         |               verify from disk: structure, every checksum, every packet decoded
         |               again (count, order, the same pictures as checked), timing equal
         |                          |
         +---- commit: under the folder lock, if <name>.h5 is still the file that was read,
               rename <name>.h5.compacting over it and fsync the folder
```
The JPEG version is the only version until the rename, and the video version after it; the
rename is atomic, so a crash (even ``kill -9`` or a power cut) or a full disk at any moment
leaves a valid episode: the JPEG one, the video one, or the JPEG one plus a stale
``.compacting`` file that :func:`remove_stale_temporaries` deletes. The episode keeps its
path, its id and its annotations sidecar; readers that had the old file open go on reading it.

An episode whose checksums do not match, whose JPEGs do not decode, or whose video does not
pass the checks is left as it is (the result says why). PNG (lossless) episodes are not
transcoded: whoever chose lossless images keeps them.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import os
import resource
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import h5py
import numpy as np

from vla_studio import __version__
from vla_studio.data.annotations import folder_lock, fsync_folder
from vla_studio.data.checksums import FRAME_CRC, STEP_CHUNKS, crc32c
from vla_studio.data.episode_file import (EPISODE_SUFFIX, FORMAT, IMAGE, RECORDING_SUFFIX, STEPS,
                                          STATUS_RECORDING, decode_attrs)
from vla_studio.data.episode_copy import (camera_rates, copy_attrs, copy_tree,
                                          distinct_frames, estimate_video_bytes, frame_numbers,
                                          frames_in_order, fsync_file, step_frames,
                                          write_step_chunks)
from vla_studio.data.transcode_files import (TEMP_SUFFIX, TranscodeBusy, discard_temporary,
                                             file_signature, remove_stale_temporaries, temp_lock,
                                             temp_path_for)
from vla_studio.data.integrity import (frame_checksum_problem, step_chunk_problem,
                                       structural_problem, verify_episode)
from vla_studio.data.video_codec import (PIX_FMT, FrameDecoder, FrameEncoder, VideoCodecError,
                                         VideoSettings, psnr_db, to_rgb)
from vla_studio.data.video_storage import (EXTRADATA, PACKET_CRC, PACKETS, STORAGE_ATTR,
                                           VIDEO_FRAME, camera_formats, is_video_format)

log = logging.getLogger(__name__)
# The temporary files' helpers live in transcode_files; the transcoder's callers find them here.
__all__ = ["TEMP_SUFFIX", "TranscodeBusy", "discard_temporary", "remove_stale_temporaries",
           "temp_lock", "temp_path_for", "file_signature", "transcode_episode",
           "commit_transcoded", "transcode_reason", "TranscodeResult", "TranscodeControl",
           "TranscodeCancelled", "CameraReport"]

# Free space that must remain after the video is written (the recorder needs the disk more).
MIN_FREE_AFTER_BYTES = 256 << 20
# Per-step datasets of a JPEG camera group that the video replaces.
_JPEG_ONLY = ("data", "index", FRAME_CRC)

OUTCOME_TRANSCODED = "transcoded"  # the episode is now stored as video
OUTCOME_READY = "ready"  # written and verified, not yet committed (commit=False)
OUTCOME_SKIPPED = "skipped"  # nothing to do (already video, PNG, still recording, ...)
OUTCOME_FAILED = "failed"  # left as it was; ``message`` says why
OUTCOME_NO_SPACE = "no_space"  # left as it was: the disk is (too) full; try again later
OUTCOME_CHANGED = "changed"  # the episode was moved or replaced meanwhile: nothing committed
OUTCOME_CANCELLED = "cancelled"


class TranscodeCancelled(Exception):
    """Raised by a :class:`TranscodeControl` checkpoint to stop (the JPEG episode stays)."""


class TranscodeControl:
    """Lets the caller stop a transcode between frames (the background compactor pauses a
    worker process with signals instead). Override :meth:`checkpoint`."""

    def checkpoint(self) -> None:
        """Called before every frame; raise :class:`TranscodeCancelled` to stop."""


@dataclass
class CameraReport:
    """What transcoding one camera did."""

    frames: int = 0
    jpeg_bytes: int = 0
    video_bytes: int = 0
    psnr_db_mean: float = 0.0
    psnr_db_min: float = 0.0


@dataclass
class TranscodeResult:
    """The outcome of :func:`transcode_episode` (JSON-friendly: the worker process prints it).

    Attributes:
        path: the episode file.
        outcome: one of the ``OUTCOME_*`` words.
        message: why, for anything but a success.
        bytes_before, bytes_after: the episode file's size before and after.
        frames: colour frames transcoded (every camera).
        psnr_db_mean, psnr_db_min: over every frame of every camera, against the JPEGs.
        cpu_s, wall_s: what it cost (this thread / the process's children excluded).
        cameras: per-camera figures.
        signature: the episode file's (inode, size, mtime_ns) when it was read (commit checks
            it is still that file).
        temp_path: the verified file awaiting its commit (outcome ``ready``).
    """

    path: str
    outcome: str
    message: str = ""
    bytes_before: int = 0
    bytes_after: int = 0
    frames: int = 0
    psnr_db_mean: float = 0.0
    psnr_db_min: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    cameras: dict[str, CameraReport] = field(default_factory=dict)
    signature: tuple[int, int, int] = (0, 0, 0)
    temp_path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TranscodeResult":
        data = dict(data)
        data["cameras"] = {k: CameraReport(**v) for k, v in (data.get("cameras") or {}).items()}
        data["signature"] = tuple(data.get("signature") or (0, 0, 0))
        return cls(**data)


def transcode_reason(path: Path) -> str:
    """Why ``path`` is not a candidate for transcoding ('' when it is). Opens the file."""
    if path.name.endswith(RECORDING_SUFFIX) or not path.name.endswith(EPISODE_SUFFIX):
        return "not a sealed episode file"
    try:
        with h5py.File(path, "r") as f:
            return _reason(f)
    except OSError as exc:
        return f"cannot be read ({str(exc).splitlines()[0] if str(exc) else exc})"


def _reason(f: h5py.File) -> str:
    if f.attrs.get("format") != FORMAT:
        return "not a VLA Studio episode"
    status = decode_attrs(f.attrs, ("status",)).get("status", "")
    if status == STATUS_RECORDING:
        return "still being recorded"
    formats = camera_formats(f)
    if not formats:
        return "no colour cameras"
    jpeg = [c for c, fmt in formats.items() if fmt == "jpeg"]
    if not jpeg:
        if all(is_video_format(fmt) for fmt in formats.values()):
            return "already stored as video"
        return "stored as lossless PNG (kept lossless)"
    return ""


def transcode_episode(path: str | Path, settings: VideoSettings | None = None, *,
                      commit: bool = True, control: TranscodeControl | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      reserve_bytes: int = MIN_FREE_AFTER_BYTES) -> TranscodeResult:
    """Transcode one sealed episode's JPEG cameras to video (see the module docstring).

    Args:
        path: the episode file.
        settings: codec and quality.
        commit: replace the episode at the end; False stops at a verified temporary file
            (outcome ``ready``) for :func:`commit_transcoded` (the background compactor commits
            in its own process, which is never paused in the middle of it).
        control: checked before every frame (cancel).
        progress: called with (frames done, frames) now and then.
        reserve_bytes: free space that must remain after the video is written (the recorder
            needs the disk more than the transcoder does).

    Never raises for a damaged episode, a full disk or a codec failure: the result says what
    happened, and the episode is untouched unless the outcome is ``transcoded``.
    """
    settings = settings or VideoSettings()
    path = Path(path)
    control = control or TranscodeControl()
    t0, c0 = time.monotonic(), _thread_cpu()
    result = TranscodeResult(str(path), OUTCOME_FAILED)
    temp = temp_path_for(path)
    try:
        result.signature = file_signature(path)
        result.bytes_before = result.signature[1]
        with temp_lock(temp):  # the temporary file is this call's until the lock is released
            try:
                _transcode(path, temp, settings, control, progress, result, reserve_bytes)
                if result.outcome == OUTCOME_READY and commit:
                    _commit_locked(result)
            finally:
                if result.outcome not in (OUTCOME_READY, OUTCOME_TRANSCODED):
                    temp.unlink(missing_ok=True)
    except TranscodeBusy as exc:
        result.outcome, result.message = OUTCOME_SKIPPED, str(exc)
    except TranscodeCancelled:
        result.outcome, result.message = OUTCOME_CANCELLED, "cancelled"
    except FileNotFoundError:
        result.outcome, result.message = OUTCOME_CHANGED, "the episode file is gone"
    except OSError as exc:
        full = _is_disk_full(exc)
        result.outcome = OUTCOME_NO_SPACE if full else OUTCOME_FAILED
        result.message = ("the disk is full" if full else "") or f"I/O error: {_short(exc)}"
    except (VideoCodecError, ValueError, KeyError, RuntimeError) as exc:
        full = _is_disk_full(exc)
        result.outcome = OUTCOME_NO_SPACE if full else OUTCOME_FAILED
        result.message = "the disk is full" if full else _short(exc)
    finally:
        result.wall_s = round(time.monotonic() - t0, 3)
        result.cpu_s = round(_thread_cpu() - c0, 3)
    if result.outcome not in (OUTCOME_TRANSCODED, OUTCOME_READY, OUTCOME_SKIPPED):
        log.debug("transcode of %s: %s (%s)", path.name, result.outcome, result.message)
    return result


def commit_transcoded(result: TranscodeResult) -> TranscodeResult:
    """Put a verified temporary file (outcome ``ready``) in place of its episode: under the
    episode folder's lock (trash and restore take it too), only if the episode is still the
    file that was read. Updates and returns ``result``."""
    try:
        with temp_lock(temp_path_for(Path(result.path))):
            return _commit_locked(result)
    except TranscodeBusy as exc:
        result.outcome, result.message = OUTCOME_CHANGED, str(exc)
        return result


def _commit_locked(result: TranscodeResult) -> TranscodeResult:
    path, temp = Path(result.path), temp_path_for(Path(result.path))
    if result.outcome != OUTCOME_READY or not temp.exists():
        result.outcome, result.message = OUTCOME_FAILED, "no verified file to commit"
        return result
    with folder_lock(path.parent):
        try:
            current = file_signature(path)
        except FileNotFoundError:
            current = None
        if current != tuple(result.signature):
            temp.unlink(missing_ok=True)
            result.outcome = OUTCOME_CHANGED
            result.message = ("the episode was moved or deleted meanwhile" if current is None
                              else "the episode file changed meanwhile")
            return result
        os.replace(temp, path)
        fsync_folder(path.parent)
    result.bytes_after = path.stat().st_size
    result.outcome, result.temp_path = OUTCOME_TRANSCODED, ""
    return result


# ----- the work ------------------------------------------------------------------------------
def _transcode(path: Path, temp: Path, settings: VideoSettings, control: TranscodeControl,
               progress: Callable[[int, int], None] | None, result: TranscodeResult,
               reserve_bytes: int) -> None:
    temp.unlink(missing_ok=True)  # a leftover of an interrupted run
    with h5py.File(path, "r") as src:
        reason = _reason(src)
        if reason:
            result.outcome, result.message = OUTCOME_SKIPPED, reason
            return
        t = int(src[f"{STEPS}/timestamp"].shape[0])
        damaged = structural_problem(src) or step_chunk_problem(src, t)[0]
        if damaged:
            result.message = f"the episode is damaged ({damaged}); left as recorded"
            return
        formats = camera_formats(src)
        jpeg = [c for c, fmt in formats.items() if fmt == "jpeg"]
        needed = estimate_video_bytes(src, jpeg) + reserve_bytes
        if shutil.disk_usage(path.parent).free < needed:
            result.outcome = OUTCOME_NO_SPACE
            result.message = (f"{needed / 1e6:.0f} MB of free space needed beside the episode "
                              "to transcode it")
            return
        total = sum(len(distinct_frames(src[f"{IMAGE}/{c}/index"][:t])) for c in jpeg)
        counter = _Progress(total, progress)
        checks: dict[str, list[int]] = {}
        with h5py.File(temp, "w-", libver="latest") as dst:
            copy_attrs(src.attrs, dst.attrs)
            dst.attrs[STORAGE_ATTR] = "video" if len(jpeg) == len(formats) else "mixed"
            dst.attrs["storage_history"] = json.dumps(
                [*json.loads(_text(src.attrs.get("storage_history")) or "[]"),
                 {"from": "jpeg", "to": settings.codec, "cameras": jpeg,
                  "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "software_version": __version__}])
            skip = {f"/{IMAGE}/{c}" for c in jpeg} | {f"/{STEP_CHUNKS}"}
            copy_tree(src, dst, skip)
            fps = camera_rates(src)
            for cam in jpeg:
                report, checks[cam] = _transcode_camera(
                    src[f"{IMAGE}/{cam}"], dst.require_group(f"{IMAGE}/{cam}"), t, settings,
                    fps.get(cam, 0.0), control, counter)
                result.cameras[cam] = report
            write_step_chunks(src, dst, t)
            dst.flush()
        fsync_file(temp)
    _verify_written(path, temp, jpeg, checks, t)
    frames = sum(r.frames for r in result.cameras.values())
    result.frames = frames
    if frames:
        result.psnr_db_mean = round(sum(r.psnr_db_mean * r.frames for r in
                                        result.cameras.values()) / frames, 2)
        result.psnr_db_min = round(min(r.psnr_db_min for r in result.cameras.values()), 2)
    result.bytes_after = temp.stat().st_size
    result.outcome, result.temp_path = OUTCOME_READY, str(temp)


def _transcode_camera(src: h5py.Group, dst: h5py.Group, t: int, settings: VideoSettings,
                      fps: float, control: TranscodeControl, counter: "_Progress"
                      ) -> tuple[CameraReport, list[int]]:
    """Encode one camera; every packet is decoded as it comes out and compared with its JPEG.
    Returns the report and a CRC of each decoded picture (checked again from disk)."""
    name = src.name.rsplit("/", 1)[-1]
    index = np.asarray(src["index"][:t], np.int64)
    distinct = distinct_frames(index)
    if FRAME_CRC in src:  # never transcode bytes that changed on disk since recording
        problem = frame_checksum_problem(name, index, np.asarray(src[FRAME_CRC][:t], np.uint32),
                                         list(step_frames(src["data"], index)))
        if problem:
            raise ValueError(f"the episode is damaged ({problem}); left as recorded")
    width, height = int(src.attrs["width"]), int(src.attrs["height"])
    encoder = FrameEncoder(settings, width, height, fps)
    checker = FrameDecoder(settings.codec)
    checker.seek(0)
    waiting: collections.deque[np.ndarray] = collections.deque()  # encoded, not yet decoded
    packets: list[tuple[bytes, bool]] = []
    psnrs: list[float] = []
    pictures: list[int] = []

    def take(out: list[tuple[bytes, bool]]) -> None:
        for data, key in out:
            checker.feed(len(packets), data)
            packets.append((data, key))
        check()

    def check() -> None:
        while (frame := checker.next_frame()) is not None:
            if not waiting:
                raise ValueError(f"camera {name!r}: the encoder gave more frames than it was fed")
            reference = waiting.popleft()
            decoded = to_rgb(frame)  # as every reader converts it
            psnrs.append(psnr_db(reference, decoded))
            pictures.append(_picture_crc(frame))
            if psnrs[-1] < settings.min_psnr_db:
                raise ValueError(f"camera {name!r} frame {len(psnrs) - 1} decodes at "
                                 f"{psnrs[-1]:.1f} dB against its JPEG (under "
                                 f"{settings.min_psnr_db:g} dB): not transcoded")

    jpeg_bytes = 0
    try:
        for number, data in enumerate(frames_in_order(src["data"], distinct)):
            control.checkpoint()
            jpeg_bytes += len(data)
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape != (height, width, 3):
                raise ValueError(f"camera {name!r} frame {number} is not a {width}x{height} "
                                 "JPEG")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            waiting.append(rgb)
            take(encoder.encode(rgb))
            counter.step()
        take(encoder.encode(None))
    finally:
        encoder.close()
    checker.drain()
    check()
    if len(packets) != len(distinct) or len(psnrs) != len(distinct) or waiting:
        raise ValueError(f"camera {name!r}: {len(distinct)} frames gave {len(packets)} packets "
                         f"and {len(psnrs)} decoded frames")
    if packets and not packets[0][1]:
        raise ValueError(f"camera {name!r}: the video does not start with a key frame")

    # Layout (see vla_studio.data.video_storage).
    attrs = {k: v for k, v in src.attrs.items() if k != "format"}
    copy_attrs(attrs, dst.attrs)
    dst.attrs.update({"format": settings.codec, "source_format": "jpeg",
                      "encoder": settings.encoder_name, "pix_fmt": PIX_FMT, "fps": float(fps),
                      "gop": encoder.gop, "crf": int(settings.crf),
                      "preset": settings.effective_preset(),
                      "psnr_db_mean": round(float(np.mean(psnrs)), 3) if psnrs else 0.0,
                      "psnr_db_min": round(float(np.min(psnrs)), 3) if psnrs else 0.0})
    for key, ds in src.items():  # per-step timing, exactly as recorded
        if key not in _JPEG_ONLY and isinstance(ds, h5py.Dataset):
            src.copy(ds, dst, name=key)
    blob = np.frombuffer(b"".join(p for p, _ in packets), np.uint8)
    table = np.zeros((len(packets), 3), np.int64)
    if packets:
        lengths = np.array([len(p) for p, _ in packets], np.int64)
        table[:, 0] = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        table[:, 1] = lengths
        table[:, 2] = [int(k) for _, k in packets]
    dst.create_dataset("data", data=blob)  # contiguous: written once, never resized or padded
    dst.create_dataset(PACKETS, data=table)
    dst.create_dataset(PACKET_CRC, data=np.array([crc32c(p) for p, _ in packets], np.uint32))
    dst.create_dataset(VIDEO_FRAME, data=frame_numbers(index, distinct))
    dst.create_dataset(EXTRADATA, data=np.frombuffer(encoder.extradata, np.uint8))
    report = CameraReport(frames=len(distinct), jpeg_bytes=jpeg_bytes, video_bytes=int(blob.size),
                          psnr_db_mean=round(float(np.mean(psnrs)), 3) if psnrs else 0.0,
                          psnr_db_min=round(float(np.min(psnrs)), 3) if psnrs else 0.0)
    return report, pictures


def _verify_written(path: Path, temp: Path, cameras: list[str], pictures: dict[str, list[int]],
                    t: int) -> None:
    """Check the written file from disk; raise ValueError when anything is off."""
    verdict = verify_episode(temp)
    if verdict.damaged:
        raise ValueError(f"the written video episode does not verify: {verdict.damaged}")
    with h5py.File(path, "r") as src, h5py.File(temp, "r") as dst:
        for cam in cameras:
            s, d = src[f"{IMAGE}/{cam}"], dst[f"{IMAGE}/{cam}"]
            for key in ("frame_index", "capture_time", "device_time"):
                if key in s and not np.array_equal(s[key][:t], d[key][:t], equal_nan=True):
                    raise ValueError(f"camera {cam!r} {key} differs after transcoding")
            index = np.asarray(s["index"][:t], np.int64)
            if not np.array_equal(d[VIDEO_FRAME][:t], frame_numbers(index,
                                                                     distinct_frames(index))):
                raise ValueError(f"camera {cam!r} steps point at other frames after transcoding")
            decoded = _decode_all(d, str(d.attrs["format"]))
            if decoded != pictures[cam]:
                first = next((i for i, (a, b) in enumerate(zip(decoded, pictures[cam]))
                              if a != b), min(len(decoded), len(pictures[cam])))
                raise ValueError(f"camera {cam!r} video read back from disk differs from what "
                                 f"was checked (frame {first} of {len(pictures[cam])}, "
                                 f"{len(decoded)} decoded)")


def _decode_all(group: h5py.Group, codec: str) -> list[int]:
    """Decode every packet of a written camera, in order; the CRC of each picture."""
    table = np.asarray(group[PACKETS][()], np.int64).reshape(-1, 3)
    data = group["data"]
    extradata = group.get(EXTRADATA)
    decoder = FrameDecoder(codec, bytes(extradata[()]) if extradata is not None and
                           extradata.size else b"")
    decoder.seek(0)
    out: list[int] = []
    for number, packet in enumerate(frames_in_order(data, table[:, :2])):
        decoder.feed(number, packet)
        while (frame := decoder.next_frame()) is not None:
            out.append(_picture_crc(frame))
    decoder.drain()
    while (frame := decoder.next_frame()) is not None:
        out.append(_picture_crc(frame))
    return out


def _picture_crc(frame) -> int:
    """CRC-32C of a decoded picture's planes (without line padding)."""
    return crc32c(np.ascontiguousarray(frame.to_ndarray(format=PIX_FMT)))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _thread_cpu() -> float:
    try:
        usage = resource.getrusage(resource.RUSAGE_THREAD)
    except (AttributeError, ValueError):  # pragma: no cover - not Linux
        usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _is_disk_full(exc: BaseException) -> bool:
    from vla_studio.data.dataset import is_storage_error

    return is_storage_error(exc)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class _Progress:
    def __init__(self, total: int, callback: Callable[[int, int], None] | None) -> None:
        self.total, self.done, self._callback = total, 0, callback
        self._last = 0.0

    def step(self) -> None:
        self.done += 1
        if self._callback is not None:
            now = time.monotonic()
            if now - self._last >= 0.2 or self.done == self.total:
                self._last = now
                self._callback(self.done, self.total)
