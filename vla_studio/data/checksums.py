"""Checksums stored in episode files: what they cover, and computing them.

Every checksum is a CRC-32C (Castagnoli, the CRC TFRecord uses), computed by the CPU's CRC32
instruction through ``google-crc32c`` (~10 GB/s, so the recorder's writer thread pays nothing
noticeable). Three kinds, written while the episode is recorded:

``steps/observation/image/<cam>/crc32c``  uint32 [T]
    CRC of the encoded frame (JPEG/PNG bytes) each step's ``index`` row points at; steps that
    share a frame share its CRC; 0 for a step without an image. Computed by the step encoder
    when the frame is encoded, so any later change of those bytes is detected.
``steps/observation/depth_crc32c/<cam>``  uint32 [T]
    CRC of each step's raw depth frame (``H*W`` little-endian uint16, row-major: the array a
    reader gets back, whatever compression the file uses).
``checksums/step_chunks``  int64 [K, 3]
    One row ``(start, end, crc)`` per batch of steps the writer appended (steps ``[start,
    end)``, committed together). ``crc`` covers the rows ``[start, end)`` of every fixed-size
    step dataset named in the attribute ``covers`` (a JSON list of paths under ``steps/``, in
    that order), each as its C-order little-endian bytes, concatenated. ``covers`` leaves out
    the columns sealing rewrites after the rows were written (``is_first``, ``is_last``,
    ``is_terminal``, ``reward``, derived from the step count and the success label), the
    variable-size image byte buffers (covered per frame above) and depth arrays (per frame).
    The group lives outside ``steps/`` so that sealing, which cuts every step dataset to the
    committed count, leaves it alone; a chunk that reaches past the sealed step count covers
    rows that were never committed and is not checked.

Files written before checksums have none of these; they still read, and verification reports
them as "no checksums".
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np

try:
    import google_crc32c

    _HARDWARE = google_crc32c.value if google_crc32c.implementation == "c" else None
except ImportError:  # pragma: no cover - google-crc32c is a dependency
    _HARDWARE = None

FRAME_CRC = "crc32c"  # dataset beside each camera's ``index``
DEPTH_CRC = "steps/observation/depth_crc32c"
CHECKSUMS = "checksums"
STEP_CHUNKS = "checksums/step_chunks"
ALGORITHM = "crc32c"
# Step columns written again by seal_episode after their rows were appended.
SEAL_OWNED = frozenset({"is_first", "is_last", "is_terminal", "reward"})


def crc32c(data: bytes | np.ndarray) -> int:
    """CRC-32C of ``data`` (bytes, or a contiguous numpy array's bytes)."""
    if _HARDWARE is not None:
        return int(_HARDWARE(data))
    from vla_studio.data.rlds.crc32c import crc32c_numpy  # slow path, never taken here

    return crc32c_numpy(data.tobytes() if isinstance(data, np.ndarray) else data)


def depth_crc32c(depth: np.ndarray) -> int:
    """CRC-32C of one depth frame as stored-and-read: little-endian uint16, row-major."""
    return crc32c(np.ascontiguousarray(depth, dtype="<u2"))


def rows_crc32c(columns: Iterable[np.ndarray]) -> int:
    """CRC-32C of the concatenated C-order bytes of ``columns`` (one step chunk)."""
    parts = [np.ascontiguousarray(c, dtype=c.dtype.newbyteorder("<")) for c in columns]
    if _HARDWARE is not None:
        crc = 0
        for part in parts:
            crc = int(google_crc32c.extend(crc, part))
        return crc
    return crc32c(b"".join(part.tobytes() for part in parts))


def covered_columns(row_keys: Iterable[str]) -> list[str]:
    """The step datasets (paths under ``steps/``) a step chunk checksum covers, in order."""
    return sorted(k for k in row_keys if k not in SEAL_OWNED)


def covers_attr(columns: Sequence[str]) -> str:
    return json.dumps(list(columns))


def parse_covers(value: Any) -> list[str]:
    """The ``covers`` attribute as a list of paths (raises ValueError when it is not one)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    columns = json.loads(value)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError("checksums/step_chunks 'covers' is not a list of dataset names")
    return columns
