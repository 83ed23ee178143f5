"""The main window: the banner with the always-visible STOP, camera grid, docks, status bar.

The constructor reads like a table of contents. Menus, toolbar and shortcuts come from
:mod:`vla_studio.ui.actions`, docks and the default layout from :mod:`vla_studio.ui.docks`, the
STOP keys and the keyboard focus rules from :mod:`vla_studio.ui.key_routing`, the Help menu's
dialogs from :mod:`vla_studio.ui.help`, the Live / Replay tabs under the banner from
:mod:`vla_studio.ui.replay.mode`.
"""

from __future__ import annotations

import importlib
import logging

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence, QShowEvent
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow,
                               QMessageBox, QVBoxLayout, QWidget)

from vla_studio.core.clock import LoopStatsSnapshot
from vla_studio.core.config import ConfigError
from vla_studio.core.events import AppEvent
from vla_studio.core.registry import RegistryError
from vla_studio.core.session import ControlMode, RunState, SessionError, SessionState
from vla_studio.devices.teleop.base import MappedTeleop
from vla_studio.devices.teleop.keyboard import KeyboardTeleop
from vla_studio.paths import resource
from vla_studio.station import Station
from vla_studio.ui import help as help_menu
from vla_studio.ui.actions import ACTIONS, ActionSpec
from vla_studio.ui.background import BackgroundJobs, JobOutcome
from vla_studio.ui.banner import StationBanner
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.docks import CENTRAL, DOCKS
from vla_studio.ui.key_routing import StopKeyFilter, key_target_text, text_input
from vla_studio.ui.replay.mode import ReplayMode
from vla_studio.ui.widgets.camera_hud import RecordingMarker

log = logging.getLogger(__name__)
_AREAS = {"left": Qt.DockWidgetArea.LeftDockWidgetArea,
          "right": Qt.DockWidgetArea.RightDockWidgetArea,
          "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}
# The default layout's proportions: the right column's share of the window width (within these
# pixels), and how many rows the bottom strip shows (the episode list; the events get as many).
RIGHT_SHARE, RIGHT_MIN_PX, RIGHT_MAX_PX = 0.3, 420, 520
EPISODE_ROWS = 8


def load_widget_class(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


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
        self.commands = BackgroundJobs("window-commands", self)
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
        self.apply_default_layout()
        self._default_state = self.saveState()  # the arrangement; sizes follow the window's
        self._sizes_pending = True  # the default proportions need the shown window's size
        #: True once the default sizes were applied (or the saved layout restored).
        self.layout_settled = False
        self.read_settings(reset_layout)
        self._key_filter = StopKeyFilter(self)
        self._watching_keys = False
        self.watch_keys(True)
        self.connect_views()
        self.show_session(station.session.snapshot)

    # ----- construction ----------------------------------------------------------------------
    def create_actions(self) -> None:
        for spec in ACTIONS:
            # A key handled elsewhere is shown after a tab: Qt prints it in the shortcut column.
            title = f"{spec.title}\t{spec.key_hint}" if spec.key_hint else spec.title
            action = QAction(title, self)
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
            if spec.scoped:  # its keys only while the focus is in its view (ui.replay.mode)
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            else:
                self.addAction(action)
            self.actions_by_id[spec.id] = action

    def create_menus(self) -> None:
        menus: dict[str, object] = {}
        for spec in ACTIONS:
            path = ""
            for part in spec.menu.split("/"):  # "&File/&Export": a submenu of File
                parent = menus.get(path)
                path = f"{path}/{part}" if path else part
                if path not in menus:
                    menus[path] = (self.menuBar() if parent is None else parent).addMenu(part)
            menus[spec.menu].addAction(self.actions_by_id[spec.id])
        self.view_menu = menus.get("&View") or self.menuBar().addMenu("&View")
        self.view_menu.addSeparator()

    def create_toolbar(self) -> None:
        bar = self.addToolBar("Main toolbar")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for spec in ACTIONS:
            if spec.toolbar:
                bar.addAction(self.actions_by_id[spec.id])

    def create_central(self) -> None:
        """The banner (run state, REC, STOP: never hidden) above the camera grid."""
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        self.banner = StationBanner(self.station.latch)
        self.run_state, self.estop = self.banner.run_state, self.banner.estop
        layout.addWidget(self.banner)
        self.cameras = load_widget_class(CENTRAL)(self.station, self.bridge)
        # Clicking a camera takes the keys back from a text field (they drive the robot).
        self.cameras.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.rec_markers = []
        for pane in getattr(self.cameras, "panes", {}).values():
            pane.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            marker = RecordingMarker(pane)
            pane.add_overlay(marker)
            self.rec_markers.append((pane, marker))
        self.modes = ReplayMode(self, self.cameras)  # Live and Replay tabs
        self.replay = self.modes.view
        layout.addWidget(self.modes.tabs, 1)
        self.setCentralWidget(central)

    def create_docks(self) -> None:
        for spec in DOCKS:
            widget = load_widget_class(spec.target)(self.station, self.bridge)
            dock = QDockWidget(spec.title, self)
            dock.setObjectName(f"dock.{spec.id}")
            dock.setWidget(widget)
            self.panels[spec.id] = widget
            self.docks[spec.id] = dock
            self.view_menu.addAction(dock.toggleViewAction())

    def create_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_keys = QLabel()
        self.status_keys.setObjectName("statusKeys")
        self.status_loop = QLabel("loop -")
        self.status_jitter = QLabel("jitter -")
        self.status_stop = QLabel()
        self.status_stop.setObjectName("statusStop")
        for w in (self.status_keys, self.status_loop, self.status_jitter, self.status_stop):
            bar.addPermanentWidget(w)

    def connect_views(self) -> None:
        self.bridge.session_changed.connect(self.show_session)
        self.bridge.stats.connect(self.show_stats)
        self.bridge.step.connect(self.banner.show_step)
        self.bridge.app_event.connect(self.on_event)
        self.bridge.frame_tick.connect(self._frame)
        recorder = self.panels.get("recorder")
        if recorder is not None and hasattr(recorder, "status_changed"):
            recorder.status_changed.connect(self.show_recording)
        self.modes.attach_browser(self.panels.get("episodes"))
        episodes, policy = self.panels.get("episodes"), self.panels.get("policy")
        if hasattr(episodes, "rows_changed") and hasattr(policy, "show_dataset"):
            episodes.rows_changed.connect(lambda rows: policy.show_dataset(
                rows, episodes.dataset.root))
        for panel in self.panels.values():  # the Policy dock draws on the camera panes
            if hasattr(panel, "attach_cameras"):
                panel.attach_cameras(self.cameras)

    # ----- layout ----------------------------------------------------------------------------
    def apply_default_layout(self) -> None:
        """Put every dock where :data:`~vla_studio.ui.docks.DOCKS` says (shown, docked)."""
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        for spec in DOCKS:
            dock = self.docks[spec.id]
            dock.setFloating(False)
            if spec.beside and spec.beside in self.docks:
                self.splitDockWidget(self.docks[spec.beside], dock, Qt.Orientation.Horizontal)
            else:
                self.addDockWidget(_AREAS[spec.area], dock)
            if spec.tab_with and spec.tab_with in self.docks:
                self.tabifyDockWidget(self.docks[spec.tab_with], dock)
            dock.show()
        first = next((self.docks[s.id] for s in DOCKS if s.area == "right"), None)
        if first is not None:
            first.raise_()

    def apply_default_sizes(self) -> None:
        """The default proportions for the window's current size (see the module constants).

        One direction at a time, each after the layout placed the previous one: a size set
        while the dock areas are still moving is lost.
        """
        right = [self.docks[s.id] for s in DOCKS if s.area == "right"]
        bottom = [(s, self.docks[s.id]) for s in DOCKS if s.area == "bottom"]
        width = int(min(RIGHT_MAX_PX, max(RIGHT_MIN_PX, RIGHT_SHARE * self.width())))
        if right:
            self.resizeDocks(right[:1], [width], Qt.Orientation.Horizontal)
            QApplication.processEvents()
        if bottom:
            episodes = self.panels.get("episodes")
            rows = episodes.height_for_rows(EPISODE_ROWS) if hasattr(episodes, "height_for_rows") \
                else 220
            title = bottom[0][1].titleBarWidget() or bottom[0][1]
            self.resizeDocks([bottom[0][1]], [rows + title.fontMetrics().height() + 14],
                             Qt.Orientation.Vertical)
            QApplication.processEvents()
            free = sum(d.width() for _, d in bottom)
            self.resizeDocks([d for _, d in bottom], [int(free * s.share) for s, _ in bottom],
                             Qt.Orientation.Horizontal)
            QApplication.processEvents()

    def reset_layout(self) -> None:
        """View → Reset layout: the default layout at the window's current size."""
        self.restoreState(self._default_state)
        self.settle_default_sizes()

    def settle_default_sizes(self) -> None:
        # Dock sizes only hold once the main window's layout has placed the docks.
        QApplication.processEvents()
        self.apply_default_sizes()
        self.layout_settled = True

    def watch_keys(self, on: bool) -> None:
        """Install (or remove) the application-wide STOP-key filter and the focus watch: only
        while the window is open (an application filter sees every event of every object)."""
        app = QApplication.instance()
        if on == self._watching_keys or app is None:
            return
        self._watching_keys = on
        if on:
            app.installEventFilter(self._key_filter)
            app.focusChanged.connect(self._focus_changed)
        else:
            app.removeEventFilter(self._key_filter)
            app.focusChanged.disconnect(self._focus_changed)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.watch_keys(True)
        if self._sizes_pending:
            self._sizes_pending = False
            QTimer.singleShot(0, self._settle_next_turn)

    def _settle_next_turn(self) -> None:
        # The first turn of the event loop places the docks by their size hints; sizes set
        # before that are lost.
        QTimer.singleShot(0, self.settle_default_sizes)

    def read_settings(self, reset_layout: bool) -> None:
        settings = QSettings()
        screen = self.screen() or QApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else None
        # First run: the whole screen (the app shows it maximised); later, where it was left.
        if available is not None and available.width() >= 1024:
            self.resize(available.size())
        else:
            self.resize(1440, 900)
        if reset_layout:
            settings.remove("main_window")
            return
        geometry = settings.value("main_window/geometry")
        state = settings.value("main_window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray) and self.restoreState(state):
            self._sizes_pending = False  # the saved sizes are the operator's
            self.layout_settled = True

    def write_settings(self) -> None:
        settings = QSettings()
        settings.setValue("main_window/geometry", self.saveGeometry())
        settings.setValue("main_window/state", self.saveState())

    # ----- actions ---------------------------------------------------------------------------
    def run_action(self, spec: ActionSpec) -> None:
        if spec.method:
            getattr(getattr(self, spec.target) if spec.target else self, spec.method)()
        elif spec.command:
            self.run_command(spec.command, spec.title.replace("&", ""))

    def run_command(self, name: str, title: str = "") -> None:
        """Run a station command without waiting: a dock that owns it runs it (and shows that
        it is busy), else the ``window-commands`` thread does."""
        for panel in self.panels.values():
            if name in getattr(panel, "COMMANDS", ()):
                panel.run_command(name)
                return

        def done(outcome: JobOutcome) -> None:
            if outcome.ok and not outcome.value:
                self.statusBar().showMessage(f"'{title or name}' is not available here", 4000)

        self.commands.submit(name, lambda: self.station.run_command(name), done)

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
            what = ("Reset the stop first: Reset…, then Confirm reset; then F5 again."
                    if self.station.latch.is_tripped else "")
            self.banner.flash(f"Cannot start: {exc}. {what}".strip())

    def pause_run(self) -> None:
        self.station.session.pause("paused by operator")

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

    def export_lerobot(self) -> None:
        from vla_studio.ui.widgets.lerobot_dialog import LeRobotExportDialog

        LeRobotExportDialog(self.station.profile.dataset_dir, self).exec()

    def train_policy(self) -> None:
        from vla_studio.ui.widgets.train_dialog import TrainDialog

        dialog = getattr(self, "_train_dialog", None)
        if dialog is None or not dialog.isVisible():  # one at a time; a finished one is replaced
            if dialog is not None:
                dialog.deleteLater()
            dialog = self._train_dialog = TrainDialog(self.station.profile.dataset_dir, self)
        dialog.show()  # not modal: the station keeps running meanwhile
        dialog.raise_()

    def show_shortcuts(self) -> None:
        help_menu.ShortcutsDialog(self).show()

    def open_user_guide(self) -> None:
        help_menu.open_user_guide(self)

    def show_about(self) -> None:
        help_menu.show_about(self, self.station.profile.name)

    # ----- views of core state ---------------------------------------------------------------
    def show_session(self, snap: SessionState) -> None:
        self.banner.show_session(snap)
        crashed = self.banner.crashed
        stopped = snap.state == RunState.ESTOPPED
        self.status_stop.setText("LOOP CRASHED" if crashed else
                                 "E-STOP LATCHED" if stopped else "stop: clear")
        self.status_stop.setProperty("tripped", stopped or crashed)
        self.status_stop.style().unpolish(self.status_stop)
        self.status_stop.style().polish(self.status_stop)
        if snap.state == RunState.RUNNING:
            self.take_keys_for_driving()
        self.show_key_target()

    def on_event(self, event: AppEvent) -> None:
        if event.kind == "loop.crashed":
            self.banner.show_crash()
            self.show_session(self.station.session.snapshot)
        elif event.kind == "recorder.started":
            self.take_keys_for_driving()

    def show_recording(self, status) -> None:
        """The recorder's status (5 Hz): the banner's REC marker and the panes' markers."""
        recorder = self.panels.get("recorder")
        starting = bool(recorder is not None and getattr(recorder, "busy", "") == "starting")
        self.banner.show_recording(status, starting)
        for pane, marker in self.rec_markers:
            if marker.show_status(status, starting):
                pane.update()

    def take_keys_for_driving(self) -> None:
        """A run or an episode just started: keys typed into a field (the instruction) go to
        the robot from now on, until the operator deliberately clicks into a field."""
        if text_input(QApplication.focusWidget()) is not None:
            self.cameras.setFocus(Qt.FocusReason.OtherFocusReason)
        self.show_key_target()

    def show_key_target(self) -> None:
        name = self.station.active_teleop or ""
        device = self.station.teleops.get(name)
        text = key_target_text(QApplication.focusWidget(),
                               self.station.session.state == RunState.RUNNING, name,
                               isinstance(device, KeyboardTeleop))
        if text != self.status_keys.text():
            self.status_keys.setText(text)

    def _focus_changed(self, _old: QWidget | None, _new: QWidget | None) -> None:
        self.show_key_target()

    def _frame(self) -> None:
        """Once per display frame: the banner's holds and latch status."""
        name = self.station.active_teleop or ""
        device = self.station.teleops.get(name)
        problem = device.status().message if isinstance(device, MappedTeleop) else ""
        self.banner.show_teleop(name, problem)
        self.banner.update_view()
        self.estop.refresh()

    def show_stats(self, stats: LoopStatsSnapshot, counts: dict[str, int]) -> None:
        self.status_loop.setText(f"loop {stats.achieved_hz:.1f}/{stats.rate_hz:g} Hz")
        self.status_jitter.setText(f"jitter p99 {stats.jitter_p99_ms:.2f} ms · overruns {stats.overruns}")
        self.show_key_target()  # the active teleop may have changed

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.write_settings()
        self.watch_keys(False)
        self.commands.stop()
        self.bridge.stop()
        super().closeEvent(event)
