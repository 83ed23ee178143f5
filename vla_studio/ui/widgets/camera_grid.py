"""The central camera area: one live pane per camera, enlarged or detached on demand.

Panes are refreshed at the screen's refresh rate, never at the camera's: on each display tick
every pane reads its camera's newest frame and does nothing when the frame index has not
changed. The grid keeps its own display clock rather than the bridge's ``frame_tick``: that tick
runs at ``DISPLAY_HZ`` (30 Hz), half a 60 Hz screen's rate, and pacing the panes on it added up
to a whole 33 ms to every frame's capture-to-display latency (``bench capture``: p99 50 ms at
30 Hz, 27 ms at 60 Hz, for 4 % more CPU). Other features draw on the panes through overlay
layers::

    grid.pane("front").add_overlay(GaugeOverlay("policy confidence", "conf", threshold=0.4))
"""

from __future__ import annotations

import math
from typing import Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.widgets.camera_overlay import OverlayLayer
from vla_studio.ui.widgets.camera_pane import CameraPane
from vla_studio.ui.widgets.robot_state import RobotStateView


def screen_refresh_hz(widget: QWidget, default: float = 60.0) -> float:
    """The refresh rate of the widget's screen (or the primary one), within 30..120 Hz."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    rate = screen.refreshRate() if screen is not None else 0.0
    return min(120.0, max(30.0, rate or default))


class DetachedPaneWindow(QWidget):
    """A top-level window holding one detached pane; closing it puts the pane back."""

    def __init__(self, grid: "CameraGrid", pane: CameraPane) -> None:
        super().__init__(grid, Qt.WindowType.Window)
        self.grid, self.pane = grid, pane
        self.setObjectName(f"detachedCamera.{pane.name}")
        self.setWindowTitle(f"Camera {pane.name} — VLA Studio")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(pane)
        pane.show()
        size = pane.camera.features.get("color") or pane.camera.features.get("depth")
        if size is not None:
            self.resize(max(320, size.shape[1]), max(240, size.shape[0]))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self.pane.detached:
            self.grid.attach(self.pane.name)
        super().closeEvent(event)


class CameraGrid(QWidget):
    """Live panes for the cameras of a station, in a near-square grid.

    Args:
        station: the station whose cameras are shown.
        bridge: the core bridge of the window (kept for views built on the grid).
        parent: Qt parent.
        cameras: names of the cameras to show (default: all, in profile order).
    """

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None,
                 cameras: Sequence[str] | None = None) -> None:
        super().__init__(parent)
        self.station = station
        names = list(station.cameras) if cameras is None else list(cameras)
        unknown = [n for n in names if n not in station.cameras]
        if unknown:
            raise ValueError(f"no camera named {unknown[0]!r} in this station; it has: "
                             f"{', '.join(station.cameras) or '(none)'}")
        self.panes: dict[str, CameraPane] = {}
        for name in names:
            pane = CameraPane(station.cameras[name])
            pane.enlarge_toggled.connect(self.toggle_enlarged)
            pane.detach_toggled.connect(self.toggle_detached)
            self.panes[name] = pane
        self.enlarged: str | None = None
        self.detached: dict[str, DetachedPaneWindow] = {}
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(4)
        self.robot_state: RobotStateView | None = None
        if names:
            self._empty: QWidget = QLabel("Every camera is in its own window.")
            self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self._empty.setObjectName("cameraGridEmpty")
        else:  # a robot without cameras (a Franka on franky-sim): its state takes their place
            self._empty = self._no_cameras(station)
        self._relayout()
        self.bridge = bridge
        self.display_hz = screen_refresh_hz(self)
        self._clock = QTimer(self)
        self._clock.setTimerType(Qt.TimerType.PreciseTimer)
        self._clock.setInterval(max(1, round(1000.0 / self.display_hz)))
        self._clock.timeout.connect(self.refresh)
        self._clock.start()

    # ----- public API -------------------------------------------------------------------------
    def pane(self, name: str) -> CameraPane:
        """The pane of camera ``name`` (to add overlay layers to it)."""
        if name not in self.panes:
            raise KeyError(f"no camera pane named {name!r}; panes: {', '.join(self.panes)}")
        return self.panes[name]

    def add_overlay(self, camera: str, layer: OverlayLayer) -> None:
        """Shorthand for ``grid.pane(camera).add_overlay(layer)``."""
        self.pane(camera).add_overlay(layer)

    def refresh(self) -> None:
        """One display frame: every visible pane (attached or detached) picks up its newest
        frame; panes hidden behind an enlarged one cost nothing."""
        for pane in self.panes.values():
            if pane.isVisible():
                pane.refresh()
        view = self.robot_state
        if view is not None and view.isVisible():
            step = self.station.loop.snapshot.get()
            if step is not None:
                view.show_step(step, self.station.robot.fault)

    def _no_cameras(self, station: Station) -> QWidget:
        """What a station without cameras shows: the robot's state, said so."""
        box = QWidget()
        note = QLabel("This station has no cameras: the robot's own state")
        note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.robot_state = RobotStateView(station.robot.name, station.robot.observation_features)
        layout = QVBoxLayout(box)
        layout.addStretch(1)
        layout.addWidget(note)
        layout.addWidget(self.robot_state, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(1)
        return box

    def toggle_enlarged(self, name: str) -> None:
        """Enlarge pane ``name`` over the whole grid, or show every pane again."""
        self.enlarged = None if self.enlarged == name else name
        for pane in self.panes.values():
            pane.enlarged = pane.name == self.enlarged
        self._relayout()

    def toggle_detached(self, name: str) -> None:
        if name in self.detached:
            self.attach(name)
        else:
            self.detach(name)

    def detach(self, name: str) -> DetachedPaneWindow:
        """Move pane ``name`` into its own window (closing the window attaches it again)."""
        if name in self.detached:
            return self.detached[name]
        pane = self.pane(name)
        if self.enlarged == name:
            self.toggle_enlarged(name)
        self._grid.removeWidget(pane)
        pane.detached = True
        window = DetachedPaneWindow(self, pane)
        self.detached[name] = window
        self._relayout()
        window.show()
        return window

    def attach(self, name: str) -> None:
        """Put a detached pane back into the grid."""
        window = self.detached.pop(name, None)
        if window is None:
            return
        pane = self.panes[name]
        pane.detached = False
        pane.setParent(self)
        self._relayout()
        window.hide()
        window.deleteLater()

    # ----- layout -----------------------------------------------------------------------------
    def _relayout(self) -> None:
        while self._grid.count():
            self._grid.takeAt(0)
        attached = [p for n, p in self.panes.items() if n not in self.detached]
        shown = [self.panes[self.enlarged]] if self.enlarged in self.panes else attached
        for pane in attached:
            pane.setVisible(pane in shown)
        if not shown:
            self._grid.addWidget(self._empty, 0, 0)
            self._empty.show()
            return
        self._empty.hide()
        cols = max(1, math.ceil(math.sqrt(len(shown))))
        rows = math.ceil(len(shown) / cols)
        for i, pane in enumerate(shown):
            self._grid.addWidget(pane, i // cols, i % cols)
        for r in range(self._grid.rowCount()):
            self._grid.setRowStretch(r, 1 if r < rows else 0)
        for c in range(self._grid.columnCount()):
            self._grid.setColumnStretch(c, 1 if c < cols else 0)
        self._grid.activate()  # new geometry now, not at the next event-loop pass
