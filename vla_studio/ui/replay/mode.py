"""Live and Replay: the two modes of the main window's centre, as tabs under the banner.

The banner with the STOP stays above both. Entering Replay hides the live-only docks (they
come back, as they were, on leaving it, and before the window saves its layout), gives the
replay view the keyboard, and routes Space to play/pause; but only while no run is active:
during a run Space stays the window's STOP key (:mod:`vla_studio.ui.key_routing`), whatever
has the focus.

The replay view's keys are the actions table's ``scoped`` rows (``replay.*`` on the view,
``episodes.*`` on the Episodes list): they work only while the focus is inside that widget, so
the same letters still drive the robot from anywhere else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QSizePolicy, QTabWidget, QWidget

from vla_studio.core.session import RunState
from vla_studio.ui.actions import ACTIONS
from vla_studio.ui.key_routing import text_input
from vla_studio.ui.replay.help_overlay import HelpOverlay
from vla_studio.ui.replay.view import ReplayView

if TYPE_CHECKING:
    from vla_studio.data.dataset_index import EpisodeSummary
    from vla_studio.ui.main_window import MainWindow
    from vla_studio.ui.widgets.dataset_browser import DatasetBrowser

log = logging.getLogger(__name__)
LIVE, REPLAY = 0, 1
REPLAY_DOCKS = ("episodes",)  # docks that stay in Replay mode
REPLAY_EPISODE_ROWS = 4


class ReplayMode(QObject):
    """The Live / Replay tabs of one main window.

    Args:
        window: the main window (its actions must exist already).
        live: the live centre (the camera grid).
    """

    def __init__(self, window: "MainWindow", live: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.tabs = QTabWidget()
        self.tabs.setObjectName("modeTabs")
        self.tabs.setDocumentMode(True)
        self.view = ReplayView()
        self.tabs.addTab(live, "Live")
        self.tabs.addTab(self.view, "Replay")
        self.tabs.setTabToolTip(LIVE, "Live cameras and the robot (Ctrl+1)")
        self.tabs.setTabToolTip(REPLAY, "Replay and annotate recorded episodes (Ctrl+2)")
        self.tabs.currentChanged.connect(self._mode_changed)
        self._size_for(LIVE)
        self.overlay = HelpOverlay(window)
        self.browser: "DatasetBrowser | None" = None
        self._hidden: list[str] = []
        self._live_height = 0
        self._space = _SpaceToPlay(self)
        for spec in ACTIONS:
            if spec.scoped and spec.id.startswith("replay."):
                self.view.addAction(window.actions_by_id[spec.id])
        window.installEventFilter(self)
        window.bridge.session_changed.connect(self._session_changed)

    def _session_changed(self, snap) -> None:
        if snap.state == RunState.RUNNING and self.replaying:
            self.show_live()  # the robot moves: the operator sees the live cameras

    @property
    def replaying(self) -> bool:
        return self.tabs.currentIndex() == REPLAY

    # ----- the window's actions --------------------------------------------------------------
    def show_live(self) -> None:
        self.tabs.setCurrentIndex(LIVE)

    def show_replay(self) -> None:
        self.tabs.setCurrentIndex(REPLAY)
        self.view.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def show_key_overlay(self) -> None:
        if self.overlay.isVisible():
            self.overlay.hide()
        else:
            self.overlay.show_for("Replay" if self.replaying else "Robot")

    def open_selected(self) -> None:
        if self.browser is not None:
            self.browser.open_selected()

    # ----- opening -----------------------------------------------------------------------
    def attach_browser(self, browser: "DatasetBrowser | None") -> None:
        """Follow the Episodes list: open what it activates, walk its order with N / P, edit
        its selection on the replay's undo stack, refresh it after edits."""
        if browser is None:
            return
        self.browser = browser
        browser.has_replay_view = True
        browser.batch.editor = self.view.editor
        browser.episode_activated.connect(self.open_summary)
        for spec in ACTIONS:
            if spec.scoped and spec.id.startswith("episodes."):
                browser.addAction(self.window.actions_by_id[spec.id])
        self.view.neighbour = browser.adjacent
        self.view.episode_opened.connect(browser.select_path)
        self.view.annotations_changed.connect(lambda _paths: browser.refresh())

    def open_summary(self, summary: "EpisodeSummary") -> None:
        if self.browser is not None:
            self.open_path(self.browser.path_of(summary))

    def open_path(self, path: Path) -> bool:
        self.show_replay()
        return self.view.open_path(Path(path))

    # ----- switching -----------------------------------------------------------------------
    def _size_for(self, index: int) -> None:
        """Only the page showing sets the window's minimum size: the replay's panes and panel
        need more width than the live grid, which shares the width with the right docks."""
        for page in (LIVE, REPLAY):
            policy = QSizePolicy.Policy.Preferred if page == index else QSizePolicy.Policy.Ignored
            self.tabs.widget(page).setSizePolicy(policy, policy)

    def _mode_changed(self, index: int) -> None:
        self._size_for(index)
        app = QApplication.instance()
        episodes = self.window.docks.get("episodes")
        if index == REPLAY:
            for dock_id, dock in self.window.docks.items():
                if dock_id not in REPLAY_DOCKS and dock.isVisible() and not dock.isFloating():
                    dock.hide()
                    self._hidden.append(dock_id)
            self._shrink_episodes()
            app.installEventFilter(self._space)
        else:
            self.view.pause()
            app.removeEventFilter(self._space)
            for dock_id in self._hidden:
                self.window.docks[dock_id].show()
            self._hidden.clear()
            if episodes is not None and self._live_height:
                self.window.resizeDocks([episodes], [self._live_height],
                                        Qt.Orientation.Vertical)
                self._live_height = 0

    def _shrink_episodes(self) -> None:
        """The episodes stay in view, a few rows high: the replay needs the height. Once the
        window has placed its docks (a size set before that is lost)."""
        episodes = self.window.docks.get("episodes")
        if episodes is None or self.browser is None or episodes.isFloating() or \
                not self.replaying:
            return
        if not self.window.layout_settled:
            QTimer.singleShot(100, self, self._shrink_episodes)  # dies with the window
            return
        self._live_height = self._live_height or episodes.height()
        rows = self.browser.height_for_rows(REPLAY_EPISODE_ROWS)
        self.window.resizeDocks([episodes], [rows + 30], Qt.Orientation.Vertical)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self.window and event.type() == QEvent.Type.Close:
            # Before the window saves its layout: the live docks as the operator left them.
            self.show_live()
            self.view.shutdown()
        return False

    def running(self) -> bool:
        return self.window.station.session.state == RunState.RUNNING


class _SpaceToPlay(QObject):
    """Space plays / pauses the replay while the focus is in the Replay view, no run is
    active and nothing takes typed text (installed only while Replay is showing)."""

    def __init__(self, mode: ReplayMode) -> None:
        super().__init__(mode)
        self.mode = mode

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        if event.key() != Qt.Key.Key_Space or event.modifiers() != Qt.KeyboardModifier.NoModifier:
            return False
        focus = QApplication.focusWidget()
        view = self.mode.view
        if focus is None or not (focus is view or view.isAncestorOf(focus)):
            return False
        if text_input(focus) is not None or self.mode.running():
            return False  # typing, or the STOP key of a run (the window's filter decides)
        if QApplication.activePopupWidget() is not None or \
                QApplication.activeModalWidget() is not None:
            return False
        if not event.isAutoRepeat():
            view.toggle_play()
        return True
