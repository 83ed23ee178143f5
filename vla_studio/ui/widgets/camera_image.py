"""Camera frames to QImages for the panes: at most one copy per frame on the GUI side.

A colour frame already at the pane's size is wrapped as a QImage without copying; otherwise it
is resized once with OpenCV (which releases the GIL) to exactly the pixels drawn, so painting is
an unscaled blit. Depth is resized (nearest neighbour: never blends valid with invalid pixels),
mapped to 8-bit indices and drawn through a colour table, so the colour mapping costs Qt's blit
and nothing in Python. Invalid depth (0) is black.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, qRgb

DEFAULT_DEPTH_SCALE = 0.001  # metres per unit, when a camera does not say


def fit_rect(source: QSize, area: QRect) -> QRect:
    """The largest rectangle with ``source``'s aspect ratio centred in ``area``."""
    if source.isEmpty() or area.isEmpty():
        return QRect(area.topLeft(), QSize(0, 0))
    scaled = source.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
    x = area.x() + (area.width() - scaled.width()) // 2
    y = area.y() + (area.height() - scaled.height()) // 2
    return QRect(x, y, scaled.width(), scaled.height())


@dataclass
class RenderedImage:
    """A QImage ready to blit and the array its pixels live in (kept alive with it)."""

    image: QImage
    pixels: np.ndarray
    target: QRect  # where it is drawn, widget coordinates


def render_color(rgb: np.ndarray, target: QRect, device_pixel_ratio: float = 1.0) -> RenderedImage:
    """``rgb`` (HxWx3 uint8) as a QImage of exactly ``target``'s size in device pixels."""
    w = max(1, round(target.width() * device_pixel_ratio))
    h = max(1, round(target.height() * device_pixel_ratio))
    if (h, w) != rgb.shape[:2]:
        # Linear is 8x faster than area averaging and looks the same down to half size.
        shrink = w < rgb.shape[1] * 0.5
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    elif not rgb.flags.c_contiguous:
        rgb = np.ascontiguousarray(rgb)
    image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888)
    image.setDevicePixelRatio(device_pixel_ratio)
    return RenderedImage(image, rgb, target)


def turbo_color_table() -> list[int]:
    """256 colours: index 0 black (no depth), 1..255 the Turbo colormap from near to far."""
    ramp = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), cv2.COLORMAP_TURBO)
    table = [qRgb(int(r), int(g), int(b)) for b, g, r in ramp[0]]
    table[0] = QColor(0, 0, 0).rgb()
    return table


class DepthColormap:
    """Maps depth in device units to colours over a metric range.

    Args:
        near_m, far_m: the range the colours span; nearer is clamped to the first colour, farther
            to the last.
        auto: follow the scene (5th..95th percentile of valid depth, updated every few frames).
    """

    AUTO_EVERY = 10  # frames between automatic range updates

    def __init__(self, near_m: float = 0.2, far_m: float = 4.0, auto: bool = True) -> None:
        self.near_m, self.far_m, self.auto = near_m, far_m, auto
        self.table = turbo_color_table()
        self._frames = 0

    def set_range(self, near_m: float, far_m: float) -> None:
        """A fixed range (turns automatic ranging off)."""
        if not 0 <= near_m < far_m:
            raise ValueError(f"depth range {near_m}..{far_m} m: near must be below far")
        self.near_m, self.far_m, self.auto = near_m, far_m, False

    def update_auto(self, depth: np.ndarray, scale: float) -> None:
        if not self.auto:
            return
        self._frames += 1
        if self._frames % self.AUTO_EVERY != 1:
            return
        sample = depth[::8, ::8]
        valid = sample[sample > 0]
        if valid.size < 16:
            return
        lo, hi = np.percentile(valid, (5, 95)) * scale
        if hi - lo < 0.05:
            hi = lo + 0.05
        self.near_m, self.far_m = float(lo), float(hi)

    def render(self, depth: np.ndarray, target: QRect, scale: float | None,
               device_pixel_ratio: float = 1.0) -> RenderedImage:
        """``depth`` (HxW uint16) as an indexed QImage of ``target``'s size."""
        scale = scale or DEFAULT_DEPTH_SCALE
        self.update_auto(depth, scale)
        w = max(1, round(target.width() * device_pixel_ratio))
        h = max(1, round(target.height() * device_pixel_ratio))
        if (h, w) != depth.shape[:2]:
            depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
        near_u = self.near_m / scale
        span_u = max(1.0, (self.far_m - self.near_m) / scale)
        # Saturating subtract keeps nearer-than-near at 0 before scaling into 1..255.
        shifted = cv2.subtract(depth, np.array([min(65535.0, near_u)]), dtype=cv2.CV_16U) \
            if near_u > 0 else depth
        indices = cv2.convertScaleAbs(shifted, alpha=254.0 / span_u, beta=1.0)
        np.putmask(indices, depth == 0, 0)
        image = QImage(indices.data, w, h, indices.strides[0], QImage.Format.Format_Indexed8)
        image.setColorTable(self.table)
        image.setDevicePixelRatio(device_pixel_ratio)
        return RenderedImage(image, indices, target)

    def legend(self) -> str:
        return f"{self.near_m:.2f}–{self.far_m:.2f} m" + (" (auto)" if self.auto else "")
