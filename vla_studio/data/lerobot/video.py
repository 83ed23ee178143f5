"""One LeRobot video file per camera: episodes' frames appended in order to an MP4, the next
file started once one passes the size limit (LeRobot v3 packs many episodes per file and
finds each by its time range)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from vla_studio.data.video_codec import CODECS, check_codec

VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


class CameraVideo:
    """Appends RGB frames of one camera to ``videos/<key>/chunk-000/file-NNN.mp4`` files.

    Args:
        root: the dataset folder being written.
        key: the feature name (``observation.images.front``).
        fps: frames per second of the dataset (frame ``n`` of a file is at ``n / fps``).
        codec: ``"av1"`` (LeRobot's default, SVT-AV1) or ``"h264"``.
        crf, gop: quality and key-frame spacing (LeRobot's defaults: 30 and 2, so a training
            sampler reaches any frame by decoding at most one other).
        file_limit_mb: start a new file past this size.
    """

    def __init__(self, root: Path, key: str, fps: int, *, codec: str = "av1", crf: int = 30,
                 gop: int = 2, file_limit_mb: float = 200.0) -> None:
        check_codec(codec)
        self.root, self.key, self.fps = root, key, int(fps)
        self.codec, self.crf, self.gop = codec, crf, gop
        self.file_limit = file_limit_mb * 1e6
        self.file_index = 0
        self.frames_in_file = 0
        self._container = None
        self._stream = None
        self.size: tuple[int, int] | None = None  # (width, height)

    @property
    def path(self) -> Path:
        return self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=0,
                                             file_index=self.file_index)

    def begin_episode(self) -> tuple[int, float]:
        """Where the next episode starts: (file index, from_timestamp in seconds)."""
        if self._container is not None and self.path.exists() and \
                self.path.stat().st_size >= self.file_limit:
            self._close()
            self.file_index += 1
            self.frames_in_file = 0
        return self.file_index, self.frames_in_file / self.fps

    def add(self, rgb: np.ndarray) -> None:
        import av

        if self._container is None:
            self._open(rgb.shape[1], rgb.shape[0])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames_in_file
        frame.time_base = Fraction(1, self.fps)
        self.frames_in_file += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def end_episode(self) -> float:
        """The episode's to_timestamp."""
        return self.frames_in_file / self.fps

    def close(self) -> None:
        self._close()

    def _open(self, width: int, height: int) -> None:
        import av

        self.size = (width, height)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w")
        options = {"g": str(self.gop), "crf": str(self.crf)}
        if self.codec == "av1":
            options.update({"preset": "12", "svtav1-params": "lp=1"})
        else:
            options.update({"preset": "veryfast", "threads": "1"})
        stream = self._container.add_stream(CODECS[self.codec][0], rate=self.fps,
                                            options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, self.fps)
        self._stream = stream

    def _close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._container = self._stream = None

    def info(self) -> dict:
        """The feature's ``info`` block of ``meta/info.json``."""
        width, height = self.size or (0, 0)
        return {"video.height": height, "video.width": width, "video.codec": self.codec,
                "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": self.fps,
                "video.channels": 3, "has_audio": False}
