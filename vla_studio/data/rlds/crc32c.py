"""CRC-32C (Castagnoli), for TFRecord framing without TensorFlow.

TFRecord protects every record with a masked CRC-32C. The standard library only has the IEEE
CRC-32 (``zlib.crc32``), and a byte-at-a-time Python loop manages ~5 MB/s, far too slow for
episodes of many megabytes. With the ``google-crc32c`` package the CPU's CRC32C instruction does
it (~10 GB/s). Without it, this module computes the same checksum with numpy at a few hundred
MB/s on one core:

1. The payload is split into equal lanes of ``L`` bytes (zero-padded at the front: leading zeros
   leave a CRC register that starts at 0 unchanged). Block by block (4,096 lanes, 512 KiB), all
   lanes advance together, four bytes per numpy step, through two 65,536-entry tables
   (slicing-by-4 folded into 16-bit halves); each block is transposed first so that every step
   reads one contiguous column.
2. The ``K`` lane checksums are folded pairwise (a binary tree). CRC is linear over GF(2), so
   ``crc(A || B) = shift(crc(A), len(B)) ^ crc(B)``, where ``shift`` (feeding ``n`` zero bytes)
   is a fixed linear map, applied to whole arrays through four 256-entry byte tables.
3. The lanes start from register 0; the standard initial value ``0xFFFFFFFF`` contributes
   ``shift(0xFFFFFFFF, n)``, added at the end with the final XOR.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

try:  # C extension using the SSE4.2 / ARMv8 CRC32C instruction (Google's crc32c library)
    import google_crc32c

    _hardware_crc32c = google_crc32c.value if google_crc32c.implementation == "c" else None
    _extend = google_crc32c.extend  # accepts bytes and read-only numpy arrays, not memoryviews
except ImportError:  # the numpy implementation below is used instead
    _hardware_crc32c = None

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_SMALL = 256  # below this many bytes the plain loop is faster than setting up numpy lanes
# Lanes are a power of two long (fold tables are cached per power of two). Long payloads are
# processed in blocks of _BLOCK_LANES lanes (512 KiB): enough lanes to amortise numpy's per-call
# cost, a working set small enough to stay in the core's cache (measured fastest).
_LANE = 128
_SHORT_LANE = 16
_MIN_LANES = 64
_BLOCK_LANES = 4096
_BYTE = np.uint32(0xFF)


def _byte_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[i] = c
    return table


_T0 = _byte_table()
_T8 = [_T0]
for _ in range(3):  # slicing-by-4 tables: _T8[k][b] = effect of byte b followed by k zero bytes
    _prev = _T8[-1]
    _T8.append((_prev >> np.uint32(8)) ^ _T0[_prev & _BYTE])
_HALF = np.arange(65536, dtype=np.uint32)
# One 4-byte step: crc' = T3[b0] ^ T2[b1] ^ T1[b2] ^ T0[b3] for the bytes of (crc ^ word).
_LOW16 = _T8[3][_HALF & _BYTE] ^ _T8[2][_HALF >> np.uint32(8)]
_HIGH16 = _T8[1][_HALF & _BYTE] ^ _T8[0][_HALF >> np.uint32(8)]
_T0_LIST = [int(v) for v in _T0]
del _prev, _HALF


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of ``data`` (the checksum TFRecord uses, before masking).

    Uses the CPU's CRC32 instruction through ``google-crc32c`` (~10 GB/s) when its C extension
    is installed, else :func:`crc32c_numpy` (a few hundred MB/s).

    Args:
        data: any bytes-like object.

    Returns:
        The checksum as an unsigned 32-bit int; ``crc32c(b"123456789") == 0xE3069283``.
    """
    if _hardware_crc32c is not None:
        return _hardware_crc32c(data if isinstance(data, bytes) else bytes(data))
    return crc32c_numpy(data)


def crc32c_numpy(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C computed with numpy only (the method in the module docstring)."""
    n = len(data)
    if n < _SMALL:
        return _crc32c_loop(bytes(data))
    lane = _LANE if n >= _LANE * _MIN_LANES else _SHORT_LANE
    total_lanes = -(-n // lane)
    per_block = min(_BLOCK_LANES, total_lanes)
    blocks = -(-total_lanes // per_block)
    block_bytes = per_block * lane
    pad = blocks * block_bytes - n  # < block_bytes: only the first block needs a padded copy
    source = np.frombuffer(data, np.uint8)
    first = np.zeros(block_bytes, np.uint8)
    first[pad:] = source[:block_bytes - pad]
    lane_crcs = np.empty((blocks, per_block), np.uint32)
    crc = np.zeros(per_block, np.uint32)
    halves = crc.view(np.uint16)  # little-endian: [low, high, low, high, ...]
    low_half, high_half = halves[0::2], halves[1::2]
    low = np.empty(per_block, np.uint32)
    high = np.empty(per_block, np.uint32)
    for b in range(blocks):
        block = first if b == 0 else source[b * block_bytes - pad:(b + 1) * block_bytes - pad]
        # Column j holds word j of every lane, contiguous: each step streams through memory.
        columns = np.ascontiguousarray(block.view("<u4").reshape(per_block, lane // 4).T)
        crc[:] = 0
        for column in columns:
            np.bitwise_xor(crc, column, out=crc)
            _LOW16.take(low_half, out=low)
            _HIGH16.take(high_half, out=high)
            np.bitwise_xor(low, high, out=crc)
        lane_crcs[b] = crc
    crc = lane_crcs.reshape(-1)
    span = lane
    while len(crc) > 1:
        if len(crc) % 2:  # a zero lane in front changes nothing (register stays 0)
            crc = np.concatenate([np.zeros(1, np.uint32), crc])
        tables = _zero_shift_tables(span)
        a = crc[0::2]
        shifted = (tables[0][a & _BYTE] ^ tables[1][(a >> np.uint32(8)) & _BYTE]
                   ^ tables[2][(a >> np.uint32(16)) & _BYTE] ^ tables[3][a >> np.uint32(24)])
        crc = shifted ^ crc[1::2]
        span *= 2
    # Linearity: starting from register 0xFFFFFFFF adds that register fed n zero bytes.
    return int(crc[0]) ^ _shift(0xFFFFFFFF, n) ^ 0xFFFFFFFF


def crc32c_of_parts(parts: Sequence[Any]) -> int:
    """CRC-32C of the concatenation of ``parts`` (bytes, or read-only uint8 numpy arrays),
    without building the concatenation when the hardware checksum is available."""
    if _hardware_crc32c is None:
        return crc32c_numpy(b"".join(parts))
    crc = 0
    for part in parts:
        crc = _extend(crc, part if isinstance(part, (bytes, np.ndarray)) else bytes(part))
    return crc


def mask(crc: int) -> int:
    """TFRecord's checksum masking: ``((c >> 15) | (c << 17)) + 0xa282ead8`` (32-bit)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC-32C stored in TFRecord framing."""
    return mask(crc32c(data))


def _crc32c_loop(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _T0_LIST
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _apply(columns: list[int], value: int) -> int:
    """Apply the GF(2) linear map given by its 32 column images to ``value``."""
    out = 0
    bit = 0
    while value:
        if value & 1:
            out ^= columns[bit]
        value >>= 1
        bit += 1
    return out


def _shift(value: int, nbytes: int) -> int:
    """``value`` in a raw register after feeding it ``nbytes`` zero bytes."""
    k = 0
    while nbytes:
        if nbytes & 1:
            value = _apply(list(_zero_shift_columns(1 << k)), value)
        nbytes >>= 1
        k += 1
    return value


@functools.cache
def _zero_shift_columns(nbytes: int) -> tuple[int, ...]:
    """Column images of "feed ``nbytes`` zero bytes to a raw register" (``nbytes`` a power of 2)."""
    if nbytes == 1:
        return tuple(_T0_LIST[(1 << b) & 0xFF] ^ ((1 << b) >> 8) for b in range(32))
    half = list(_zero_shift_columns(nbytes // 2))
    return tuple(_apply(half, c) for c in half)


@functools.cache
def _zero_shift_tables(nbytes: int) -> np.ndarray:
    """The zero-feed map as four 256-entry tables, one per byte of the register."""
    columns = np.array(_zero_shift_columns(nbytes), np.uint32)
    index = np.arange(256)
    tables = np.zeros((4, 256), np.uint32)
    for k in range(4):
        for bit in range(8):
            tables[k] ^= np.where((index >> bit) & 1, columns[8 * k + bit], np.uint32(0))
    return tables
