"""Small painted read-outs of the Teleop dock: centred value bars and button lamps.

Painted rather than built from widgets: they repaint every display frame, and a few rectangles
cost far less than dozens of progress bars and labels.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from vla_studio.ui.widgets.teleop_diagram import ACTIVE, BG, CONTROL, EDGE, MUTED, TEXT


class BarsView(QWidget):
    """Labelled horizontal bars centred on zero (command velocities, raw axes)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[tuple[str, float, str]] = []  # (label, fraction in [-1, 1], text)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_items(self, items: list[tuple[str, float, str]]) -> None:
        if items == self.items:
            return
        if len(items) != len(self.items):
            self.setFixedHeight(max(18, 18 * len(items)))
        self.items = items
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(300, 18 * max(1, len(self.items)))

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), BG)
        font = QFont(self.font())
        font.setPointSizeF(8.5)
        p.setFont(font)
        name_w, value_w = 96.0, 86.0
        bar_w = max(40.0, self.width() - name_w - value_w - 8)
        for i, (label, frac, text) in enumerate(self.items):
            y = i * 18.0
            p.setPen(MUTED)
            p.drawText(QRectF(4, y, name_w - 6, 18), int(Qt.AlignmentFlag.AlignVCenter), label)
            bar = QRectF(name_w, y + 4, bar_w, 10)
            p.fillRect(bar, CONTROL)
            mid = bar.center().x()
            frac = max(-1.0, min(1.0, frac if math.isfinite(frac) else 0.0))
            p.fillRect(QRectF(min(mid, mid + frac * bar_w / 2), bar.top(), abs(frac) * bar_w / 2,
                              bar.height()), ACTIVE)
            p.fillRect(QRectF(mid - 0.5, bar.top() - 2, 1, bar.height() + 4), EDGE)
            p.setPen(TEXT)
            p.drawText(QRectF(name_w + bar_w + 6, y, value_w, 18),
                       int(Qt.AlignmentFlag.AlignVCenter), text)
        p.end()


class LampsView(QWidget):
    """Button lamps in a grid: lit while held."""

    COLUMNS = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[tuple[str, bool]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_items(self, items: list[tuple[str, bool]]) -> None:
        if items == self.items:
            return
        rows = max(1, math.ceil(len(items) / self.COLUMNS))
        self.setFixedHeight(22 * rows)
        self.items = items
        self.update()

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), BG)
        font = QFont(self.font())
        font.setPointSizeF(8.0)
        p.setFont(font)
        w = self.width() / self.COLUMNS
        for i, (label, down) in enumerate(self.items):
            r = QRectF((i % self.COLUMNS) * w + 2, (i // self.COLUMNS) * 22 + 2, w - 4, 18)
            p.setPen(EDGE)
            p.setBrush(ACTIVE if down else CONTROL)
            p.drawRoundedRect(r, 4, 4)
            p.setPen(QColor("white") if down else TEXT)
            p.drawText(r, int(Qt.AlignmentFlag.AlignCenter), label)
        p.end()
