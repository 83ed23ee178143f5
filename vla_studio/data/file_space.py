"""Disk space an episode file keeps for itself, so it can always be closed and sealed.

A reserve file beside the dataset is no guarantee: once it is deleted to make room, any other
process writing to the same disk can take that space first (observed: a disk held at zero free
space lost the whole open episode). Instead the recording file *preallocates* blocks beyond its
own end (``fallocate(FALLOC_FL_KEEP_SIZE)``): the file's size does not change and HDF5 does not
notice, but the blocks belong to the file, so writes past its end land in them without asking
the filesystem for space. The recorder keeps enough preallocated for the next batch plus what
closing and sealing write; when it cannot top that up the disk is full, and it stops with the
reserve still in hand. The reserve also survives a SIGKILL (it belongs to the inode), so
recovery on a disk that is still full can seal the file too. The unused part is given back when
the file is sealed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
# What HDF5 writes when a file is closed and sealed (final attributes, the drops table, the
# journal's removal, the superblock): measured at ~20 KiB; kept with a wide margin.
SEAL_RESERVE_BYTES = 2 << 20

_libc = None


def _fallocate(fd: int, mode: int, offset: int, length: int) -> int:
    """libc ``fallocate``; returns 0 or the errno (ENOSYS where libc has none)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        _libc.fallocate.restype = ctypes.c_int
    if _libc.fallocate(fd, mode, offset, length) == 0:
        return 0
    return ctypes.get_errno() or errno.EIO


class NoPreallocation(OSError):
    """The filesystem cannot preallocate (the caller falls back to checking free space)."""


def preallocate(fd: int, start: int, end: int) -> None:
    """Make sure the file behind ``fd`` owns disk blocks from byte ``start`` (its current end)
    up to ``end`` without changing its size. Blocks it already owns are kept; a failure leaves
    whatever was allocated before.

    Raises:
        OSError: ENOSPC (or EDQUOT) when the disk cannot give the missing blocks.
        NoPreallocation: the filesystem does not support it.
    """
    err = _fallocate(fd, FALLOC_FL_KEEP_SIZE, max(0, start), max(1, end - start))
    if err == 0:
        return
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV):
        raise NoPreallocation(err, os.strerror(err))
    raise OSError(err, os.strerror(err))


def bytes_beyond_end(path: Path) -> int:
    """Disk space a file owns past its end (its preallocated reserve), roughly."""
    st = os.stat(path)
    return max(0, st.st_blocks * 512 - st.st_size)


def release_preallocation(path: Path) -> None:
    """Give back the blocks a closed file owns beyond its end. Never raises.

    ext4 and XFS free them on a truncate to the current size; tmpfs needs the range punched.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        log.warning("cannot open %s to release its reserve: %s", path, exc)
        return
    try:
        size = os.fstat(fd).st_size
        os.ftruncate(fd, size)
        _fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, size, 1 << 40)
    except OSError as exc:
        log.warning("releasing the reserve of %s failed: %s", path, exc)
    finally:
        os.close(fd)
