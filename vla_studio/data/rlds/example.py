"""``tf.train.Example`` protobuf encoding, written by hand (no TensorFlow, no protobuf package).

The messages involved are tiny (``tensorflow/core/example/{example,feature}.proto``)::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }      // entry: key = 1, value = 2
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                             Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }

An :class:`ExampleBuilder` collects the encoded pieces as a list of byte strings and joins them
once, so large values (JPEG frames) are copied a single time.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

# Wire tags: (field number << 3) | wire type 2 (length-delimited).
_TAG_1 = b"\x0a"
_TAG_2 = b"\x12"
_TAG_3 = b"\x1a"


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (negative int64 use two's complement)."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if 0x80 <= value < 0x4000:  # two bytes: every length of a typical camera frame
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def _packed_int64(values: np.ndarray) -> bytes:
    flat = np.asarray(values).reshape(-1)
    if flat.dtype == np.bool_:
        return flat.astype(np.uint8).tobytes()
    as_int = flat.astype(np.int64)
    if as_int.size == 0 or (as_int.min() >= 0 and as_int.max() < 0x80):
        return as_int.astype(np.uint8).tobytes()  # every value is a one-byte varint
    return b"".join(varint(int(v)) for v in as_int)


class ExampleBuilder:
    """Accumulates the features of one ``tf.train.Example`` and serializes it.

    Keys are the flattened tfds feature names (``steps/observation/wrist``); each key is added
    once. Values are flat lists over all steps, as tfds stores a ``Dataset`` feature.

    The message is kept as a list of pieces: values of at least ``_INLINE`` bytes (camera frames)
    are kept by reference, everything between them is joined into one bytes piece, so writing
    and checksumming deal with a few large buffers and copy little.
    """

    def __init__(self) -> None:
        self._pieces: list[Any] = []
        self._small: list[bytes] = []
        self._size = 0
        self._keys: set[str] = set()

    def add_floats(self, key: str, values: np.ndarray) -> None:
        """A FloatList: ``values`` of any shape, stored row-major as float32."""
        raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
        self._add(key, _TAG_2, [_TAG_1 + varint(len(raw)), raw] if raw else [])

    def add_ints(self, key: str, values: np.ndarray) -> None:
        """An Int64List (booleans become 0/1), stored packed."""
        raw = _packed_int64(values)
        self._add(key, _TAG_3, [_TAG_1 + varint(len(raw)), raw] if raw else [])

    def add_bytes(self, key: str, values: Iterable[Any]) -> None:
        """A BytesList: one entry per value (encoded images, UTF-8 text). Values may be bytes or
        uint8 numpy arrays (large ones are kept by reference until written)."""
        parts: list[Any] = []
        for value in values:
            parts += (_TAG_1 + varint(len(value)), value)
        self._add(key, _TAG_1, parts)

    def add_text(self, key: str, values: Iterable[str]) -> None:
        """A BytesList of UTF-8 strings (tfds ``Text``)."""
        self.add_bytes(key, [v.encode("utf-8") for v in values])

    def parts(self) -> list[Any]:
        """The encoded ``Example`` as a list of buffers whose concatenation is the message."""
        tail = [b"".join(self._small)] if self._small else []
        return [_TAG_1 + varint(self._size), *self._pieces, *tail]

    def serialize(self) -> bytes:
        """The encoded ``Example`` message as one bytes object."""
        return b"".join(self.parts())

    def _add(self, key: str, kind_tag: bytes, list_parts: list[Any]) -> None:
        if key in self._keys:
            raise ValueError(f"feature {key!r} added twice to one Example")
        self._keys.add(key)
        list_len = sum(map(len, list_parts))
        list_head = kind_tag + varint(list_len)  # Feature: which list, and its length
        feature_len = len(list_head) + list_len
        key_raw = key.encode("utf-8")
        key_field = _TAG_1 + varint(len(key_raw)) + key_raw  # map entry field 1: the key
        value_head = _TAG_2 + varint(feature_len)  # map entry field 2: the Feature
        entry_len = len(key_field) + len(value_head) + feature_len
        entry_head = _TAG_1 + varint(entry_len)  # Features field 1: one map entry
        self._small.append(entry_head + key_field + value_head + list_head)
        self._size += len(entry_head) + entry_len
        for part in list_parts:
            if len(part) >= _INLINE:
                if self._small:
                    self._pieces.append(b"".join(self._small))
                    self._small = []
                self._pieces.append(part)
            else:
                self._small.append(part)


_INLINE = 16 * 1024
