"""Clearing the "open for writing" flags HDF5 leaves in a file whose writer was killed.

A writer opened with ``libver="latest"`` (needed for SWMR) records in the superblock that the
file is open for (SWMR) writing and clears the flags on a clean close. After a SIGKILL or power
cut they stay set and HDF5 refuses to open the file for writing ("file is already open for
write ... may use <h5clear file>"). This module does what ``h5clear -s`` does, without needing the
HDF5 command-line tools: zero the flags byte of the version 2/3 superblock and rewrite its
checksum (Bob Jenkins' lookup3 hash, as HDF5 computes it).

It also repairs the two end-of-file mismatches a writer that hit a full disk can leave (the
superblock's end-of-allocation address behind or ahead of the bytes on disk), as ``h5clear
--increment`` and a zero-filled extension do.

The superblock is only rewritten when its stored checksum matches our computation before the
change, so a file this code does not understand is left untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_FLAGS_OFFSET = 11  # signature (8), version, size of offsets, size of lengths, then the flags
_M = 0xFFFFFFFF


class SuperblockError(RuntimeError):
    """The file's superblock is not one this module can repair."""


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum of HDF5 metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _M
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & _M
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & _M
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & _M
        a = (a - c) & _M; a ^= _rot(c, 4); c = (c + b) & _M
        b = (b - a) & _M; b ^= _rot(a, 6); a = (a + c) & _M
        c = (c - b) & _M; c ^= _rot(b, 8); b = (b + a) & _M
        a = (a - c) & _M; a ^= _rot(c, 16); c = (c + b) & _M
        b = (b - a) & _M; b ^= _rot(a, 19); a = (a + c) & _M
        c = (c - b) & _M; c ^= _rot(b, 4); b = (b + a) & _M
        i += 12
        length -= 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    c ^= b; c = (c - _rot(b, 14)) & _M
    a ^= c; a = (a - _rot(c, 11)) & _M
    b ^= a; b = (b - _rot(a, 25)) & _M
    c ^= b; c = (c - _rot(b, 16)) & _M
    a ^= c; a = (a - _rot(c, 4)) & _M
    b ^= a; b = (b - _rot(a, 14)) & _M
    c ^= b; c = (c - _rot(b, 24)) & _M
    return c


def write_flags(path: str | Path) -> int:
    """The superblock's file-consistency flags (0 = closed cleanly)."""
    with open(path, "rb") as fh:
        head = fh.read(_FLAGS_OFFSET + 1)
    if len(head) <= _FLAGS_OFFSET or head[:8] != SIGNATURE:
        raise SuperblockError(f"{path}: no HDF5 superblock at the start of the file")
    if head[8] < 2:
        return 0  # version 0/1 superblocks carry no consistency flags HDF5 enforces
    return head[_FLAGS_OFFSET]


def clear_write_flags(path: str | Path) -> bool:
    """Clear the open-for-write flags of a version 2/3 superblock at offset 0.

    Returns:
        True when flags were cleared, False when none were set.

    Raises:
        SuperblockError: no superblock at offset 0, an unsupported version or a checksum that
            does not match (the file is left untouched).
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != SIGNATURE:
            raise SuperblockError(f"{path}: no HDF5 superblock at the start of the file")
        version, size_of_offsets = head[8], head[9]
        if version not in (2, 3):
            raise SuperblockError(f"{path}: superblock version {version} is not supported")
        size = 12 + 4 * size_of_offsets + 4  # 4 addresses, then the checksum
        fh.seek(0)
        block = bytearray(fh.read(size))
        stored = int.from_bytes(block[-4:], "little")
        if lookup3(bytes(block[:-4])) != stored:
            raise SuperblockError(f"{path}: superblock checksum mismatch; not modifying it")
        if block[_FLAGS_OFFSET] == 0:
            return False
        block[_FLAGS_OFFSET] = 0
        block[-4:] = lookup3(bytes(block[:-4])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _read_block(fh) -> tuple[bytearray, int]:
    """The version 2/3 superblock at offset 0 and its size of offsets (checksum verified)."""
    head = fh.read(12)
    if len(head) < 12 or head[:8] != SIGNATURE or head[8] not in (2, 3):
        raise SuperblockError(f"{fh.name}: no version 2/3 HDF5 superblock at offset 0")
    size_of_offsets = head[9]
    fh.seek(0)
    block = bytearray(fh.read(12 + 4 * size_of_offsets + 4))
    if lookup3(bytes(block[:-4])) != int.from_bytes(block[-4:], "little"):
        raise SuperblockError(f"{fh.name}: superblock checksum mismatch; not modifying it")
    return block, size_of_offsets


def raise_stored_eof_to_file_size(path: str | Path) -> bool:
    """Move the superblock's end-of-allocation address up to the file's real size.

    A writer whose superblock update failed (disk full) while other metadata reached the disk
    leaves objects beyond the address the superblock records; HDF5 then refuses to read them
    ("len not positive after adjustment for EOA"). Every byte below the file's size was written
    by that writer, so declaring it allocated is safe (what ``h5clear --increment`` does).
    Returns True when the superblock changed.

    Raises:
        SuperblockError: no version 2/3 superblock with a valid checksum at offset 0.
    """
    with open(path, "r+b") as fh:
        block, size_of_offsets = _read_block(fh)
        start = 12 + 2 * size_of_offsets  # base address, extension address, then end of file
        stored_eof = int.from_bytes(block[start:start + size_of_offsets], "little")
        size = os.fstat(fh.fileno()).st_size
        if size <= stored_eof:
            return False
        block[start:start + size_of_offsets] = size.to_bytes(size_of_offsets, "little")
        block[-4:] = lookup3(bytes(block[:-4])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def extend_to_stored_eof(path: str | Path) -> bool:
    """Grow a file HDF5 calls "truncated" back to the end-of-file its superblock records.

    A writer whose last writes failed (disk full) can leave a superblock that points past the
    bytes that reached the disk. Everything committed lies before that point; the missing tail
    was never part of a commit, so zeros are a safe filler. Returns True when the file grew.

    Raises:
        SuperblockError: no version 2/3 superblock with a valid checksum at offset 0.
    """
    with open(path, "r+b") as fh:
        block, size_of_offsets = _read_block(fh)
        start = 12 + 2 * size_of_offsets  # base address, extension address, then end of file
        stored_eof = int.from_bytes(block[start:start + size_of_offsets], "little")
        size = os.fstat(fh.fileno()).st_size
        if stored_eof <= size:
            return False
        fh.truncate(stored_eof)
        fh.flush()
        os.fsync(fh.fileno())
    return True
