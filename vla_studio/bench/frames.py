"""Realistic synthetic frames for benchmarks, and a camera that delivers them.

Colour bars compress far better than a camera image, so a recording benchmark fed with them
under-states the JPEG encoder's work and the file size. These frames are a table-like texture
(smooth colour blobs plus sensor noise: ~35 kB per 640x480 frame at JPEG q90, like a real
scene) that shifts every frame, with fresh noise in each.
"""

from __future__ import annotations

import bisect
import threading

import cv2
import numpy as np

from vla_studio.devices.cameras.base import RawFrame
from vla_studio.devices.cameras.synthetic import SyntheticCamera, SyntheticCameraConfig


def scene_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A table-like RGB texture: smooth colour blobs, a little sensor noise."""
    small = rng.integers(0, 255, (max(2, height // 48), max(2, width // 48), 3), np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(0, 4, (height, width, 3), np.uint8)
    return cv2.GaussianBlur(cv2.add(image, noise), (3, 3), 0)


def texture_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` read-only frames of one scene texture, shifted 3 pixels per frame, each with
    its own sensor noise (so every frame is a new JPEG of realistic size)."""
    rng = np.random.default_rng(seed)
    texture = scene_texture(rng, width, height)
    frames = []
    for k in range(count):
        noise = rng.integers(0, 4, (height, width, 3), np.uint8)
        frame = cv2.add(np.roll(texture, 3 * k, axis=1), noise)
        frame.flags.writeable = False
        frames.append(frame)
    return frames


class TextureCamera(SyntheticCamera):
    """The synthetic camera (same pacing, device queue and drops) with realistic frames, which
    also logs every frame it produces, so a benchmark can tell which ones never reached a file.

    Args:
        config: the synthetic camera's config (``pattern_frames`` distinct frames).
        seed: texture seed (give each camera its own scene).
    """

    def __init__(self, config: SyntheticCameraConfig, seed: int = 0) -> None:
        super().__init__(config)
        self._seed = seed
        self._log_lock = threading.Lock()
        self._produced: list[tuple[int, float]] = []  # (device index, capture time), in order

    def _open(self) -> None:
        if not self._frames:  # the base class keeps frames it finds instead of drawing bars
            c = self.config
            self._frames = texture_frames(c.width, c.height, c.pattern_frames, self._seed)
        super()._open()

    def _read(self, timeout_s: float) -> RawFrame | None:
        raw = super()._read(timeout_s)
        if raw is not None and raw.device_index is not None and raw.t_capture is not None:
            with self._log_lock:
                self._produced.append((raw.device_index, raw.t_capture))
        return raw

    def produced_between(self, t_begin: float, t_end: float) -> list[float]:
        """Capture times of every frame the device produced in ``[t_begin, t_end]``, including
        frames lost in its queue (their times follow from the fixed frame period)."""
        with self._log_lock:
            produced = list(self._produced)
        times: list[float] = []
        period = self.period_s
        for i, (k, t) in enumerate(produced):
            # Device indices skipped before the next delivered frame were lost in the queue;
            # the schedule is periodic, so their capture times follow from this one's.
            next_k = produced[i + 1][0] if i + 1 < len(produced) else k + 1
            times.extend(t + j * period for j in range(next_k - k))
        lo, hi = bisect.bisect_left(times, t_begin), bisect.bisect_right(times, t_end)
        return times[lo:hi]
