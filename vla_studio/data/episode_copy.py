"""Pieces of the transcoder that read and copy episode files: the distinct frames of a JPEG
camera, block reads, copying a file's tree as stored, and recomputing its step checksums."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from vla_studio.data.checksums import (ALGORITHM, STEP_CHUNKS, covered_columns, covers_attr,
                                       rows_crc32c)
from vla_studio.data.episode_file import IMAGE, STEPS, decode_attrs
from vla_studio.data.video_storage import EXTRADATA, PACKET_CRC, PACKETS, camera_formats

_BLOCK_BYTES = 16 << 20


def distinct_frames(index: np.ndarray) -> np.ndarray:
    """``[F, 2]`` (offset, length) of the distinct stored frames, in file order."""
    rows = np.asarray(index, np.int64).reshape(-1, 2)
    rows = rows[rows[:, 1] > 0]
    return np.unique(rows, axis=0) if len(rows) else np.zeros((0, 2), np.int64)


def frame_numbers(index: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Each step's frame number among ``distinct`` (-1 for a step without an image)."""
    out = np.full(len(index), -1, np.int64)
    if not len(distinct):
        return out
    present = index[:, 1] > 0
    out[present] = np.searchsorted(distinct[:, 0], index[present, 0])
    return out


def frames_in_order(data: h5py.Dataset, rows: np.ndarray) -> Iterator[bytes]:
    """The bytes at ``rows`` (offset, length), in order, read in large blocks."""
    block, block_start = np.empty(0, np.uint8), 0
    for offset, length in np.asarray(rows, np.int64)[:, :2].tolist():
        if offset < block_start or offset + length > block_start + block.size:
            block_start = offset
            block = data[offset:min(data.shape[0], max(offset + length, offset + _BLOCK_BYTES))]
        yield block[offset - block_start:offset - block_start + length].tobytes()


def step_frames(data: h5py.Dataset, index: np.ndarray) -> Iterator[bytes]:
    """Each step's bytes (b"" for none), for the checksum check."""
    cache: dict[tuple[int, int], bytes] = {}
    distinct = distinct_frames(index)
    for (o, n), chunk in zip(distinct.tolist(), frames_in_order(data, distinct)):
        cache[(o, n)] = chunk
    for o, n in index.tolist():
        yield cache.get((o, n), b"") if n else b""


def estimate_video_bytes(src: h5py.File, cameras: list[str]) -> int:
    """Generous bound on the temporary file's size: a tenth of the JPEG bytes plus every
    other dataset (copied as is)."""
    jpeg = sum(int(src[f"{IMAGE}/{c}/data"].shape[0]) for c in cameras)
    size = os.path.getsize(src.filename)
    return max(0, size - jpeg) + jpeg // 10


def camera_rates(src: h5py.File) -> dict[str, float]:
    """Each camera's nominal frame rate (the control rate when the camera does not say)."""
    attrs = decode_attrs(src.attrs, ("cameras", "control_rate_hz"))
    meta = attrs.get("cameras") if isinstance(attrs.get("cameras"), dict) else {}
    rate = float(attrs.get("control_rate_hz") or 0.0)
    out: dict[str, float] = {}
    for name in camera_formats(src):
        info = meta.get(name)
        try:
            out[name] = float(info.get("fps") or rate) if isinstance(info, dict) else rate
        except (TypeError, ValueError):
            out[name] = rate
    return out


def copy_tree(src: h5py.Group, dst: h5py.Group, skip: set[str]) -> None:
    """Copy every group, dataset and attribute below ``src`` (as stored: same dtype, chunks and
    filters) except the objects at the paths in ``skip``."""
    for name, obj in src.items():
        if obj.name in skip:
            continue
        if isinstance(obj, h5py.Group):
            group = dst.require_group(name)
            copy_attrs(obj.attrs, group.attrs)
            copy_tree(obj, group, skip)
        else:
            src.copy(obj, dst, name=name)


def copy_attrs(source: Any, target: h5py.AttributeManager) -> None:
    for key, value in source.items():
        target[key] = value


def write_step_chunks(src: h5py.File, dst: h5py.File, t: int) -> None:
    """The step checksums of the new file: the same chunks as the recording (whose checksums
    were verified before anything was read), over the new file's per-step columns."""
    chunks = src.get(STEP_CHUNKS)
    if not isinstance(chunks, h5py.Dataset):
        return
    rows: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape and obj.shape[0] == t and \
                not name.startswith("observation/depth/") and \
                name.rsplit("/", 1)[-1] not in ("data", PACKETS, PACKET_CRC, EXTRADATA):
            rows.append(name)

    dst[STEPS].visititems(visit)
    covers = covered_columns(rows)
    columns = [dst[f"{STEPS}/{name}"][:t] for name in covers]
    table = np.asarray(chunks[()], np.int64).reshape(-1, 3).copy()
    for row in table:
        start, end = int(row[0]), int(row[1])
        if 0 <= start < end <= t:
            row[2] = rows_crc32c(c[start:end] for c in columns)
    out = dst.create_dataset(STEP_CHUNKS, data=table, maxshape=(None, 3))
    out.attrs.update({"algorithm": ALGORITHM, "covers": covers_attr(covers)})


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
