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
EXTRA_ROWS = {"Replay": [("drag", "on the subtask lane: new segment; its edges: resize"),
                         ("click / drag", "on the timeline or a plot: seek")]}


def key_rows(actions: tuple[ActionSpec, ...] = ACTIONS) -> dict[str, list[tuple[str, str]]]:
    """Menu (without ``&``) -> (keys, action) for every action with keys, in table order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for spec in actions:
        if spec.keys:
            out.setdefault(spec.menu.replace("&", ""), []).append(
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
        order = sorted(rows, key=lambda m: (m != first_menu, list(rows).index(m)))
        self.title.setText("Keys")
        for menu in order:
            lines = [f"<tr><td colspan=2 style='color:#4c8dff; font-weight:700; "
                     f"padding-top:6px'>{html.escape(menu)}</td></tr>"]
            for keys, title in rows[menu]:
                lines.append(f"<tr><td style='color:#ffd479; padding-right:14px; "
                             f"white-space:nowrap'>{html.escape(keys)}</td>"
                             f"<td style='color:#dde1e7'>{html.escape(title)}</td></tr>")
            label = QLabel("<table cellspacing=0 cellpadding=1>" + "".join(lines) + "</table>",
                           self)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setStyleSheet("background: transparent;")
            label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            self.columns.append(label)
        self._place()
        self.show()
        self.raise_()
        self.setFocus(Qt.FocusReason.OtherFocusReason)

    def _place(self) -> None:
        host = self.parentWidget()
        self.setGeometry(host.rect())
        margin = 40
        self.title.setGeometry(margin, margin - 10, 400, 36)
        self.hint.setGeometry(margin + 90, margin - 4, self.width() - 2 * margin, 28)
        # Replay (long) in one column, the rest packed into the columns beside it.
        x, y, top = margin, margin + 36, margin + 36
        width = (self.width() - 2 * margin) // 3
        for label in self.columns:
            label.setFixedWidth(width - 16)
            label.adjustSize()
            if y > top and y + label.height() > self.height() - margin:
                x, y = x + width, top
            label.move(x, y)
            y += label.height() + 6

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(10, 11, 13, 228))
        p.setPen(QColor("#343840"))
        p.drawRect(QRect(0, 0, self.width() - 1, self.height() - 1))
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
