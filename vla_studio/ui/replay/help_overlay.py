"""The ``?`` overlay: every key of the window, read from the one actions table, laid over the
window in columns by menu (the replay's keys first when the Replay view is showing).

Any key or click closes it. It does not swallow Esc: Esc still latches the e-stop (the window's
rule everywhere outside menus and dialogs), then the overlay closes too.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, QRect, Qt
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QWidget

from vla_studio.ui.actions import ACTIONS, ActionSpec

# Keys handled outside the table (drive keys live in the Teleop dock's bindings page).
EXTRA_ROWS = {"Replay": [("click / drag", "on the timeline or a plot: seek")],
              "Replay: annotate": [("drag", "subtask lane: new segment"),
                                   ("drag", "a segment's edge: resize; its body: move"),
                                   ("double-click", "a segment: label it")]}


# The replay's many keys in two columns: watching and moving, and annotating.
ANNOTATING = ("replay.trim_in", "replay.trim_out", "replay.clear_trim", "replay.success",
              "replay.failure", "replay.unknown", "replay.split", "replay.label",
              "replay.delete_segment", "replay.instructions", "replay.tags",
              *(f"replay.quality_{q}" for q in range(1, 6)))
REPLAY_ANNOTATE = "Replay: annotate"


def key_rows(actions: tuple[ActionSpec, ...] = ACTIONS) -> dict[str, list[tuple[str, str]]]:
    """Section -> (keys, action) for every action with keys, in table order; sections are the
    menus (without ``&``), the replay's split in two (:data:`ANNOTATING`)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for spec in actions:
        if spec.keys:
            section = REPLAY_ANNOTATE if spec.id in ANNOTATING else spec.menu.replace("&", "")
            out.setdefault(section, []).append(
                (spec.keys, spec.title.replace("&", "").rstrip(".")))
    for menu, rows in EXTRA_ROWS.items():
        if menu in out:
            out[menu].extend(rows)
    return out


class HelpOverlay(QWidget):
    """A translucent sheet over ``host`` listing every key; closes on any key or click."""

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.setObjectName("keyOverlay")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_NoMousePropagation)
        self.columns: list[QLabel] = []
        self._content_height = 0
        self.title = QLabel(self)
        self.title.setStyleSheet("background: transparent; color: white; font-size: 15pt; "
                                 "font-weight: 700;")
        self.hint = QLabel("any key or click closes this · the same list: Help → Keyboard "
                           "shortcuts (F1)", self)
        self.hint.setStyleSheet("background: transparent; color: #9aa3ad;")
        host.installEventFilter(self)
        self.hide()

    def show_for(self, first_menu: str = "Replay") -> None:
        """Show the keys, ``first_menu``'s column first."""
        for label in self.columns:
            label.deleteLater()
        self.columns = []
        rows = key_rows()
        first = [first_menu, REPLAY_ANNOTATE] if first_menu == "Replay" else [first_menu]
        order = sorted(rows, key=lambda m: (m not in first, list(rows).index(m)))
        self.title.setText("Keys")
        for menu in order:
            lines = [f"<tr><td colspan=2 style='color:#4c8dff; font-weight:700; "
                     f"font-size:11pt; padding-bottom:3px'>{html.escape(menu)}</td></tr>"]
            for keys, title in rows[menu]:
                lines.append(f"<tr><td width=150 style='color:#ffd479; font-weight:600; "
                             f"white-space:nowrap'>{html.escape(keys)}</td>"
                             f"<td style='color:#dde1e7'>{html.escape(title)}</td></tr>")
            label = QLabel("<table cellspacing=0 cellpadding=2>" + "".join(lines) + "</table>",
                           self)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setStyleSheet("background: transparent;")
            label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            self.columns.append(label)
        self._place()
        self.show()
        self.raise_()
        self.setFocus(Qt.FocusReason.OtherFocusReason)

    def sheet(self) -> QRect:
        """The panel the keys are listed on, centred over the window."""
        width = min(self.width() - 40, 1320)
        height = min(self.height() - 40, max(self._content_height + 90, 300))
        return QRect((self.width() - width) // 2, (self.height() - height) // 2, width, height)

    def _place(self) -> None:
        host = self.parentWidget()
        self.setGeometry(host.rect())
        # The two replay sections first, one column each; the other menus fill the third.
        width = (min(self.width() - 40, 1320) - 60) // 3
        for label in self.columns:
            label.setFixedWidth(width - 12)
            label.adjustSize()
        columns: list[list[QLabel]] = [[], [], []]
        for i, label in enumerate(self.columns):
            columns[min(i, 2)].append(label)
        self._content_height = max(sum(c.height() + 10 for c in col) for col in columns)
        sheet = self.sheet()
        self.title.setGeometry(sheet.left() + 30, sheet.top() + 16, 120, 34)
        self.hint.setGeometry(sheet.left() + 110, sheet.top() + 22, sheet.width() - 140, 26)
        for c, col in enumerate(columns):
            y = sheet.top() + 64
            for label in col:
                label.move(sheet.left() + 30 + c * width, y)
                y += label.height() + 10

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(8, 9, 11, 175))
        p.setPen(QColor("#3b4048"))
        p.setBrush(QColor(27, 29, 33, 246))
        p.drawRoundedRect(self.sheet(), 10, 10)
        p.end()

    def event(self, event: QEvent) -> bool:  # noqa: N802 - Qt override
        # Any key closes it, even one the keyboard teleop takes (its filter sees key presses;
        # the shortcut check before them comes here first).
        if event.type() == QEvent.Type.ShortcutOverride and self.isVisible():
            key = event.key() if isinstance(event, QKeyEvent) else 0
            if key not in (Qt.Key.Key_Escape, Qt.Key.Key_Space):  # the STOP keys stay theirs
                self.hide()
                event.accept()
                return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        self.hide()
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self.hide()
        event.accept()
