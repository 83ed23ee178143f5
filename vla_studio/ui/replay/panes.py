"""The replay's picture panes: one per colour camera, depth (colour-mapped), the re-executed view.

A pane is handed display-sized RGB arrays (decoded and resized on the ``replay-frames``
thread, see :mod:`vla_studio.data.frame_reader`) and blits them letterboxed; its header says the
camera, the frame's age at the playhead (capture-time synchronisation picks the frame captured
last before the tick) and when there is no frame. :attr:`ReplayPane.painted_step` is the step
whose picture was last painted: the benchmark and the tests wait on it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QGridLayout, QSizePolicy, QWidget

from vla_studio.ui.replay.style import BACKGROUND, BORDER, MUTED, TEXT
from vla_studio.ui.widgets.camera_image import fit_rect

HEADER_PX = 20


class ReplayPane(QWidget):
    """One camera's picture at the playhead.

    Signals:
        resized(str, object): the pane's picture area changed to ``(width, height)`` device
            pixels (the frame reader decodes to it from then on).
        painted(int): a picture of this step was painted.

    Args:
        key: the frame key (``front``, ``wrist:depth``, ``front:sim``).
        title: what the header says (``front``, ``wrist depth``).
    """

    resized = Signal(str, object)
    painted = Signal(int)

    def __init__(self, key: str, title: str, source_size: tuple[int, int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key, self.title = key, title
        self.source_size = QSize(*source_size)
        self.setObjectName("replayPane")
        self.setMinimumSize(100, 80)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._frame: np.ndarray | None = None
        self._image: QImage | None = None
        self._step = -1
        self._note = ""
        self._detail = ""
        self.painted_step = -1
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(7.5, self.font().pointSizeF() * 0.9))

    def picture_rect(self) -> QRect:
        area = self.rect().adjusted(0, HEADER_PX, 0, 0)
        return fit_rect(self.source_size, area)

    def show_frame(self, step: int, frame: np.ndarray | None, note: str = "",
                   detail: str = "") -> None:
        """Show ``frame`` (``HxWx3`` RGB, None = no frame) for ``step``; ``note`` goes in the
        header's right corner (the frame's age), ``detail`` in the tooltip."""
        self._step, self._frame, self._note = step, frame, note
        if detail != self._detail:
            self._detail = detail
            self.setToolTip(detail)
        if frame is None:
            self._image = None
        else:
            frame = np.ascontiguousarray(frame)
            self._frame = frame
            h, w = frame.shape[:2]
            self._image = QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_RGB888)
        self.update()

    def clear(self) -> None:
        self.show_frame(-1, None)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        rect = self.picture_rect()
        ratio = self.devicePixelRatioF()
        self.resized.emit(self.key, (round(rect.width() * ratio), round(rect.height() * ratio)))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(BACKGROUND))
        p.setFont(self._font)
        header = QRect(0, 0, self.width(), HEADER_PX)
        p.fillRect(header, QColor("#1d2024"))
        p.setPen(QColor(BORDER))
        p.drawLine(header.bottomLeft(), header.bottomRight())
        metrics = p.fontMetrics()
        note_px = metrics.horizontalAdvance(self._note) + 12 if self._note else 0
        title = metrics.elidedText(self.title, Qt.TextElideMode.ElideRight,
                                   max(20, self.width() - 16 - note_px))
        p.setPen(QColor(TEXT))
        p.drawText(header.adjusted(8, 0, -8, 0), Qt.AlignmentFlag.AlignVCenter, title)
        p.setPen(QColor(MUTED))
        p.drawText(header.adjusted(8, 0, -8, 0),
                   Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, self._note)
        target = self.picture_rect()
        if self._image is not None:
            if self._image.size() == target.size():
                p.drawImage(target.topLeft(), self._image)
            else:  # cached at another size (the pane was resized since): scale once here
                p.drawImage(target, self._image)
        elif self._step >= 0:
            p.setPen(QColor("#6b727b"))
            p.drawText(target, Qt.AlignmentFlag.AlignCenter, "no frame")
        p.end()
        if self._step >= 0:
            self.painted_step = self._step
            self.painted.emit(self._step)


class PaneGrid(QWidget):
    """The panes in one row (up to four), or two rows for more."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panes: dict[str, ReplayPane] = {}
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)

    def set_panes(self, panes: list[ReplayPane]) -> None:
        for pane in self.panes.values():
            self._layout.removeWidget(pane)
            pane.deleteLater()
        self.panes = {p.key: p for p in panes}
        columns = len(panes) if len(panes) <= 4 else (len(panes) + 1) // 2
        for i, pane in enumerate(panes):
            self._layout.addWidget(pane, i // max(1, columns), i % max(1, columns))
        for c in range(max(1, columns)):
            self._layout.setColumnStretch(c, 1)

    def add_pane(self, pane: ReplayPane, after: str | None = None) -> None:
        """Add ``pane`` (the re-executed view beside its recorded camera)."""
        order = list(self.panes.values())
        keys = list(self.panes)
        index = keys.index(after) + 1 if after in self.panes else len(order)
        if pane.key in self.panes:
            return
        order.insert(index, pane)
        for p in self.panes.values():
            self._layout.removeWidget(p)
        self.panes = {p.key: p for p in order}
        columns = len(order) if len(order) <= 4 else (len(order) + 1) // 2
        for i, p in enumerate(order):
            self._layout.addWidget(p, i // columns, i % columns)
            self._layout.setColumnStretch(i % columns, 1)
