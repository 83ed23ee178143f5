"""TFRecord files: length-prefixed records, each guarded by masked CRC-32C checksums.

Layout of one record (all integers little-endian)::

    uint64 length
    uint32 masked_crc32c(length bytes)
    byte   data[length]
    uint32 masked_crc32c(data)
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

from vla_studio.data.rlds.crc32c import crc32c_of_parts, mask, masked_crc32c

_IOV_MAX = 1024  # buffers per writev call (Linux's limit)


def frame_record(parts: Sequence[Any]) -> tuple[bytes, bytes]:
    """The header (length + its checksum) and footer (data checksum) around one record whose
    data is the concatenation of ``parts`` (bytes or uint8 numpy arrays).

    Computing these is the expensive part of writing (the checksum reads every byte), so an
    exporter can do it on worker threads and keep the file writes in one place.
    """
    length = struct.pack("<Q", sum(len(p) for p in parts))
    return (length + struct.pack("<I", masked_crc32c(length)),
            struct.pack("<I", mask(crc32c_of_parts(parts))))


class TFRecordWriter:
    """Appends framed records to one file.

    Args:
        path: file to create (an existing file is truncated).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records = 0
        self.bytes_written = 0
        self._file = None

    def open(self) -> "TFRecordWriter":
        self._file = open(self.path, "wb", buffering=0)  # writev hands buffers to the kernel
        return self

    def write(self, parts: Sequence[Any], framing: tuple[bytes, bytes] | None = None) -> int:
        """Write one record made of ``parts`` (a single bytes object is one part).

        Args:
            parts: the record's data, in pieces.
            framing: :func:`frame_record` of ``parts`` if already computed.

        Returns:
            Bytes written to the file for this record.
        """
        if self._file is None:
            raise RuntimeError(f"{self.path}: write() before open()")
        if isinstance(parts, (bytes, bytearray, memoryview)):
            parts = [parts]
        header, footer = framing if framing is not None else frame_record(parts)
        written = _write_all(self._file.fileno(), [header, *parts, footer])
        self.records += 1
        self.bytes_written += written
        return written

    def close(self) -> None:
        """Close (safe to call twice)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "TFRecordWriter":
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _write_all(fd: int, buffers: list[Any]) -> int:
    """``os.writev`` until every buffer is written (the kernel may take only part of them)."""
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    total = i = 0
    while i < len(views):
        n = os.writev(fd, views[i:i + _IOV_MAX])
        if n <= 0:
            raise OSError(f"write to file descriptor {fd} made no progress")
        total += n
        while i < len(views) and n >= len(views[i]):
            n -= len(views[i])
            i += 1
        if n:
            views[i] = views[i][n:]
    return total
