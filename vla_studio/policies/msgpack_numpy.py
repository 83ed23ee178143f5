"""msgpack with numpy arrays, byte-compatible with openpi's ``openpi_client.msgpack_numpy``.

An array travels as a map ``{b"__ndarray__": True, b"data": raw bytes, b"dtype": dtype.str,
b"shape": shape}`` and a numpy scalar as ``{b"__npgeneric__": True, b"data": item, b"dtype": ...}``,
exactly as openpi packs them, so openpi clients and servers read our messages and we read theirs.

Decoding is stricter than openpi's, because a server decodes what strangers send: only plain
numeric, boolean and string dtypes are accepted (never object or structured dtypes, so nothing
can reach pickle), the byte count must match the shape, dimensions and sizes are bounded, and
every malformed input raises :class:`~vla_studio.policies.errors.PolicyProtocolError`.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from vla_studio.policies.errors import PolicyProtocolError

# Boolean, signed/unsigned integers, floats, unicode and byte strings; complex and datetime
# types have no use in observations, object and void types could smuggle references.
ALLOWED_KINDS = frozenset("biufUS")
MAX_NDIM = 8
MAX_ELEMENTS = 1 << 28


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind not in ALLOWED_KINDS:
        raise ValueError(f"unsupported dtype {obj.dtype} (allowed kinds: {''.join(sorted(ALLOWED_KINDS))})")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": np.ascontiguousarray(obj).tobytes(),
                b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _dtype(value: Any) -> np.dtype:
    if not isinstance(value, (str, bytes)) or len(value) > 16:
        raise PolicyProtocolError(f"array dtype must be a short dtype string, got {value!r:.40}")
    try:
        dtype = np.dtype(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        raise PolicyProtocolError(f"unknown array dtype {value!r:.40}") from None
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise PolicyProtocolError(f"array dtype {dtype} is not allowed (plain numbers, booleans "
                                  "and strings only)")
    return dtype


def _object_hook(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        shape = obj.get(b"shape")
        data = obj.get(b"data")
        if (not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n for n in shape)):
            raise PolicyProtocolError(f"array shape must be a list of at most {MAX_NDIM} "
                                      f"non-negative integers, got {shape!r:.60}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count > MAX_ELEMENTS:
            raise PolicyProtocolError(f"array of {count} elements is too large")
        if not isinstance(data, bytes) or len(data) != count * dtype.itemsize:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise PolicyProtocolError(f"array data is {size} bytes, shape {tuple(shape)} of "
                                      f"{dtype} needs {count * dtype.itemsize}")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if b"__npgeneric__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        try:
            return dtype.type(obj.get(b"data"))
        except (TypeError, ValueError, OverflowError):
            raise PolicyProtocolError(f"scalar {obj.get(b'data')!r:.40} is not a {dtype}") from None
    return obj


def packb(obj: Any) -> bytes:
    """Serialise ``obj`` (dicts, lists, strings, numbers, numpy arrays and scalars)."""
    return msgpack.packb(obj, default=_pack_default)


def unpackb(data: bytes, max_bytes: int | None = None) -> Any:
    """Deserialise one message; arrays come back read-only (they view the message buffer).

    Raises:
        PolicyProtocolError: not msgpack, truncated, over ``max_bytes`` or an invalid array.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PolicyProtocolError(f"expected a binary msgpack message, got {type(data).__name__}")
    if max_bytes is not None and len(data) > max_bytes:
        raise PolicyProtocolError(f"message of {len(data)} bytes is over the {max_bytes} byte limit")
    try:
        return msgpack.unpackb(bytes(data), object_hook=_object_hook, raw=False)
    except PolicyProtocolError:
        raise
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError,
            UnicodeDecodeError) as exc:
        raise PolicyProtocolError(f"not a valid msgpack message: {exc}") from None
