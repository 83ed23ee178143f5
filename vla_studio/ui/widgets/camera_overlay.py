"""Overlay layers: what other features draw over a camera pane (confidence, motion, notes).

The protocol, for anything that wants to draw on a camera::

    class MyLayer:                      # or subclass Overlay for the defaults
        name = "policy confidence"      # shown in the pane's right-click menu (Overlays)
        visible = True                  # the operator can hide it there
        z = 10                          # paint order: higher on top; the status HUD is 100

        def paint(self, painter: QPainter, rect: QRectF, frame: Frame | None) -> None:
            ...

    grid.pane("front").add_overlay(MyLayer())

``paint`` is called on the GUI thread each time the pane paints (once per new frame, and on
resize), with the painter's state saved and restored around it. ``rect`` is where the image is
drawn, in widget coordinates; ``frame`` is the frame on screen (None before the first one). To
draw in image pixel coordinates (a projected trajectory, a box), use
``painter.setTransform(image_transform(rect, frame), True)``. Rules:

* be quick (well under a millisecond): it runs inside the display path of every frame;
* never block and never touch other threads' mutable state: give the layer new data through a
  Qt signal or as an immutable value, then call ``pane.update()`` to show it at once;
* a layer that raises is switched off (and the pane says which), so it cannot break the camera.
"""

from __future__ import annotations

import abc
from typing import Protocol, Sequence, runtime_checkable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF, QTransform

from vla_studio.core.types import Frame


@runtime_checkable
class OverlayLayer(Protocol):
    """Something drawn over a camera image. See the module docstring for the contract."""

    name: str
    visible: bool
    z: int

    def paint(self, painter: QPainter, rect: QRectF, frame: Frame | None) -> None: ...


class Overlay(abc.ABC):
    """Convenience base for layers: a name, visible by default, z = 0; subclasses paint."""

    z = 0

    def __init__(self, name: str, z: int | None = None) -> None:
        self.name = name
        self.visible = True
        if z is not None:
            self.z = z

    @abc.abstractmethod
    def paint(self, painter: QPainter, rect: QRectF, frame: Frame | None) -> None:
        """Draw over the image (see the module docstring)."""


def frame_size(frame: Frame | None) -> tuple[int, int] | None:
    """(width, height) of the frame's colour image, else its depth image."""
    if frame is None:
        return None
    image = frame.color if frame.color is not None else frame.depth
    return None if image is None else (image.shape[1], image.shape[0])


def image_transform(rect: QRectF, frame: Frame | None) -> QTransform:
    """Maps image pixel coordinates of ``frame`` onto ``rect`` (identity without a frame)."""
    size = frame_size(frame)
    if size is None or size[0] == 0 or size[1] == 0:
        return QTransform()
    return QTransform.fromTranslate(rect.x(), rect.y()).scale(rect.width() / size[0],
                                                              rect.height() / size[1])


def outlined_text(painter: QPainter, point: QPointF, text: str, color: QColor) -> None:
    """Text with a dark halo, readable on any image."""
    painter.setPen(QPen(QColor(0, 0, 0, 200), 3))
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        painter.drawText(point + QPointF(dx, dy), text)
    painter.setPen(color)
    painter.drawText(point, text)


class PolylineOverlay(Overlay):
    """A path in image pixel coordinates: a predicted end-effector trajectory, an annotation
    outline (``closed=True``), with an optional label at its first point.

    Args:
        name: menu name.
        color: line colour.
        width: line width in screen pixels (not scaled with the image).
        dots: also mark every point (one per control step of a predicted path).
    """

    def __init__(self, name: str, color: QColor | str = "#4c8dff", width: float = 2.0,
                 closed: bool = False, label: str = "", z: int = 10, dots: bool = False) -> None:
        super().__init__(name, z)
        self.color, self.width, self.closed, self.label = QColor(color), width, closed, label
        self.dots = dots
        self.points: tuple[tuple[float, float], ...] = ()

    def set_points(self, points: Sequence[tuple[float, float]], label: str | None = None) -> None:
        """New path (image pixels); call ``pane.update()`` afterwards to show it now."""
        self.points = tuple((float(x), float(y)) for x, y in points)
        if label is not None:
            self.label = label

    def paint(self, painter: QPainter, rect: QRectF, frame: Frame | None) -> None:
        if len(self.points) < 1 or frame_size(frame) is None:
            return
        transform = image_transform(rect, frame)
        poly = QPolygonF([transform.map(QPointF(x, y)) for x, y in self.points])
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setClipRect(rect)
        # a dark halo under the line keeps it readable on a bright or busy image
        halo = QPen(QColor(0, 0, 0, 150), self.width + 2.5)
        halo.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(halo)
        if self.closed:
            painter.drawPolygon(poly)
        else:
            painter.drawPolyline(poly)
        pen = QPen(self.color, self.width)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        if self.closed:
            painter.drawPolygon(poly)
        else:
            painter.drawPolyline(poly)
            painter.setBrush(self.color)
            if self.dots:
                for point in poly:
                    painter.drawEllipse(point, self.width * 0.9, self.width * 0.9)
            painter.drawEllipse(poly[len(poly) - 1], self.width * 2, self.width * 2)
        if self.label:
            outlined_text(painter, poly[0] + QPointF(4, -6), self.label, self.color)


class BannerOverlay(Overlay):
    """One line of text in a coloured band across the top of the image (a run that is paused,
    asks for help or is stopped); nothing when the text is empty.

    Args:
        name: menu name.
    """

    def __init__(self, name: str, z: int = 30) -> None:
        super().__init__(name, z)
        self.text, self.color = "", QColor("#d9a520")

    def set_text(self, text: str, color: QColor | str = "#d9a520") -> bool:
        """New text and band colour; returns whether anything changed (then ``pane.update()``)."""
        color = QColor(color)
        changed = (text, color.rgba()) != (self.text, self.color.rgba())
        self.text, self.color = text, color
        return changed

    def paint(self, painter: QPainter, rect: QRectF, frame: Frame | None) -> None:
        if not self.text or rect.isEmpty():
            return
        font = QFont(painter.font())
        font.setPointSizeF(max(8.0, min(12.0, rect.width() / 40.0)))
        font.setBold(True)
        painter.setFont(font)
        height = painter.fontMetrics().height() + 8
        # below the pane's status HUD (name, fps, latency: two lines at the top left)
        band = QRectF(rect.left(), rect.top() + min(52.0, rect.height() * 0.25), rect.width(),
                      height)
        fill = QColor(self.color)
        fill.setAlpha(215)
        painter.fillRect(band, fill)
        painter.setPen(QColor("white") if fill.lightness() < 150 else QColor("#111"))
        text = painter.fontMetrics().elidedText(self.text, Qt.TextElideMode.ElideRight,
                                                int(band.width() - 12))
        painter.drawText(band.adjusted(6, 0, -6, 0), int(Qt.AlignmentFlag.AlignCenter), text)


class GaugeOverlay(Overlay):
    """A labelled 0..1 bar at the bottom of the image, e.g. policy confidence; red below
    ``threshold`` (where a policy run pauses and asks for help).

    Args:
        name: menu name.
        label: text before the value.
        threshold: marked on the bar, or None.
    """

    def __init__(self, name: str, label: str, threshold: float | None = None, z: int = 20) -> None:
        super().__init__(name, z)
        self.label, self.threshold = label, threshold
        self.value: float | None = None

    def set_value(self, value: float | None) -> None:
        """New value in [0, 1] (clamped), or None to show that there is none."""
        self.value = None if value is None else min(1.0, max(0.0, float(value)))

    def paint(self, painter: QPainter, rect: QRectF, frame: Frame | None) -> None:
        width = min(220.0, rect.width() * 0.45)
        bar = QRectF(rect.left() + 8, rect.bottom() - 22, width, 12)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 160))
        painter.drawRoundedRect(bar.adjusted(-4, -18, 4, 4), 4, 4)
        painter.setBrush(QColor("#2c3036"))
        painter.drawRect(bar)
        low = self.value is not None and self.threshold is not None and self.value < self.threshold
        if self.value is not None:
            painter.setBrush(QColor("#d92d20") if low else QColor("#2fb36b"))
            painter.drawRect(QRectF(bar.left(), bar.top(), bar.width() * self.value, bar.height()))
        if self.threshold is not None:
            x = bar.left() + bar.width() * self.threshold
            painter.setPen(QPen(QColor("#ffd479"), 2))
            painter.drawLine(QPointF(x, bar.top() - 2), QPointF(x, bar.bottom() + 2))
        font = QFont(painter.font())
        font.setPointSizeF(8.5)
        painter.setFont(font)
        text = f"{self.label} {self.value:.2f}" if self.value is not None else f"{self.label} —"
        outlined_text(painter, QPointF(bar.left(), bar.top() - 5), text,
                      QColor("#ff8a80") if low else QColor("#dde1e7"))
