"""The Help menu: keyboard shortcuts (from the one actions table), the user guide, About."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QMessageBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from vla_studio import __version__
from vla_studio.paths import resources_dir
from vla_studio.ui.actions import ACTIONS, ActionSpec

log = logging.getLogger(__name__)
GUIDE_NAMES = ("README.md",)


def shortcut_rows(actions: tuple[ActionSpec, ...] = ACTIONS) -> list[tuple[str, str, str]]:
    """(keys, action, menu) for every action that has keys, in menu order."""
    return [(spec.keys, spec.title.replace("&", ""), spec.menu.replace("&", ""))
            for spec in actions if spec.keys]


class ShortcutsDialog(QDialog):
    """Every keyboard shortcut of the window, read from the actions table (Esc closes it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts — VLA Studio")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        rows = shortcut_rows()
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Keys", "Action", "Menu"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        note = QLabel("Drive keys (W/A/S/D, R/F, Q/E, G...) are listed in the Teleop dock's "
                      "Bindings page; they go to the robot whenever you are not typing in a "
                      "text field.")
        note.setWordWrap(True)
        note.setObjectName("mutedText")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(620, 520)


def user_guide_path() -> Path | None:
    """The user guide installed beside the resources (the README, which links the docs)."""
    root = resources_dir().parent
    for name in GUIDE_NAMES:
        path = root / name
        if path.is_file():
            return path
    return None


def open_user_guide(parent: QWidget) -> bool:
    """Open the local user guide with the desktop's viewer; say where it is if that fails."""
    path = user_guide_path()
    if path is None:
        QMessageBox.information(parent, "User guide",
                                "The user guide is not installed with this copy of VLA Studio. "
                                "It is the README.md and docs/ folder of the source.")
        return False
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        return True
    QMessageBox.information(parent, "User guide",
                            f"No application opens {path.suffix} files here. The guide is:\n"
                            f"{path}\n(and the docs/ folder beside it).")
    return False


def show_about(parent: QWidget, station_name: str) -> None:
    QMessageBox.about(
        parent, "About VLA Studio",
        f"<b>VLA Studio</b> {__version__}<br>Station: {html.escape(station_name)}<br><br>"
        "The on-screen STOP is a <b>software</b> stop. Real robots still need a hardware "
        "e-stop within the operator's reach.")
