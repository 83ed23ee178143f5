"""Events dock: what happened, newest last, coloured by severity.

Every :class:`~vla_studio.core.events.AppEvent` of the station's bus shows up here, whoever
published it: e-stop latches and resets (from the bridge), recorder news, a recovered or
quarantined recording, a camera lost, a crashed control loop. A row's tooltip carries the event's
extra fields (the file, the camera...), so nothing an event says is hidden.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from vla_studio.core.events import AppEvent
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge

MAX_ROWS = 1000
_COLOURS = {logging.WARNING: QColor("#e0a030"), logging.ERROR: QColor("#ff5c5c"),
            logging.CRITICAL: QColor("#ff5c5c")}


class EventLog(QWidget):
    """A table of AppEvents: time, message, kind (the level is the row's colour and tooltip;
    the message gets the room, it is what the operator reads)."""

    COLUMNS = ("Time", "Message", "Kind")

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._t0_wall = time.time() - time.monotonic()
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(2, self.fontMetrics().horizontalAdvance("recorder.recovered") + 12)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.table)
        #: The events shown, one per row (oldest first).
        self.events: list[AppEvent] = []
        for event in list(station.events.history):  # what happened before the window opened
            if event.t < bridge.subscribed_at:
                self.add_event(event)
        bridge.app_event.connect(self.add_event)

    def add_event(self, event: AppEvent) -> None:
        if self.table.rowCount() >= MAX_ROWS:
            self.table.removeRow(0)
            del self.events[0]
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.events.append(event)
        stamp = time.strftime("%H:%M:%S", time.localtime(self._t0_wall + event.t))
        colour = _COLOURS.get(event.level)
        level = logging.getLevelName(event.level).lower()
        details = "\n".join(f"{k}: {v}" for k, v in event.data.items())
        tip = f"{level}: {event.message}" + (f"\n\n{details}" if details else "")
        for col, text in enumerate((stamp, event.message, event.kind)):
            item = QTableWidgetItem(text)
            item.setToolTip(tip)
            if colour is not None:
                item.setForeground(colour)
            if event.level >= logging.ERROR:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            self.table.setItem(row, col, item)
        self.table.scrollToBottom()

    def cell(self, row: int, column: str) -> QTableWidgetItem:
        """The item of ``row`` in the column titled ``column``."""
        return self.table.item(row, self.COLUMNS.index(column))

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]
