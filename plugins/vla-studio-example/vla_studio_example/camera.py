"""A checkerboard test-pattern camera with a bar that moves one column per frame."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from vla_studio.core.config import option
from vla_studio.devices.cameras.base import Camera, CameraConfig, RawFrame


@dataclass(frozen=True)
class TestPatternConfig(CameraConfig):
    square: int = option(32, min=2, help="checkerboard square size, pixels")


class TestPatternCamera(Camera):
    """Checkerboard with a moving white bar (plugin example)."""

    config_class = TestPatternConfig
    config: TestPatternConfig

    def _open(self) -> None:
        c = self.config
        yy, xx = np.mgrid[0:c.height, 0:c.width]
        board = (((yy // c.square) + (xx // c.square)) % 2 * 200 + 30).astype(np.uint8)
        self._board = np.repeat(board[..., None], 3, axis=2)
        self._k = 0
        self._next = time.monotonic()
        self._set_mode(width=c.width, height=c.height, fps=c.fps, fourcc="RGB3")

    def _read(self, timeout_s: float) -> RawFrame | None:
        wait = self._next - time.monotonic()
        if wait > timeout_s:
            time.sleep(timeout_s)
            return None
        time.sleep(max(0.0, wait))
        self._next += self.period_s
        img = self._board.copy()
        img[:, self._k % self.config.width] = 255
        self._k += 1
        return RawFrame(color=img, device_index=self._k)

    def _close(self) -> None:
        pass
