"""The central camera area: one live pane per camera of the station.

Frames are taken from the control loop's latest Step at display rate (never at camera rate) and
turned into a pixmap once per new frame.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from vla_studio.core.types import Frame, Step
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge


def frame_to_qimage(rgb: np.ndarray) -> QImage:
    """Wrap an HxWx3 uint8 RGB array as a QImage without copying (keep ``rgb`` alive)."""
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888)


class CameraPane(QWidget):
    """A camera's latest image scaled to fit, with its name and status underneath."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.image = QLabel(f"{name}: waiting for frames")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(160, 120)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.image.setObjectName("cameraImage")
        self.caption = QLabel(name)
        self.caption.setObjectName("cameraCaption")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.caption)
        self.shown_index = -1
        self._pixmap: QPixmap | None = None

    def show_frame(self, frame: Frame) -> None:
        if frame.index == self.shown_index or frame.color is None:
            return
        self.shown_index = frame.index
        self._pixmap = QPixmap.fromImage(frame_to_qimage(frame.color))
        self._rescale()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is not None:
            self.image.setPixmap(self._pixmap.scaled(
                self.image.size(), Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation))


class CameraGrid(QWidget):
    """Live panes for every camera of a station, arranged in a near-square grid."""

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.panes = {name: CameraPane(name) for name in station.cameras}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        cols = max(1, math.ceil(math.sqrt(len(self.panes))))
        for i, pane in enumerate(self.panes.values()):
            grid.addWidget(pane, i // cols, i % cols)
        if not self.panes:
            empty = QLabel("This station has no cameras.")
            empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(empty, 0, 0)
        bridge.step.connect(self.show_step)
        bridge.frame_tick.connect(self.show_status)

    def show_step(self, step: Step) -> None:
        for name, frame in step.observation.frames.items():
            pane = self.panes.get(name)
            if pane is not None and frame is not None:
                pane.show_frame(frame)

    def show_status(self) -> None:
        for name, cam in self.station.cameras.items():
            s = cam.status()
            self.panes[name].caption.setText(
                f"{name}  {s.state.value}  {s.fps:.1f} fps  drops {s.dropped}"
                + (f"  — {s.last_error}" if s.last_error and s.state.value != "streaming" else ""))
