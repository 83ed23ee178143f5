"""Video storage of an episode's cameras: the layout in the episode file, and the frame source
that reads it (and, for cameras still stored as JPEG, reads those too).

A transcoded camera (see :mod:`vla_studio.data.transcode`) keeps its group
``steps/observation/image/<cam>`` with its per-step timing, and replaces the JPEG byte buffer,
index and per-frame CRCs by the camera's video, one packet per distinct frame::

    steps/observation/image/<cam>/          attrs: format = "av1" | "h264" (the codec), width,
                                            height, pix_fmt, fps, gop, crf, preset, encoder,
                                            source_format ("jpeg"), psnr_db_mean, psnr_db_min
        data            uint8 [N]      the packets' bytes, concatenated in frame order
        packets         int64 [F, 3]   (offset, length, key frame 0/1) of frame f's packet
        packet_crc32c   uint32 [F]     CRC-32C of each packet's bytes
        video_frame     int64 [T]      the frame each step shows (-1: the step had no image;
                                       steps that saw the same camera frame share it)
        extradata       uint8 [E]      codec extradata (usually empty: headers are in-band)
        frame_index, capture_time, device_time   per step, exactly as recorded

Packet ``f`` decodes to frame ``f`` (no reordering, see :mod:`vla_studio.data.video_codec`),
and every group of pictures starts with a key frame, so frame ``f`` decodes from the key frame
at or before it. The episode's root attribute ``storage`` says ``"video"`` once every colour
camera is video; depth is never transcoded (it stays lossless uint16).

:class:`EpisodeFrameSource` is the one :class:`~vla_studio.data.frame_source.FrameSource` every
reader opens (:func:`open_frame_source`): per camera it decodes JPEG/PNG bytes or video
packets, so a reader never needs to know how an episode is stored.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from vla_studio.data.episode_file import IMAGE
from vla_studio.data.frame_source import Hdf5JpegFrameSource
from vla_studio.data.video_codec import CODECS, FrameDecoder, to_rgb

PACKETS = "packets"
PACKET_CRC = "packet_crc32c"
VIDEO_FRAME = "video_frame"
EXTRADATA = "extradata"
# Datasets of a video camera group that are not one row per step.
VIDEO_BUFFERS = frozenset({"data", PACKETS, PACKET_CRC, EXTRADATA})
STORAGE_ATTR = "storage"
IMAGE_FORMATS = ("jpeg", "png")
RECENT_FRAMES = 32  # decoded frames kept per camera (two groups of pictures at 30 fps)


def is_video_format(fmt: str) -> bool:
    """Whether a camera group's ``format`` attribute names a video codec."""
    return fmt in CODECS


def camera_formats(f: h5py.File) -> dict[str, str]:
    """Each colour camera's stored format (``jpeg``, ``png``, ``av1``, ``h264``)."""
    images = f.get(IMAGE)
    out: dict[str, str] = {}
    for name in (images.keys() if isinstance(images, h5py.Group) else ()):
        fmt = images[name].attrs.get("format", "jpeg")
        out[name] = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    return out


def storage_of(formats: dict[str, str]) -> str:
    """One word for an episode's colour storage: ``jpeg``, ``png``, ``av1``, ``h264``,
    ``mixed`` (cameras differ) or ``none`` (no colour camera)."""
    kinds = set(formats.values())
    if not kinds:
        return "none"
    return kinds.pop() if len(kinds) == 1 else "mixed"


class _VideoStream:
    """One video camera: its packet table and a decoder positioned somewhere in it."""

    def __init__(self, group: h5py.Group, codec: str, file_lock: threading.Lock) -> None:
        self.codec = codec
        self.packets = np.asarray(group[PACKETS][()], np.int64).reshape(-1, 3)
        self.keys = np.flatnonzero(self.packets[:, 2] != 0)
        if len(self.packets) and (self.keys.size == 0 or self.keys[0] != 0):
            raise ValueError(f"camera video of {group.name} does not start with a key frame")
        extradata = group.get(EXTRADATA)
        self.extradata = bytes(extradata[()]) if extradata is not None and extradata.size else b""
        self._data = group["data"]
        self._file_lock = file_lock
        self.lock = threading.Lock()  # one decoder per camera: one caller at a time
        self._decoder: FrameDecoder | None = None
        # Frames decoded on the way to the one asked for (a seek decodes from its key frame):
        # stepping back within the group, or reading the next frame again, finds them here.
        self._recent: collections.OrderedDict[int, object] = collections.OrderedDict()
        self._queued: list[tuple[int, bytes]] = []  # packets read but not yet fed
        self.decoded = 0  # frames decoded (statistics: a seek decodes from its key frame)

    @property
    def num_frames(self) -> int:
        return len(self.packets)

    def key_before(self, frame: int) -> int:
        return int(self.keys[np.searchsorted(self.keys, frame, side="right") - 1])

    def key_after(self, frame: int) -> int:
        k = int(np.searchsorted(self.keys, frame, side="right"))
        return int(self.keys[k]) if k < self.keys.size else self.num_frames

    def frame(self, number: int):
        """Decoded frame ``number`` (the caller holds :attr:`lock`)."""
        hit = self._recent.get(number)
        if hit is not None:
            self._recent.move_to_end(number)
            return hit
        if not 0 <= number < self.num_frames:
            raise IndexError(f"video frame {number} out of range ({self.num_frames} frames)")
        if self._decoder is None:
            self._decoder = FrameDecoder(self.codec, self.extradata)
        dec = self._decoder
        key = self.key_before(number)
        if not dec.position < number or key > dec.position + 1:
            # Behind the decoder, or a key frame is nearer than decoding on: jump to it.
            dec.seek(key)
            self._queued = []
        while True:
            frame = dec.next_frame()
            if frame is not None:
                self.decoded += 1
                self._recent[dec.position] = frame
                while len(self._recent) > RECENT_FRAMES:
                    self._recent.popitem(last=False)
                if dec.position == number:
                    return frame
                continue
            if not self._queued and dec.fed + 1 < self.num_frames:
                # One read up to the end of this group of pictures; fed one packet at a time,
                # so a seek decodes no frame past the one asked for.
                start = dec.fed + 1
                end = min(self.num_frames, max(self.key_after(number), number + 1))
                self._queued = list(zip(range(start, end), self.read_packets(start, end)))
            if self._queued:
                dec.feed(*self._queued.pop(0))
            elif not dec.drained:
                dec.drain()
            else:
                raise ValueError(f"video frame {number} did not decode (the stream ends at "
                                 f"frame {dec.position})")

    def read_packets(self, start: int, end: int) -> list[bytes]:
        """Packets ``[start, end)`` (one read of their bytes)."""
        rows = self.packets[start:end]
        if not len(rows):
            return []
        low, high = int(rows[0, 0]), int(rows[-1, 0] + rows[-1, 1])
        with self._file_lock:
            block = self._data[low:high]
        return [block[o - low:o - low + n].tobytes() for o, n, _ in rows.tolist()]


class EpisodeFrameSource(Hdf5JpegFrameSource):
    """Frames of an episode file, whatever each camera's storage: JPEG/PNG bytes (decoded per
    frame) or video (decoded forward from the nearest key frame; reading in order, as
    :meth:`iter_color` does, decodes every frame once).

    Args:
        path: the episode file (sealed or still recording).

    Raises:
        EpisodeFileError: not a readable episode file.
    """

    def __init__(self, path: str | Path) -> None:
        self._video: dict[str, _VideoStream] = {}
        self._video_frame: dict[str, np.ndarray] = {}
        super().__init__(path)

    def _open_color(self, camera: str, group: h5py.Group) -> None:
        fmt = self._format.get(camera, "jpeg")
        if not is_video_format(fmt):
            super()._open_color(camera, group)
            return
        self._video[camera] = _VideoStream(group, fmt, self._lock)
        frames = np.asarray(group[VIDEO_FRAME][: self._n], np.int64)
        if frames.size and int(frames.max()) >= self._video[camera].num_frames:
            raise ValueError(f"camera {camera!r} steps point past its video")
        self._video_frame[camera] = frames

    def storage(self, camera: str) -> str:
        """How ``camera``'s colour frames are stored (``jpeg``, ``png``, ``av1``, ``h264``)."""
        return self._format.get(camera, "jpeg")

    def _has_frame(self, camera: str) -> np.ndarray | None:
        frames = self._video_frame.get(camera)
        return super()._has_frame(camera) if frames is None else frames >= 0

    def frame_ids(self, camera: str) -> np.ndarray:
        frames = self._video_frame.get(camera)
        return super().frame_ids(camera) if frames is None else frames.copy()

    def read_encoded(self, camera: str, step: int) -> bytes:
        if camera in self._video:
            raise ValueError(f"camera {camera!r} is stored as {self._format[camera]} video: its "
                             "frames have no encoded image of their own (use read_color)")
        return super().read_encoded(camera, step)

    def read_color(self, camera: str, step: int,
                   fit: tuple[int, int] | None = None) -> np.ndarray | None:
        stream = self._video.get(camera)
        if stream is None:
            return super().read_color(camera, step, fit)
        number = int(self._video_frame[camera][step])
        if number < 0:
            return None
        with stream.lock:
            return to_rgb(stream.frame(number), fit)

    def iter_color(self, camera: str, steps: list[int], fit: tuple[int, int] | None = None
                   ) -> Iterator[tuple[int, np.ndarray | None]]:
        # The decoder keeps its place between calls: steps in increasing order decode each
        # frame once; a step behind it jumps back to that frame's key frame.
        for step in steps:
            yield step, self.read_color(camera, step, fit)

    def decoded_video_frames(self, camera: str) -> int:
        """Video frames decoded so far for ``camera`` (0 for a JPEG camera)."""
        stream = self._video.get(camera)
        return stream.decoded if stream is not None else 0

    def video_packets(self, camera: str) -> np.ndarray | None:
        """``[F, 3]`` (offset, length, key) of a video camera's packets (None: not video)."""
        stream = self._video.get(camera)
        return None if stream is None else stream.packets


def open_frame_source(path: str | Path) -> EpisodeFrameSource:
    """The frame source of an episode file, for any storage (the one every reader uses)."""
    return EpisodeFrameSource(path)
