"""Dataset browser dock: every episode of the station's dataset in a sortable, filterable table,
with delete-to-trash and restore.

Rows come from the dataset index (:class:`vla_studio.data.dataset_index.DatasetIndex`), which is
refreshed on a background thread (``dataset-index-refresh``, owned by this widget and joined when
its window closes) after the recorder saves, recovers or discards an episode, and on demand. The
thread makes no Qt call: a GUI-thread timer collects its result. Sorting uses the raw
values (dates, seconds, counts), not the displayed text. Double-clicking an episode, or Enter,
replays it (:attr:`DatasetBrowser.episode_activated`, which the Replay view follows); N and P in
the Replay view walk the list in its current sort and filter order (:meth:`adjacent`). The
selection can be edited at once ("Edit selected", or right-click): instruction, outcome, tags,
quality, as undoable edits (:mod:`vla_studio.ui.widgets.episode_batch`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QMenu, QPushButton, QTableView, QToolButton,
                               QVBoxLayout, QWidget)

from vla_studio.core.events import AppEvent
from vla_studio.data.dataset import DatasetError
from vla_studio.data.dataset_index import EpisodeSummary
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.station_recorder import WindowCloseWatcher, recorder_for
from vla_studio.ui.widgets.elided_label import ElidedLabel
from vla_studio.ui.widgets.episode_batch import BatchEdits
from vla_studio.ui.widgets.episode_table import (  # noqa: F401 - source_text re-exported
    VIDEO_STORAGE, EpisodeFilter, EpisodeTableModel, size_text, source_text)

log = logging.getLogger(__name__)
HIDDEN_COLUMNS_KEY = "episodes/hidden_columns"
# Shown on request (right-click the header): the default layout's list is narrow.
DEFAULT_HIDDEN = ("Steps", "Operator", "Task", "Tags", "Round", "Size")
REFRESH_EVENTS = ("recorder.saved", "recorder.recovered", "recorder.discarded", "recorder.marked",
                  "compactor.compacted")


class DatasetBrowser(QWidget):
    """The station's dataset as a table, with trash and restore.

    Signals:
        episode_activated(object): the operator double-clicked an episode, or pressed Enter on
            it (its EpisodeSummary); the Replay view opens it.
    """

    episode_activated = Signal(object)
    #: The episodes listed changed (a list of EpisodeSummary; not emitted for the trash view).
    rows_changed = Signal(object)
    #: Set by a replay view that connects to :attr:`episode_activated` (the replay issue).
    has_replay_view = False

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = QLabel()
        self.message.setObjectName("errorText")
        self.station, self.bridge = station, bridge
        self.recorder = recorder_for(station)
        self.dataset, self.index = self.recorder.dataset, self.recorder.index
        self._workers = _RefreshThreads()
        self._shown: Path | None = None  # the episode the Replay view shows
        self._again = False

        self.model = EpisodeTableModel(self)
        self.proxy = EpisodeFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)  # newest first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        # Compact rows: the default layout shows at least eight of them under the cameras.
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setMinimumHeight(self.table.verticalHeader().defaultSectionSize() * 4)
        self.table.doubleClicked.connect(self._activated)
        self.batch = BatchEdits(self, self.selected, self.path_of, self.message.setText)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(
            lambda pos: self.batch.menu().exec(self.table.viewport().mapToGlobal(pos)))
        header = self.table.horizontalHeader()
        self._size_columns()
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._column_menu)
        hidden = QSettings().value(HIDDEN_COLUMNS_KEY, list(DEFAULT_HIDDEN))
        for name in EpisodeTableModel.COLUMNS:
            header.setSectionHidden(EpisodeTableModel.COLUMNS.index(name),
                                    name in (hidden or ()) and name != "Instruction")

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("filter: instruction, operator, device, task, flags...")
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.outcome_combo = QComboBox()
        self.outcome_combo.addItems(EpisodeFilter.OUTCOMES)
        self.outcome_combo.currentTextChanged.connect(self.proxy.set_outcome)
        self.round_combo = QComboBox()
        self.round_combo.setObjectName("episodesRound")
        self.round_combo.setToolTip("Show one DAgger round (correction sessions), or the "
                                    "episodes outside any round (demonstrations)")
        self.round_combo.addItem(EpisodeFilter.ALL_ROUNDS)
        self.round_combo.setVisible(False)  # until the dataset has rounds
        self.round_combo.currentTextChanged.connect(self.proxy.set_round)
        self.trash_check = QCheckBox("Trash")
        self.trash_check.setToolTip("Show the trash (deleted episodes) instead of the dataset")
        self.trash_check.toggled.connect(self._trash_toggled)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.trash_button = QPushButton("Move to trash")
        self.trash_button.clicked.connect(self.trash_selected)
        self.restore_button = QPushButton("Restore")
        self.restore_button.clicked.connect(self.restore_selected)
        self.restore_button.setVisible(False)
        self.edit_button = QToolButton()
        self.edit_button.setText("Edit…")
        self.edit_button.setObjectName("episodesEdit")
        self.edit_button.setToolTip("Edit every selected episode at once: instruction, outcome, "
                                    "quality or tags (undoable; right-click does the same)")
        self.edit_button.clicked.connect(lambda: self.batch.menu().exec(
            self.edit_button.mapToGlobal(self.edit_button.rect().bottomLeft())))
        self.summary = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle)  # holds the folder path

        self.summary.setObjectName("mutedText")
        self._summary_text = ""
        self.compaction_text = ""  # what the background transcoder is doing (footer)
        self.message.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.outcome_combo)
        bar.addWidget(self.round_combo)
        bar.addWidget(self.trash_check)
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.edit_button)
        bar.addWidget(self.trash_button)
        bar.addWidget(self.restore_button)
        foot = QHBoxLayout()
        foot.addWidget(self.summary)
        foot.addWidget(self.message, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addLayout(foot)

        self._poll = QTimer(self)  # picks up the refresh thread's result on the GUI thread
        self._poll.setInterval(50)
        self._poll.timeout.connect(self._collect)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(self.refresh)
        self._compaction_timer = QTimer(self)  # the compactor's state, once a second
        self._compaction_timer.setInterval(1000)
        self._compaction_timer.timeout.connect(self.show_compaction)
        self._compaction_timer.start()
        bridge.app_event.connect(self.on_event)
        self._close_watcher = WindowCloseWatcher(self, self._workers.join)
        self.refresh()

    def _size_columns(self) -> None:
        """The instruction is what the operator reads: it gets the room; the figures get widths
        that fit their values (measured in the table's own font; they can be dragged)."""
        self.table.ensurePolished()
        fm = self.table.fontMetrics()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        samples = {"Date": "00:00:00", "Duration": "000.0 s", "Steps": "00000",
                   "Success": "✓ success", "Quality": "★★★★★", "Operator": "operator",
                   "Source": "policy (0.00)", "Round": "00", "Interventions": "12 · 100%",
                   "Task": "pick_up_the_cube", "Tags": "wobbly grasp", "Flags": "recovered",
                   "Storage": "H.264", "Size": "000 MB"}
        header.ensurePolished()
        for name, sample in samples.items():
            i = EpisodeTableModel.COLUMNS.index(name)
            # The header's label fits too, in the header's font ("Interventions" is wider
            # than its values).
            header.resizeSection(i, max(fm.horizontalAdvance(sample),
                                        header.fontMetrics().horizontalAdvance(name)) + 24)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(fm.horizontalAdvance("MMMM"))

    def _column_menu(self, pos) -> None:
        """Right-click on the header: show or hide columns (remembered)."""
        header = self.table.horizontalHeader()
        menu = QMenu(self)
        for i, name in enumerate(EpisodeTableModel.COLUMNS):
            if name == "Instruction":
                continue
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(not header.isSectionHidden(i))
            action.toggled.connect(lambda on, i=i: self.show_column(i, on))
        menu.exec(header.mapToGlobal(pos))

    def show_column(self, column: int, visible: bool) -> None:
        header = self.table.horizontalHeader()
        header.setSectionHidden(column, not visible)
        QSettings().setValue(HIDDEN_COLUMNS_KEY, [
            n for i, n in enumerate(EpisodeTableModel.COLUMNS) if header.isSectionHidden(i)])

    def height_for_rows(self, rows: int) -> int:
        """The panel height that shows ``rows`` episode rows (the default layout asks)."""
        table = self.table
        header = table.horizontalHeader().sizeHint().height()
        body = rows * table.verticalHeader().defaultSectionSize() + 2 * table.frameWidth()
        scrollbar = table.horizontalScrollBar().sizeHint().height()
        margins = self.layout().contentsMargins()
        spacing = self.layout().spacing() * 2
        bars = self.filter_edit.sizeHint().height() + self.summary.sizeHint().height()
        return header + body + scrollbar + margins.top() + margins.bottom() + spacing + bars

    def _activated(self, index: QModelIndex) -> None:
        row = self.proxy.mapToSource(index).row()
        if 0 <= row < len(self.model.rows):
            self.open_episode(self.model.rows[row])

    def open_episode(self, summary: EpisodeSummary) -> None:
        """Replay ``summary`` (double-click, Enter) in the Replay view."""
        self.episode_activated.emit(summary)
        if not self.has_replay_view:
            self.message.setText(f"No Replay view in this window; the episode is "
                                 f"{self.path_of(summary)}")

    def open_selected(self) -> None:
        """Enter: replay the current (or first selected) episode."""
        index = self.table.currentIndex()
        if index.isValid():
            self._activated(index)
        elif self.selected():
            self.open_episode(self.selected()[0])

    def path_of(self, summary: EpisodeSummary) -> Path:
        return self.dataset.root / summary.file

    def _row_of(self, path: Path) -> int | None:
        """The proxy row of episode ``path`` (None when the filter hides it)."""
        for row in range(self.proxy.rowCount()):
            source = self.proxy.mapToSource(self.proxy.index(row, 0)).row()
            if self.path_of(self.model.rows[source]) == Path(path):
                return row
        return None

    def adjacent(self, path: Path, direction: int) -> Path | None:
        """The episode after (``direction`` +1) or before (-1) ``path`` in the table's current
        order and filter; from an episode the filter hides, the first (or last) shown."""
        count = self.proxy.rowCount()
        if not count:
            return None
        row = self._row_of(path)
        target = (0 if direction > 0 else count - 1) if row is None else row + direction
        if not 0 <= target < count:
            return None
        return self.path_of(self.model.rows[self.proxy.mapToSource(
            self.proxy.index(target, 0)).row()])

    def select_path(self, path: Path) -> None:
        """Make ``path`` the current row (the episode the Replay view shows; also once the
        rows arrive, when the list is still being read)."""
        self._shown = Path(path)
        row = self._row_of(path)
        if row is not None:
            index = self.proxy.index(row, 1)
            self.table.setCurrentIndex(index)
            self.table.scrollTo(index)

    # ----- data ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the index on the ``dataset-index-refresh`` thread; rows update when done."""
        if self._workers.busy():
            self._again = True  # one more pass once the running one ends
            return
        self._workers.start(self._refresh_job, self.trash_check.isChecked())
        self._poll.start()

    def _refresh_job(self, trashed: bool) -> None:
        try:
            rows = self.index.refresh(include_trashed=trashed)
        except Exception as exc:  # an unreadable index must not take the browser down
            log.exception("refreshing the dataset index failed")
            rows = exc
        if trashed:
            rows = rows if isinstance(rows, Exception) else [r for r in rows if r.trashed]
        self._workers.result = rows  # no Qt call off the GUI thread: _collect picks it up

    def _collect(self) -> None:
        if self._workers.busy():
            return
        self._poll.stop()
        rows, self._workers.result = self._workers.result, None
        if rows is not None:
            self._show_rows(rows)

    def _show_rows(self, rows: object) -> None:
        if isinstance(rows, Exception):
            self.message.setText(f"Cannot read the dataset index: {rows}")
            return
        chosen = {s.file for s in self.selected()}
        current = self.table.currentIndex()
        current_file = self.model.rows[self.proxy.mapToSource(current).row()].file \
            if current.isValid() else None
        if current_file is None and self._shown is not None:  # what the Replay view shows
            current_file = f"{self._shown.parent.name}/{self._shown.name}"
            chosen.add(current_file)
        self.model.set_rows(rows)  # type: ignore[arg-type]
        self._show_rounds()
        self._reselect(chosen, current_file)  # a refresh after an edit keeps the selection
        total = sum(r.duration_s for r in self.model.rows)
        size = sum(r.size_bytes for r in self.model.rows)
        video = sum(1 for r in self.model.rows if r.storage in VIDEO_STORAGE)
        where = "in the trash" if self.trash_check.isChecked() else f"in {self.dataset.root}"
        stored = f" · {video} as video" if video else ""
        self._summary_text = (f"{len(self.model.rows)} episodes {where} · {total / 60:.1f} min · "
                              f"{size_text(size)}{stored}")
        self.show_compaction()
        if self._again:
            self._again = False
            self.refresh()

    def _show_rounds(self) -> None:
        """The round filter lists the dataset's rounds (shown once it has any); the rounds
        plot gets the rows."""
        choices = EpisodeFilter.round_choices(self.model.rows)
        combo = self.round_combo
        if [combo.itemText(i) for i in range(combo.count())] != choices:
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(choices)
            combo.setCurrentIndex(max(0, combo.findText(current)))
            combo.blockSignals(False)
            self.proxy.set_round(combo.currentText())
        combo.setVisible(len(choices) > 1 or combo.currentIndex() > 0)
        if not self.trash_check.isChecked():
            self.rows_changed.emit(list(self.model.rows))

    def _reselect(self, files: set[str], current: str | None) -> None:
        selection = self.table.selectionModel()
        flags = (QItemSelectionModel.SelectionFlag.Select |
                 QItemSelectionModel.SelectionFlag.Rows)
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            name = self.model.rows[self.proxy.mapToSource(index).row()].file
            if name == current:
                selection.setCurrentIndex(self.proxy.index(row, 1),
                                          QItemSelectionModel.SelectionFlag.NoUpdate)
            if name in files:
                selection.select(index, flags)

    def show_compaction(self) -> None:
        """The footer: the dataset's episodes, length and size, then what the background
        transcoder is doing (nothing when episodes stay JPEG). The folder is elided first."""
        compactor = getattr(self.recorder, "compactor", None)
        news = compaction_text(compactor.status()) if compactor else ""
        self.compaction_text = news
        self.summary.setText(self._summary_text + (f" · {news}" if news else ""))

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Join a running refresh (closing, tests)."""
        self._workers.join(timeout_s)

    def on_event(self, event: AppEvent) -> None:
        if event.kind in REFRESH_EVENTS:
            self._debounce.start()

    def selected(self) -> list[EpisodeSummary]:
        rows = {self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()}
        return [self.model.rows[r] for r in sorted(rows)]

    # ----- trash -----------------------------------------------------------------------------
    def _trash_toggled(self, show_trash: bool) -> None:
        self.trash_button.setVisible(not show_trash)
        self.restore_button.setVisible(show_trash)
        self.refresh()

    def trash_selected(self) -> None:
        """Move the selected episodes to the trash (restorable)."""
        chosen = [s for s in self.selected() if not s.trashed]
        if not chosen:
            self.message.setText("Select the episodes to move to the trash.")
            return
        failed = []
        for s in chosen:
            try:
                self.dataset.trash(self.dataset.root / s.file)
            except OSError as exc:
                failed.append(f"{s.name}: {exc.strerror or exc}")
        self.message.setText("; ".join(failed) if failed else
                             f"Moved {len(chosen)} episode(s) to the trash; tick 'Trash' to restore.")
        self.refresh()

    def restore_selected(self) -> None:
        """Move the selected trashed episodes back into the dataset."""
        chosen = [s for s in self.selected() if s.trashed]
        if not chosen:
            self.message.setText("Select trashed episodes to restore.")
            return
        failed = []
        for s in chosen:
            try:
                self.dataset.restore(self.dataset.root / s.file)
            except (OSError, DatasetError) as exc:
                failed.append(str(exc))
        self.message.setText("; ".join(failed) if failed else f"Restored {len(chosen)} episode(s).")
        self.refresh()


def compaction_text(status) -> str:
    """One line about background compaction for the dock's footer."""
    if status.state == "working" and status.episode:
        done = 100 * status.frames_done / status.frames_total if status.frames_total else 0
        text = f"compacting {status.episode.removesuffix('.h5')} {done:.0f}%"
    elif status.state == "paused" and status.episode:
        text = "compaction paused while recording"
    elif status.waiting:
        text = f"{status.waiting} episode(s) to compact"
    else:
        text = ""
    if status.compacted:
        text += f"{' · ' if text else ''}{status.compacted} compacted, " \
                f"{size_text(status.saved_bytes)} saved"
    return text


class _RefreshThreads:
    """The browser's refresh thread, kept apart from the widget so it can still be joined when
    the widget is being destroyed."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self.result: object = None  # set by the thread, taken by the GUI thread

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, target, *args: object) -> None:
        self._thread = threading.Thread(target=target, args=args, name="dataset-index-refresh",
                                        daemon=True)
        self._thread.start()

    def join(self, timeout_s: float = 10.0) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
