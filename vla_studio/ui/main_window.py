"""The main window: header with the always-visible STOP, camera grid, docks, status bar.

The constructor reads like a table of contents. Menus, toolbar and shortcuts come from
:mod:`vla_studio.ui.actions`, docks from :mod:`vla_studio.ui.docks`.
"""

from __future__ import annotations

import importlib
import logging

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QFrame, QHBoxLayout, QLabel,
                               QLineEdit, QMainWindow, QMessageBox, QPlainTextEdit, QScrollArea,
                               QTextEdit,
                               QToolBar, QVBoxLayout, QWidget)

from vla_studio import __version__
from vla_studio.core.clock import LoopStatsSnapshot
from vla_studio.core.config import ConfigError
from vla_studio.core.registry import RegistryError
from vla_studio.core.session import ControlMode, RunState, SessionError, SessionState
from vla_studio.paths import resource
from vla_studio.station import Station
from vla_studio.ui.actions import ACTIONS, ActionSpec
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.docks import CENTRAL, DOCKS
from vla_studio.ui.widgets.estop import EStopWidget

log = logging.getLogger(__name__)
_AREAS = {"left": Qt.DockWidgetArea.LeftDockWidgetArea,
          "right": Qt.DockWidgetArea.RightDockWidgetArea,
          "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}
_TEXT_INPUTS = (QLineEdit, QTextEdit, QPlainTextEdit)


def load_widget_class(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class StopKeyFilter(QObject):
    """Application-wide key filter: Esc always latches the e-stop; Space does while a run is
    active, unless the operator is typing in a text field."""

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        if event.isAutoRepeat():
            return False
        key = event.key()
        if key == Qt.Key.Key_Escape:
            self.window.trigger_estop("Esc key")
            return False  # let dialogs close on Esc too
        if key == Qt.Key.Key_Space and self.window.station.session.state == RunState.RUNNING:
            if not isinstance(QApplication.focusWidget(), _TEXT_INPUTS):
                self.window.trigger_estop("Space key")
                return True
        return False


class MainWindow(QMainWindow):
    """VLA Studio's main window for one station.

    Signals:
        station_requested(object): the operator chose another profile (StationProfile); the
            application replaces the station and the window.
    """

    station_requested = Signal(object)

    def __init__(self, station: Station, reset_layout: bool = False) -> None:
        super().__init__()
        self.station = station
        self.bridge = CoreBridge(station, self)
        self.setWindowTitle(f"VLA Studio — {station.profile.name}")
        self.setWindowIcon(QIcon(str(resource("icons", "app.svg"))))
        self.actions_by_id: dict[str, QAction] = {}
        self.docks: dict[str, QDockWidget] = {}
        self.panels: dict[str, QWidget] = {}  # dock id -> the panel widget inside it
        self.create_actions()
        self.create_menus()
        self.create_toolbar()
        self.create_central()
        self.create_docks()
        self.create_status_bar()
        self._default_state = self.saveState()
        self.read_settings(reset_layout)
        self._key_filter = StopKeyFilter(self)
        QApplication.instance().installEventFilter(self._key_filter)
        self.bridge.session_changed.connect(self.show_session)
        self.bridge.stats.connect(self.show_stats)
        self.bridge.frame_tick.connect(self.estop.refresh)
        self.show_session(station.session.snapshot)

    # ----- construction ----------------------------------------------------------------------
    def create_actions(self) -> None:
        for spec in ACTIONS:
            action = QAction(spec.title, self)
            action.setObjectName(spec.id)
            if spec.icon:
                action.setIcon(QIcon(str(resource("icons", spec.icon))))
            if spec.shortcut:
                action.setShortcut(QKeySequence(spec.shortcut))
                if spec.app_wide:
                    action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            if spec.tip:
                action.setStatusTip(spec.tip)
                action.setToolTip(spec.tip)
            action.triggered.connect(lambda _=False, s=spec: self.run_action(s))
            self.addAction(action)
            self.actions_by_id[spec.id] = action

    def create_menus(self) -> None:
        menus: dict[str, object] = {}
        for spec in ACTIONS:
            if spec.menu not in menus:
                menus[spec.menu] = self.menuBar().addMenu(spec.menu)
            menus[spec.menu].addAction(self.actions_by_id[spec.id])
        self.view_menu = menus.get("&View") or self.menuBar().addMenu("&View")

    def create_toolbar(self) -> None:
        bar = QToolBar("Main toolbar")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for spec in ACTIONS:
            if spec.toolbar:
                bar.addAction(self.actions_by_id[spec.id])
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def create_central(self) -> None:
        """Header (run state + STOP, never hidden) above the camera grid."""
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        header = QWidget()
        header.setObjectName("header")
        hl = QHBoxLayout(header)
        hl.setContentsMargins(8, 4, 8, 4)
        self.run_state = QLabel()
        self.run_state.setObjectName("runState")
        self.estop = EStopWidget(self.station.latch)
        hl.addWidget(self.run_state)
        hl.addWidget(self.estop, 1)
        layout.addWidget(header)
        self.cameras = load_widget_class(CENTRAL)(self.station, self.bridge)
        layout.addWidget(self.cameras, 1)
        self.setCentralWidget(central)

    def create_docks(self) -> None:
        for spec in DOCKS:
            widget = load_widget_class(spec.target)(self.station, self.bridge)
            dock = QDockWidget(spec.title, self)
            dock.setObjectName(f"dock.{spec.id}")
            # A tall panel scrolls inside its dock instead of forcing the window taller than
            # the screen (the cameras and the bottom docks must stay visible).
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setWidget(widget)
            dock.setWidget(scroll)
            self.panels[spec.id] = widget
            self.addDockWidget(_AREAS[spec.area], dock)
            tab_with = self.docks.get(spec.tab_with) if spec.tab_with else None
            if tab_with is not None:
                self.tabifyDockWidget(tab_with, dock)
            self.docks[spec.id] = dock
            self.view_menu.addAction(dock.toggleViewAction())
        # Cameras get the room: side docks a third of the width, the bottom strip a few lines.
        side = [d for s, d in zip(DOCKS, self.docks.values()) if s.area in ("left", "right")]
        bottom = [d for s, d in zip(DOCKS, self.docks.values()) if s.area == "bottom"]
        if side:
            self.resizeDocks(side, [440] * len(side), Qt.Orientation.Horizontal)
        if bottom:
            self.resizeDocks(bottom, [150] * len(bottom), Qt.Orientation.Vertical)

    def create_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_loop = QLabel("loop -")
        self.status_jitter = QLabel("jitter -")
        self.status_stop = QLabel()
        self.status_stop.setObjectName("statusStop")
        for w in (self.status_loop, self.status_jitter, self.status_stop):
            bar.addPermanentWidget(w)

    def read_settings(self, reset_layout: bool) -> None:
        settings = QSettings()
        self.resize(1440, 900)
        if reset_layout:
            settings.remove("main_window")
            return
        geometry = settings.value("main_window/geometry")
        state = settings.value("main_window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def write_settings(self) -> None:
        settings = QSettings()
        settings.setValue("main_window/geometry", self.saveGeometry())
        settings.setValue("main_window/state", self.saveState())

    # ----- actions ---------------------------------------------------------------------------
    def run_action(self, spec: ActionSpec) -> None:
        if spec.method:
            getattr(self, spec.method)()
        elif spec.command and not self.station.run_command(spec.command):
            self.statusBar().showMessage(f"'{spec.title.replace('&', '')}' is not available here", 4000)

    def trigger_estop(self, origin: str = "menu") -> None:
        self.station.latch.trigger(f"{origin}", "gui")
        self.estop.refresh()

    def reset_estop(self) -> None:
        latch = self.station.latch
        if not latch.is_tripped:
            self.statusBar().showMessage("The e-stop is not latched.", 4000)
            return
        answer = QMessageBox.question(
            self, "Reset e-stop",
            "Reset the e-stop? The robot stays paused; start a run again deliberately.")
        if answer == QMessageBox.StandardButton.Yes:
            latch.request_reset()
            latch.confirm_reset()
        self.estop.refresh()

    def start_teleop(self) -> None:
        try:
            self.station.session.start(ControlMode.TELEOP)
        except SessionError as exc:
            self.statusBar().showMessage(str(exc), 6000)

    def pause_run(self) -> None:
        self.station.session.pause("paused by operator")

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)

    def open_station(self) -> None:
        from vla_studio.devices.registry import load_station_profile

        path, _ = QFileDialog.getOpenFileName(self, "Open station profile",
                                              str(resource("stations")), "Station profiles (*.toml)")
        if not path:
            return
        try:
            profile = load_station_profile(path)
        except (ConfigError, RegistryError) as exc:
            QMessageBox.critical(self, "Station profile", str(exc))
            return
        self.station_requested.emit(profile)

    def export_rlds(self) -> None:
        from vla_studio.ui.widgets.export_dialog import ExportDialog

        ExportDialog(self.station.profile.dataset_dir, self).exec()

    def show_about(self) -> None:
        QMessageBox.about(
            self, "About VLA Studio",
            f"<b>VLA Studio</b> {__version__}<br>Station: {self.station.profile.name}<br><br>"
            "The on-screen STOP is a <b>software</b> stop. Real robots still need a hardware "
            "e-stop within the operator's reach.")

    # ----- views of core state ---------------------------------------------------------------
    def show_session(self, snap: SessionState) -> None:
        text = {RunState.PAUSED: "PAUSED", RunState.RUNNING: f"RUNNING · {snap.mode.value}",
                RunState.ESTOPPED: "E-STOPPED"}[snap.state]
        self.run_state.setText(text)
        self.run_state.setToolTip(snap.reason)
        self.run_state.setProperty("state", snap.state.value)
        self.run_state.style().unpolish(self.run_state)
        self.run_state.style().polish(self.run_state)
        self.status_stop.setText("E-STOP LATCHED" if snap.state == RunState.ESTOPPED else "stop: clear")
        self.status_stop.setProperty("tripped", snap.state == RunState.ESTOPPED)
        self.status_stop.style().unpolish(self.status_stop)
        self.status_stop.style().polish(self.status_stop)
        self.estop.refresh()

    def show_stats(self, stats: LoopStatsSnapshot, counts: dict[str, int]) -> None:
        self.status_loop.setText(f"loop {stats.achieved_hz:.1f}/{stats.rate_hz:g} Hz")
        self.status_jitter.setText(f"jitter p99 {stats.jitter_p99_ms:.2f} ms · overruns {stats.overruns}")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.write_settings()
        QApplication.instance().removeEventFilter(self._key_filter)
        self.bridge.stop()
        super().closeEvent(event)
