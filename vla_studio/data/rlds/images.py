"""Camera frames for export: gap filling, pass-through checks and re-encoding.

Encoded frames are copied unchanged whenever they already are what the schema declares (format,
size, 3 channels): decoding and re-encoding would cost time and quality. Header parsing tells
that without decoding. Frames that must change (resize, format change) go through OpenCV, which
works in BGR order on both sides, so the colours in the file stay RGB-correct.
"""

from __future__ import annotations

import struct
from typing import Iterable, Union

import cv2
import numpy as np

from vla_studio.data.rlds.episode_source import EpisodeSkipped

Buffer = Union[bytes, np.ndarray]  # an encoded frame: bytes, or a uint8 view of read file data
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels after decoding
# JPEG start-of-frame markers (baseline, progressive, ...); C4/C8/CC are other segments.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def encoded_image_shape(data: Buffer) -> tuple[str, int, int, int] | None:
    """``(format, height, width, channels)`` from a JPEG or PNG header; None if unrecognised."""
    span = _header_span(memoryview(data))
    return None if span is None else span[0]


def _header_span(data: memoryview) -> tuple[tuple[str, int, int, int], int] | None:
    """The header facts and how many leading bytes hold them (up to the end of the size
    fields: PNG's IHDR colour type, JPEG's start-of-frame component count)."""
    if data[:8] == _PNG_SIGNATURE and len(data) >= 26 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return ("png", height, width, _PNG_CHANNELS.get(data[25], 0)), 26
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _JPEG_SOF and i + 10 <= n:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return ("jpeg", height, width, data[i + 9]), i + 10
        i += 2 + length
    return None


def collect_frames(frames_in_range: Iterable[Buffer], start: int, end: int,
                   camera: str) -> tuple[list[Buffer], int]:
    """The encoded frame of every step in ``[start, end)``, with gaps filled.

    Args:
        frames_in_range: each step's encoded frame, bytes or a view (empty when it has none),
            for steps start..end-1.
        start, end: the step range (for messages).
        camera: camera name (for messages).

    A step without a frame (the camera had not delivered a new one) repeats the previous frame;
    steps before the first frame take the first frame.

    Returns:
        The frames (one per step) and how many steps were filled.

    Raises:
        EpisodeSkipped: the camera has no frame at all in the range, or fewer steps than asked.
    """
    frames: list[Buffer | None] = []
    last: Buffer | None = None
    missing = 0
    for data in frames_in_range:
        if len(data):
            last = data
        else:
            missing += 1
        frames.append(last)
    if len(frames) != end - start:
        raise EpisodeSkipped(f"camera '{camera}' has {len(frames)} frame slots for steps "
                             f"{start}..{end - 1}; the file is damaged")
    first = next((f for f in frames if f is not None), None)
    if first is None:
        raise EpisodeSkipped(f"camera '{camera}' has no image in steps {start}..{end - 1}")
    return [f if f is not None else first for f in frames], missing


class FrameEncoder:
    """Makes encoded frames match one declared image feature.

    Args:
        width, height: declared size.
        encoding: ``"jpeg"`` or ``"png"``.
        jpeg_quality: quality used when a frame has to be re-encoded as JPEG.
    """

    def __init__(self, width: int, height: int, encoding: str, jpeg_quality: int = 95) -> None:
        self.width, self.height, self.encoding = width, height, encoding
        self._fitting_header: bytes | None = None
        if encoding == "jpeg":
            self._ext, self._params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        else:
            self._ext, self._params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]

    def fits(self, data: Buffer) -> bool:
        """True if ``data`` can be stored unchanged.

        Frames of one stream come from one encoder, so their headers share a layout: once a
        frame fits, the next ones are checked by comparing the same header bytes (the first
        bytes up to and including the size fields) instead of walking the markers again.
        """
        view = memoryview(data)
        known = self._fitting_header
        if known is not None and len(view) > len(known) and view[:len(known)] == known:
            return True
        span = _header_span(view)
        if span is None or span[0] != (self.encoding, self.height, self.width, 3):
            return False
        self._fitting_header = bytes(view[:span[1]])
        return True

    def encode_all(self, frames: list[Buffer]) -> tuple[list[Buffer], int]:
        """Pass through what fits, re-encode the rest. A frame repeated over several steps (gap
        filling, or a camera slower than the control loop) is converted once.

        Returns:
            The output frames and how many distinct frames were re-encoded.
        """
        converted: dict[bytes, bytes] = {}
        out = []
        for data in frames:
            if self.fits(data):
                out.append(data)
                continue
            key = bytes(data)  # views are not hashable; only frames to convert pay this copy
            result = converted.get(key)
            if result is None:
                result = converted[key] = self.convert(data)
            out.append(result)
        return out, len(converted)

    def convert(self, data: Buffer) -> bytes:
        """Decode, resize and encode one frame."""
        image = cv2.imdecode(np.frombuffer(data, np.uint8), self._decode_flag(data))
        if image is None:
            raise EpisodeSkipped("a camera frame cannot be decoded (damaged image data)")
        image = resize(image, self.width, self.height, cv2.INTER_AREA)
        ok, buf = cv2.imencode(self._ext, image, self._params)
        if not ok:
            raise EpisodeSkipped(f"a camera frame could not be encoded as {self.encoding}")
        return buf.tobytes()


    def _decode_flag(self, data: Buffer) -> int:
        """Let libjpeg downscale by 2, 4 or 8 while decoding (DCT scaling: several times faster
        than a full decode) as long as the result stays at least the target size."""
        shape = encoded_image_shape(data)
        if shape is None or shape[0] != "jpeg":
            return cv2.IMREAD_COLOR
        _, height, width, _ = shape
        for factor, flag in _REDUCED_DECODE:
            if width // factor >= self.width and height // factor >= self.height:
                return flag
        return cv2.IMREAD_COLOR


_REDUCED_DECODE = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                   (2, cv2.IMREAD_REDUCED_COLOR_2))


def resize(image: np.ndarray, width: int, height: int, shrink_interpolation: int) -> np.ndarray:
    """Resize to ``width`` x ``height``.

    ``shrink_interpolation`` is used when shrinking by 2x or more (area averaging avoids
    aliasing there); milder shrinking and growing use bilinear, which is several times faster
    than area averaging at non-integer ratios and, below 2x, looks the same.
    """
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    strong_shrink = w >= 2 * width or h >= 2 * height
    if shrink_interpolation == cv2.INTER_AREA and not strong_shrink:
        shrink_interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=shrink_interpolation)


def encode_depth(depth: np.ndarray, width: int, height: int) -> list[bytes]:
    """16-bit PNGs of ``depth`` frames ``[T, H, W]``, resized by nearest neighbour (depth values
    must not be blended across object edges)."""
    out = []
    for frame in depth:
        frame = resize(np.ascontiguousarray(frame, np.uint16), width, height, cv2.INTER_NEAREST)
        ok, buf = cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise EpisodeSkipped("a depth frame could not be encoded as PNG")
        out.append(buf.tobytes())
    return out
