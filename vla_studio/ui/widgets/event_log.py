"""Events dock: what happened, newest last, coloured by severity (e-stops, camera drops, ...)."""

from __future__ import annotations

import logging
import time

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from vla_studio.core.events import AppEvent
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge

MAX_ROWS = 1000
_COLOURS = {logging.WARNING: QColor("#e0a030"), logging.ERROR: QColor("#ff5c5c"),
            logging.CRITICAL: QColor("#ff5c5c")}


class EventLog(QWidget):
    """A table of AppEvents (time, severity, kind, message)."""

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._t0_wall = time.time() - time.monotonic()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Time", "Level", "Kind", "Message"])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        QVBoxLayout(self).addWidget(self.table)
        for event in list(station.events.history):
            self.add_event(event)
        bridge.app_event.connect(self.add_event)

    def add_event(self, event: AppEvent) -> None:
        if self.table.rowCount() >= MAX_ROWS:
            self.table.removeRow(0)
        row = self.table.rowCount()
        self.table.insertRow(row)
        stamp = time.strftime("%H:%M:%S", time.localtime(self._t0_wall + event.t))
        cells = (stamp, logging.getLevelName(event.level).lower(), event.kind, event.message)
        colour = _COLOURS.get(event.level)
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if colour is not None:
                item.setForeground(colour)
            self.table.setItem(row, col, item)
        self.table.scrollToBottom()
