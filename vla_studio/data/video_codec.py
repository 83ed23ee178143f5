"""Video coding of camera frames with PyAV: settings, an encoder and a decoder that work on
single packets (no container), and the picture-quality measure the transcoder checks.

Episode files store a transcoded camera as its raw encoded packets, one per frame, in display
order (see :mod:`vla_studio.data.video_storage`). Both codecs are set up so that packet ``i``
decodes to frame ``i``: SVT-AV1 never reorders packets (AV1 hides reordering inside its
temporal units) and x264 runs without B-frames. Every group of pictures is closed and starts
with a key frame, so any frame decodes from the key frame before it.

Encoders and decoders use one thread each: the transcoder runs beside the control loop on a
two-core machine and must leave it a core.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

VideoCodec = Literal["av1", "h264"]
# codec -> (PyAV encoder, PyAV decoder)
CODECS: dict[str, tuple[str, str]] = {"av1": ("libsvtav1", "libdav1d"), "h264": ("libx264", "h264")}
PIX_FMT = "yuv420p"
# SVT-AV1 prints its whole configuration to stderr at every encoder start unless told not to.
os.environ.setdefault("SVT_LOG", "1")


class VideoCodecError(RuntimeError):
    """The codec cannot be used here (not in this PyAV build) or produced something unusable."""


@dataclass(frozen=True)
class VideoSettings:
    """How camera frames are transcoded.

    Attributes:
        codec: ``"av1"`` (SVT-AV1, the default: smallest files) or ``"h264"`` (x264: faster to
            encode, decoded by everything).
        crf: constant-rate factor: higher is smaller and blurrier. The defaults give about
            40 dB PSNR against the JPEGs on the simulator's cameras.
        preset: encoder speed preset (SVT-AV1 0-13, faster when higher; x264 by name).
        gop_s: seconds between key frames; a replay seek decodes at most this much video, so it
            bounds the seek time (0.5 s of 640x480 decodes in ~5 ms).
        min_psnr_db: the transcoder keeps the JPEGs unless every frame decodes to at least this
            PSNR against its JPEG (a check that the video is the same pictures, not a quality
            target: a wrong or broken picture scores well under 20 dB; a noisy camera at the
            default crf 25-35 dB, a clean one 40).
    """

    codec: VideoCodec = "av1"
    crf: int = 38
    preset: str = ""
    gop_s: float = 0.5
    min_psnr_db: float = 20.0

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"video codec {self.codec!r} is not supported; use one of "
                             f"{', '.join(CODECS)}")
        if not 0 <= int(self.crf) <= 63:
            raise ValueError(f"crf {self.crf} must be 0..63")
        if self.gop_s <= 0:
            raise ValueError(f"gop_s {self.gop_s} must be positive")

    @property
    def encoder_name(self) -> str:
        return CODECS[self.codec][0]

    @property
    def decoder_name(self) -> str:
        return CODECS[self.codec][1]

    def effective_preset(self) -> str:
        return self.preset or ("12" if self.codec == "av1" else "veryfast")

    def gop_frames(self, fps: float) -> int:
        """Frames per group of pictures at ``fps``."""
        return max(1, int(round(self.gop_s * (fps if fps > 0 else 30.0))))


def check_codec(codec: str) -> None:
    """Raise :class:`VideoCodecError` unless this PyAV build can encode and decode ``codec``."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency
        raise VideoCodecError("PyAV is not installed (pip install av)") from exc
    encoder, decoder = CODECS[codec]
    for name, mode in ((encoder, "w"), (decoder, "r")):
        try:
            av.Codec(name, mode)
        except Exception:
            raise VideoCodecError(f"this PyAV/FFmpeg build has no {name} "
                                  f"{'encoder' if mode == 'w' else 'decoder'} for {codec}; "
                                  f"choose another codec in the station profile "
                                  f"([recording] video_codec)") from None


class FrameEncoder:
    """Encodes RGB frames of one camera into one packet per frame.

    Args:
        settings: codec and quality.
        width, height: frame size (even numbers are safest for 4:2:0; odd sizes are cropped by
            the codec's padding rules and rejected here).
        fps: the camera's nominal rate (sets the key-frame spacing and the time base).
    """

    def __init__(self, settings: VideoSettings, width: int, height: int, fps: float) -> None:
        import av

        check_codec(settings.codec)
        if width % 2 or height % 2:
            raise VideoCodecError(f"{width}x{height} frames cannot be stored as 4:2:0 video "
                                  "(width and height must be even)")
        self.settings = settings
        self.gop = settings.gop_frames(fps)
        ctx = av.CodecContext.create(settings.encoder_name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, PIX_FMT
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30)
        ctx.time_base = 1 / rate
        ctx.framerate = rate
        options = {"crf": str(int(settings.crf)), "g": str(self.gop),
                   "preset": settings.effective_preset()}
        if settings.codec == "av1":
            options["svtav1-params"] = "lp=1"  # one logical processor (SVT's GOPs are closed)
        else:
            options.update({"bf": "0", "threads": "1"})  # no reordering; x264's GOPs are closed
        ctx.options = options
        self._ctx = ctx
        self._next_pts = 0
        self._flushed = False
        self.extradata = b""

    def close(self) -> None:
        """End the stream if it was not flushed (an encode given up halfway)."""
        if not self._flushed and self._next_pts:
            try:
                self._ctx.encode(None)
            except Exception:  # noqa: BLE001 - only tidying up after a failure
                pass
            self._flushed = True

    def encode(self, rgb: np.ndarray | None) -> list[tuple[bytes, bool]]:
        """Encode one frame (``HxWx3`` uint8 RGB), or flush with None; returns the packets that
        came out, ``(bytes, is_key_frame)`` in order."""
        import av

        if rgb is None:
            packets = self._ctx.encode(None)
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self._next_pts
            self._next_pts += 1
            packets = self._ctx.encode(frame)
        out = [(bytes(p), bool(p.is_keyframe)) for p in packets]
        self._flushed = rgb is None
        if self._ctx.extradata and not self.extradata:
            self.extradata = bytes(self._ctx.extradata)
        return out


class FrameDecoder:
    """Decodes one camera's packets (one thread), keeping track of where it is so that
    reading forward never decodes a frame twice.

    Args:
        codec: ``"av1"`` or ``"h264"``.
        extradata: the stream's codec extradata (empty for in-band headers).
    """

    def __init__(self, codec: str, extradata: bytes = b"") -> None:
        import av

        check_codec(codec)
        self._av = av
        ctx = av.CodecContext.create(CODECS[codec][1], "r")
        ctx.thread_count = 1
        if extradata:
            ctx.extradata = extradata
        self._ctx = ctx
        self.position = -1  # the last frame number handed out
        self.fed = -1  # the last packet number fed
        self.drained = False  # the end of the stream was signalled since the last seek
        self._pending: list = []  # decoded frames not yet handed out (decoder output delay)

    def seek(self, key_frame: int) -> None:
        """Start again at key frame ``key_frame`` (the next packet fed must be that one)."""
        self._ctx.flush_buffers()
        self.position = self.fed = key_frame - 1
        self.drained, self._pending = False, []

    def feed(self, number: int, packet: bytes) -> None:
        """Feed packet ``number`` (in order, from the key frame given to :meth:`seek`)."""
        self._pending.extend(self._ctx.decode(self._av.Packet(packet)))
        self.fed = number

    def drain(self) -> None:
        """Signal the end of the stream: the decoder hands out every frame it still holds."""
        self._pending.extend(self._ctx.decode(None))
        self._ctx.flush_buffers()
        self.drained = True

    def next_frame(self):
        """The next decoded frame (a PyAV ``VideoFrame``) or None when the decoder needs more
        packets; frames come out in packet order."""
        if not self._pending:
            return None
        self.position += 1
        return self._pending.pop(0)


def to_rgb(frame, fit: tuple[int, int] | None = None) -> np.ndarray:
    """A decoded PyAV frame as ``HxWx3`` uint8 RGB, scaled to fit ``fit`` = (width, height)
    keeping its aspect ratio.

    4:2:0 frames are converted by OpenCV (BT.601 video range, as FFmpeg's default), which
    releases the GIL and is about five times faster than swscale's RGB conversion with
    scaling: a replay seek converts a frame per camera.
    """
    import cv2

    from vla_studio.data.frame_source import fit_frame

    if frame.format.name == PIX_FMT and frame.width % 2 == 0 and frame.height % 2 == 0:
        rgb = cv2.cvtColor(frame.to_ndarray(format=PIX_FMT), cv2.COLOR_YUV2RGB_I420)
    else:
        rgb = frame.to_ndarray(format="rgb24")
    return rgb if fit is None else fit_frame(rgb, fit)


def psnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio of ``test`` against ``reference`` (uint8 images), in dB
    (100 for identical images)."""
    import cv2

    value = float(cv2.PSNR(reference, test))
    return min(value, 100.0)
