"""TFRecord files: length-prefixed records, each guarded by masked CRC-32C checksums.

Layout of one record (all integers little-endian)::

    uint64 length
    uint32 masked_crc32c(length bytes)
    byte   data[length]
    uint32 masked_crc32c(data)
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import TracebackType

from vla_studio.data.rlds.crc32c import masked_crc32c


def frame_record(data: bytes) -> tuple[bytes, bytes]:
    """The header (length + its checksum) and footer (data checksum) that surround ``data``.

    Computing these is the expensive part of writing (the checksum reads every byte), so an
    exporter can do it on worker threads and keep the file writes in one place.
    """
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)), struct.pack("<I", masked_crc32c(data))


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
        self._file = open(self.path, "wb")
        return self

    def write(self, data: bytes, framing: tuple[bytes, bytes] | None = None) -> int:
        """Write one record; ``framing`` is :func:`frame_record` of ``data`` if already computed.

        Returns:
            Bytes written to the file for this record.
        """
        if self._file is None:
            raise RuntimeError(f"{self.path}: write() before open()")
        header, footer = framing if framing is not None else frame_record(data)
        self._file.write(header)
        self._file.write(data)
        self._file.write(footer)
        written = len(header) + len(data) + len(footer)
        self.records += 1
        self.bytes_written += written
        return written

    def close(self) -> None:
        """Flush and close (safe to call twice)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "TFRecordWriter":
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
