"""Dataset browser dock: every episode of the station's dataset in a sortable, filterable table,
with delete-to-trash and restore.

Rows come from the dataset index (:class:`vla_studio.data.dataset_index.DatasetIndex`), which is
refreshed on a background thread (``dataset-index-refresh``, owned by this widget and joined when
its window closes) after the recorder saves, recovers or discards an episode, and on demand. The
thread makes no Qt call: a GUI-thread timer collects its result. Sorting uses the raw
values (dates, seconds, counts), not the displayed text. Double-clicking an episode asks to
replay it (:attr:`DatasetBrowser.episode_activated`); until a replay view exists the browser says
so, with the episode's file.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QPersistentModelIndex,
                            QSettings, QSortFilterProxyModel, Qt, QTimer, Signal)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QMenu, QPushButton, QTableView, QVBoxLayout,
                               QWidget)

from vla_studio.core.events import AppEvent
from vla_studio.data.dataset import DatasetError
from vla_studio.data.dataset_index import EpisodeSummary
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.station_recorder import WindowCloseWatcher, recorder_for
from vla_studio.ui.widgets.elided_label import ElidedLabel

log = logging.getLogger(__name__)
SORT_ROLE = Qt.ItemDataRole.UserRole
HIDDEN_COLUMNS_KEY = "episodes/hidden_columns"
# Shown on request (right-click the header): the default layout's list is narrow.
DEFAULT_HIDDEN = ("Steps", "Operator", "Task")
REFRESH_EVENTS = ("recorder.saved", "recorder.recovered", "recorder.discarded", "recorder.marked")
_SUCCESS_TEXT = {True: "✓ success", False: "✗ failure", None: "?"}
_SUCCESS_COLOUR = {True: QColor("#2fb36b"), False: QColor("#ff5c5c"), None: QColor("#9aa3ad")}


def source_text(s: EpisodeSummary) -> str:
    """Who drove: the teleop device by name ("keyboard", "gamepad", "expert"), "policy", a
    DAgger run with the device that took over ("dagger · gamepad"), or a device that never moved
    the arm ("gamepad (no motion)": unplugged, or never touched). A policy run shows its mean
    confidence over the steps it drove ("policy (0.82)")."""
    if s.source == "policy" and s.confidence is not None:
        return f"policy ({s.confidence:.2f})"
    if not s.device:
        return s.source
    if s.source == "teleop":
        return s.device
    if s.source in ("dagger", "intervention"):
        return f"{s.source} · {s.device}"
    if s.source == "hold":
        return f"{s.device} (no motion)"
    return s.source


def _local_time(created: str, today: dt.date | None = None) -> str:
    """Today's episodes by time only (the column stays narrow), older ones with their date."""
    try:
        stamp = dt.datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return created
    if stamp.date() == (today or dt.date.today()):
        return stamp.strftime("%H:%M:%S")
    return stamp.strftime("%Y-%m-%d %H:%M")


class EpisodeTableModel(QAbstractTableModel):
    """Episode summaries as table rows (display text, plus raw values for sorting)."""

    COLUMNS = ("Date", "Instruction", "Duration", "Steps", "Success", "Operator", "Source",
               "Task", "Flags")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[EpisodeSummary] = []

    def set_rows(self, rows: list[EpisodeSummary]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt override
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        s = self.rows[index.row()]
        column = self.COLUMNS[index.column()]
        if role == SORT_ROLE:
            return {"Date": s.created, "Instruction": s.instruction.lower(), "Duration": s.duration_s,
                    "Steps": s.num_steps, "Success": -1 if s.success is None else int(s.success),
                    "Operator": s.operator.lower(), "Source": source_text(s), "Task": s.task,
                    "Flags": ", ".join(s.flags)}[column]
        if role == Qt.ItemDataRole.DisplayRole:
            return {"Date": _local_time(s.created), "Instruction": s.instruction,
                    "Duration": f"{s.duration_s:.1f} s", "Steps": str(s.num_steps),
                    "Success": _SUCCESS_TEXT[s.success], "Operator": s.operator,
                    "Source": source_text(s), "Task": s.task,
                    "Flags": ", ".join(s.flags)}[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == "Success":
            return _SUCCESS_COLOUR[s.success]
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [f"{s.name} · recorded {s.created}", *s.instructions]
            if s.notes:
                lines.append(f"notes: {s.notes}")
            return "\n".join(lines)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in ("Duration", "Steps"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class EpisodeFilter(QSortFilterProxyModel):
    """Free-text filter over instruction, operator, task, flags and file name, plus an outcome
    filter (all / success / failure / unknown)."""

    OUTCOMES = ("All outcomes", "Success", "Failure", "Unknown")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text = ""
        self.outcome = "All outcomes"
        self.setSortRole(SORT_ROLE)

    def set_text(self, text: str) -> None:
        self._change(lambda: setattr(self, "text", text.strip().lower()))

    def set_outcome(self, outcome: str) -> None:
        self._change(lambda: setattr(self, "outcome", outcome))

    def _change(self, apply) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9
            self.beginFilterChange()
            apply()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            apply()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        s: EpisodeSummary = self.sourceModel().rows[row]
        wanted = {"Success": True, "Failure": False, "Unknown": None}
        if self.outcome in wanted and s.success is not wanted[self.outcome]:
            return False
        return s.matches(self.text)


class DatasetBrowser(QWidget):
    """The station's dataset as a table, with trash and restore.

    Signals:
        episode_activated(object): the operator double-clicked an episode (its EpisodeSummary);
            a replay view opens it.
    """

    episode_activated = Signal(object)
    #: Set by a replay view that connects to :attr:`episode_activated` (the replay issue).
    has_replay_view = False

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station, self.bridge = station, bridge
        self.recorder = recorder_for(station)
        self.dataset, self.index = self.recorder.dataset, self.recorder.index
        self._workers = _RefreshThreads()
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
        self.summary = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle)  # holds the folder path
        self.message = QLabel()
        self.message.setObjectName("errorText")

        self.summary.setObjectName("mutedText")
        self.message.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.outcome_combo)
        bar.addWidget(self.trash_check)
        bar.addWidget(self.refresh_button)
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
        samples = {"Date": "00:00:00", "Duration": "Duration", "Steps": "00000",
                   "Success": "✓ success", "Operator": "Operator", "Source": "policy (0.00)",
                   "Task": "pick_up_the_cube", "Flags": "recovered"}
        for name, sample in samples.items():
            header.resizeSection(EpisodeTableModel.COLUMNS.index(name),
                                 fm.horizontalAdvance(sample) + 24)
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
        """Replay ``summary`` (double-click): in the replay view once there is one."""
        self.episode_activated.emit(summary)
        if self.has_replay_view:
            return
        self.message.setText(f"Replay is not available yet: the replay view is still to come. "
                             f"The episode is {self.dataset.root / summary.file}")

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
        self.model.set_rows(rows)  # type: ignore[arg-type]
        total = sum(r.duration_s for r in self.model.rows)
        where = "in the trash" if self.trash_check.isChecked() else f"in {self.dataset.root}"
        self.summary.setText(f"{len(self.model.rows)} episodes {where} · {total / 60:.1f} min")
        if self._again:
            self._again = False
            self.refresh()

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
