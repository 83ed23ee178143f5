"""A synthetic camera: moving colour bars paced at the configured rate, no hardware or files.

Used by benchmarks and tests that need many cameras at once, and as a stand-in in profiles.
Frames are precomputed (a ring of ``pattern_frames`` images), so producing one costs a reference,
not a render: the benchmark then measures our pipeline, not the pattern generator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from vla_studio.core.config import option
from vla_studio.devices.cameras.base import Camera, CameraConfig, CameraIntrinsics, RawFrame


@dataclass(frozen=True)
class SyntheticCameraConfig(CameraConfig):
    pattern_frames: int = option(30, min=1, max=600, help="distinct frames in the moving pattern")
    fail_after_frames: int = option(0, min=0, help="simulate an unplug after N frames (0 = never)")
    queue_frames: int = option(4, min=1, max=64,
                               help="frames the simulated device buffers while the reader is late")


class SyntheticCamera(Camera):
    """Colour bars that scroll one step per frame; depth is a ramp when enabled."""

    config_class = SyntheticCameraConfig
    config: SyntheticCameraConfig

    def __init__(self, config: SyntheticCameraConfig) -> None:
        super().__init__(config)
        self._frames: list[np.ndarray] = []
        self._depth: np.ndarray | None = None
        self._next_t = 0.0
        self._count = 0

    def _open(self) -> None:
        c = self.config
        if not self._frames:
            x = np.linspace(0.0, 1.0, c.width, endpoint=False)
            y = np.linspace(0.0, 1.0, c.height, endpoint=False)[:, None]
            for k in range(c.pattern_frames):
                phase = k / c.pattern_frames
                img = np.empty((c.height, c.width, 3), np.uint8)
                img[..., 0] = (127.5 * (1 + np.sin(2 * np.pi * (x + phase)))).astype(np.uint8)
                img[..., 1] = (255 * ((y + phase) % 1.0)).astype(np.uint8)
                img[..., 2] = (255 * (((x * 4).astype(int) + (y * 3).astype(int)) % 2)).astype(np.uint8)
                img.flags.writeable = False
                self._frames.append(img)
            if c.depth:
                self._depth = np.tile(np.linspace(300, 3000, c.width, dtype=np.uint16), (c.height, 1))
                self._depth.flags.writeable = False
        self._set_mode(width=c.width, height=c.height, fps=c.fps, fourcc="RGB3")
        f = 0.5 * c.width  # ~90 degree horizontal field of view
        self._set_intrinsics(CameraIntrinsics(c.width, c.height, f, f, c.width / 2, c.height / 2,
                                              depth_scale=0.001 if c.depth else None))
        self._next_t = time.monotonic()

    def _read(self, timeout_s: float) -> RawFrame | None:
        c = self.config
        if c.fail_after_frames and self._count >= c.fail_after_frames:
            raise OSError("synthetic camera unplugged (fail_after_frames reached)")
        due = self._next_t
        if not self._wait_until_due(due, timeout_s):
            return None
        # Like a real device, frames are produced on schedule whether or not anyone reads them:
        # a late reader gets the oldest buffered frame (with its true capture time), and frames
        # older than the device's queue are lost, which shows up as a device-index gap (a drop).
        behind = int((time.monotonic() - due) / self.period_s)
        if behind >= c.queue_frames:
            lost = behind - c.queue_frames + 1
            self._count += lost
            due += lost * self.period_s
        self._next_t = due + self.period_s
        k = self._count
        self._count += 1
        return RawFrame(color=self._frames[k % len(self._frames)] if c.color else None,
                        depth=self._depth, t_device=None, device_index=k, t_capture=due)

    def _close(self) -> None:
        self._count = 0 if self.config.fail_after_frames == 0 else self._count
