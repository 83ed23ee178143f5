"""One live camera pane: the newest frame at the screen's pace, a status HUD and overlay layers.

```
 display tick (GUI thread)      refresh(): camera.latest() -- same index? --> nothing to do
                                    | new frame: render once (wrap, or one resize) -> update()
 paintEvent                     blit image(s) -> overlay layers by z -> status HUD
                                    -> first paint of a frame: capture-to-display latency
```
The pane never waits for a camera: ``latest()`` and ``status()`` return at once, so a camera
that hangs or fails shows its problem here while the rest of the window stays live.
"""

from __future__ import annotations

import collections
import enum
import itertools
import logging
import time

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (QAction, QActionGroup, QColor, QContextMenuEvent, QMouseEvent,
                           QPainter, QPaintEvent, QResizeEvent)
from PySide6.QtWidgets import QMenu, QSizePolicy, QWidget

from vla_studio.core.types import Frame
from vla_studio.devices.cameras.base import Camera, CameraStatus
from vla_studio.ui.widgets.camera_hud import StatusOverlay, counters_tooltip
from vla_studio.ui.widgets.camera_image import DepthColormap, RenderedImage, fit_rect, render_color
from vla_studio.ui.widgets.camera_overlay import OverlayLayer

log = logging.getLogger(__name__)

STATUS_REPAINT_S = 0.25  # a pane whose frame did not change repaints its HUD this often
DEPTH_RANGES_M = ((0.2, 1.0), (0.2, 2.0), (0.3, 4.0), (0.5, 8.0))


def _split(area: QRect, horizontal: bool, gap: int = 4) -> tuple[QRect, QRect]:
    if horizontal:
        half = (area.width() - gap) // 2
        return (QRect(area.x(), area.y(), half, area.height()),
                QRect(area.x() + half + gap, area.y(), area.width() - half - gap, area.height()))
    half = (area.height() - gap) // 2
    return (QRect(area.x(), area.y(), area.width(), half),
            QRect(area.x(), area.y() + half + gap, area.width(), area.height() - half - gap))


def _area(rect: QRect) -> int:
    return rect.width() * rect.height()


class ViewMode(str, enum.Enum):
    COLOR = "color"
    DEPTH = "depth"
    SIDE_BY_SIDE = "side by side"


class LatencyStats:
    """Capture-to-display latencies (ms) of the frames a pane has shown."""

    def __init__(self, maxlen: int = 4096) -> None:
        self.samples: collections.deque[float] = collections.deque(maxlen=maxlen)

    def add(self, ms: float) -> None:
        self.samples.append(ms)

    def percentile(self, q: float, last: int | None = None) -> float | None:
        """Percentile ``q`` of all samples, or of the ``last`` most recent ones."""
        if not self.samples:
            return None
        values = list(itertools.islice(reversed(self.samples), last)) if last else list(self.samples)
        return float(np.percentile(values, q))


class CameraPane(QWidget):
    """A live view of one camera.

    Signals:
        enlarge_toggled(str): the operator asked to enlarge (or restore) this pane.
        detach_toggled(str): the operator asked to detach (or re-attach) this pane.
    """

    enlarge_toggled = Signal(str)
    detach_toggled = Signal(str)

    def __init__(self, camera: Camera, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera = camera
        self.name = camera.name
        self.setObjectName(f"cameraPane.{self.name}")
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # we paint every pixel
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        features = camera.features
        self.has_color, self.has_depth = "color" in features, "depth" in features
        self.view = ViewMode.SIDE_BY_SIDE if self.has_color and self.has_depth else (
            ViewMode.COLOR if self.has_color else ViewMode.DEPTH)
        self.depth_colormap = DepthColormap()
        self.frame: Frame | None = None
        self.status: CameraStatus = camera.status()
        self.latency = LatencyStats()
        self.frames_shown = 0
        self.layer_errors: list[str] = []
        self.enlarged = self.detached = False
        self._overlays: list[OverlayLayer] = [StatusOverlay(self)]
        self._images: list[RenderedImage] = []
        self._primary = QRect()
        self.depth_target: QRect | None = None
        self._awaiting_paint: Frame | None = None
        self._status_painted = 0.0
        self._show_tooltip()

    @property
    def shown_index(self) -> int:
        """Index of the frame on screen (-1 before the first)."""
        return self.frame.index if self.frame is not None else -1

    # ----- overlay layers -------------------------------------------------------------------
    @property
    def overlays(self) -> tuple[OverlayLayer, ...]:
        return tuple(self._overlays)

    def add_overlay(self, layer: OverlayLayer) -> None:
        """Draw ``layer`` over this pane from now on (see camera_overlay for the protocol)."""
        if not isinstance(layer, OverlayLayer):
            raise TypeError(f"{layer!r} is not an overlay layer: it needs name, visible, z and "
                            "paint(painter, rect, frame)")
        self._overlays = sorted([*self._overlays, layer], key=lambda lay: lay.z)
        self.update()

    def remove_overlay(self, layer: OverlayLayer) -> None:
        self._overlays = [lay for lay in self._overlays if lay is not layer]
        self.update()

    # ----- display tick -----------------------------------------------------------------------
    def refresh(self, now: float | None = None) -> bool:
        """Pick up the camera's newest frame and status; repaint only if something changed.

        Returns whether a new frame was taken.
        """
        now = time.monotonic() if now is None else now
        frame = self.camera.latest()
        if frame is not None and (self.frame is None or frame.index != self.frame.index):
            self._take_status(self.camera.status())
            self.frame = frame
            self._awaiting_paint = frame
            self._render()
            self.update()
            return True
        if now - self._status_painted >= STATUS_REPAINT_S:
            self._take_status(self.camera.status())
            self.update()  # the HUD changes (age of the last frame, reconnect attempts)
        return False

    def _take_status(self, status: CameraStatus) -> None:
        self.status = status
        self._show_tooltip()

    def _show_tooltip(self) -> None:
        """The counters explained (what drops and late frames are, what to do about them)."""
        text = counters_tooltip(self.name, self.status, self.latency_p50_ms())
        if text != self.toolTip():
            self.setToolTip(text)

    def latency_p50_ms(self) -> float | None:
        """Median capture-to-display latency of the last second of frames."""
        return self.latency.percentile(50, last=30)

    def set_view(self, view: ViewMode) -> None:
        self.view = view
        self._render()
        self.update()

    # ----- rendering --------------------------------------------------------------------------
    def _layout_targets(self) -> tuple[QRect | None, QRect | None]:
        """Where colour and depth are drawn for the current view and size."""
        frame, area = self.frame, self.rect().adjusted(2, 2, -2, -2)
        if frame is None:
            return None, None
        color = frame.color if self.view != ViewMode.DEPTH else None
        depth = frame.depth if self.view != ViewMode.COLOR else None
        if color is None and depth is None:  # the chosen view has nothing: show what there is
            color, depth = frame.color, frame.depth
        sizes = [QSize(a.shape[1], a.shape[0]) if a is not None else None for a in (color, depth)]
        if sizes[0] is not None and sizes[1] is not None:
            # Side by side or one above the other, whichever shows the images larger.
            layouts = [_split(area, horizontal) for horizontal in (True, False)]
            cells = max(layouts, key=lambda c: _area(fit_rect(sizes[0], c[0])))
            return fit_rect(sizes[0], cells[0]), fit_rect(sizes[1], cells[1])
        if sizes[0] is not None:
            return fit_rect(sizes[0], area), None
        return None, fit_rect(sizes[1], area)

    def _render(self) -> None:
        frame = self.frame
        self._images = []
        self.depth_target = None
        color_rect, depth_rect = self._layout_targets()
        if frame is None:
            self._primary = QRect()
            return
        dpr = self.devicePixelRatioF()
        if color_rect is not None and not color_rect.isEmpty():
            self._images.append(render_color(frame.color, color_rect, dpr))
        if depth_rect is not None and not depth_rect.isEmpty():
            scale = self.camera.intrinsics.depth_scale if self.camera.intrinsics else None
            self._images.append(self.depth_colormap.render(frame.depth, depth_rect, scale, dpr))
            self.depth_target = depth_rect
        self._primary = color_rect if color_rect is not None else (depth_rect or QRect())

    # ----- Qt events --------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#0e0f11"))
        for rendered in self._images:
            painter.drawImage(rendered.target.topLeft(), rendered.image)
        frame = self.frame
        rect = QRectF(self._primary)
        for layer in self._overlays:
            if not layer.visible:
                continue
            painter.save()
            try:
                layer.paint(painter, rect, frame)
            except Exception as exc:  # a broken layer must not break the camera view
                log.exception("overlay %r on camera %s failed; it is switched off",
                              getattr(layer, "name", layer), self.name)
                layer.visible = False
                self.layer_errors.append(f"overlay '{getattr(layer, 'name', '?')}' failed: {exc}")
            finally:
                painter.restore()
        painter.end()
        now = time.monotonic()
        self._status_painted = now
        shown, self._awaiting_paint = self._awaiting_paint, None
        if shown is not None:  # first time this frame reached the screen
            self.frames_shown += 1
            self.latency.add((now - shown.t_capture) * 1000.0)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._render()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton and not self.detached:
            self.enlarge_toggled.emit(self.name)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt override
        self.context_menu().exec(event.globalPos())

    def context_menu(self) -> QMenu:
        """Enlarge/detach, view mode, depth range and overlay visibility."""
        menu = QMenu(self)
        if not self.detached:
            enlarge = menu.addAction("Show all cameras" if self.enlarged else "Enlarge")
            enlarge.triggered.connect(lambda: self.enlarge_toggled.emit(self.name))
        detach = menu.addAction("Attach to the grid" if self.detached else "Detach to a window")
        detach.triggered.connect(lambda: self.detach_toggled.emit(self.name))
        if self.has_color and self.has_depth:
            view_menu = menu.addMenu("View")
            group = QActionGroup(view_menu)
            for mode in ViewMode:
                action = view_menu.addAction(mode.value.capitalize())
                action.setCheckable(True)
                action.setChecked(mode == self.view)
                group.addAction(action)
                action.triggered.connect(lambda _=False, m=mode: self.set_view(m))
        if self.has_depth:
            self._add_depth_menu(menu)
        layers = [lay for lay in self._overlays if not isinstance(lay, StatusOverlay)]
        overlay_menu = menu.addMenu("Overlays")
        overlay_menu.setEnabled(bool(layers))
        for layer in layers:
            action = overlay_menu.addAction(layer.name)
            action.setCheckable(True)
            action.setChecked(layer.visible)
            action.toggled.connect(lambda on, lay=layer: self._set_layer_visible(lay, on))
        return menu

    def _add_depth_menu(self, menu: QMenu) -> None:
        depth_menu = menu.addMenu("Depth range")
        group = QActionGroup(depth_menu)
        auto = QAction("Automatic", depth_menu, checkable=True, checked=self.depth_colormap.auto)
        auto.triggered.connect(self._auto_depth)
        group.addAction(auto)
        depth_menu.addAction(auto)
        for near, far in DEPTH_RANGES_M:
            action = QAction(f"{near:g}–{far:g} m", depth_menu, checkable=True)
            action.setChecked(not self.depth_colormap.auto and
                              (self.depth_colormap.near_m, self.depth_colormap.far_m) == (near, far))
            action.triggered.connect(lambda _=False, n=near, f=far: self._fixed_depth(n, f))
            group.addAction(action)
            depth_menu.addAction(action)

    def _auto_depth(self) -> None:
        self.depth_colormap.auto = True
        self._render()
        self.update()

    def _fixed_depth(self, near: float, far: float) -> None:
        self.depth_colormap.set_range(near, far)
        self._render()
        self.update()

    def _set_layer_visible(self, layer: OverlayLayer, visible: bool) -> None:
        layer.visible = visible
        self.update()
