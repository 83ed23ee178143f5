"""Where the keyboard goes: the STOP keys, drive keys versus text fields, and saying which.

* **STOP keys.** Esc latches the e-stop anywhere in the main window (and its detached camera
  windows and floating docks), even while typing; Space does during a run unless the operator
  is typing. But an Esc that closes something, a menu, a completer or combo-box popup or a
  dialog, only closes it: an operator who backs out of a menu must not stop the robot. Esc is
  handled here only (the STOP action shows "Esc" in its menu without binding it), so no
  shortcut can fire behind an open menu.
* **Drive keys.** When a run starts or an episode starts recording while a text field has the
  focus (the operator just typed the instruction), the focus moves to the camera grid, so W/A/S/D
  drive the robot instead of writing "wwww" into the label. Clicking into a field during the run
  types there (deliberate); clicking a camera pane takes the keys back.
* **Saying so.** :func:`key_target_text` is the status bar's "Keys: ..." line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QComboBox, QDialog, QLineEdit,
                               QPlainTextEdit, QTextEdit, QWidget)

from vla_studio.core.session import RunState

if TYPE_CHECKING:
    from vla_studio.ui.main_window import MainWindow

_TEXT_INPUTS = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)


def text_input(widget: QWidget | None) -> QWidget | None:
    """``widget`` when it takes typed text (a line edit, text box, spin box, editable combo)."""
    if widget is None:
        return None
    if isinstance(widget, _TEXT_INPUTS):
        read_only = isinstance(widget, (QLineEdit, QTextEdit, QPlainTextEdit)) and widget.isReadOnly()
        return None if read_only else widget
    if isinstance(widget, QComboBox) and widget.isEditable():
        return widget
    return None


def field_name(widget: QWidget) -> str:
    """A name for a text field the operator recognises ("Instruction")."""
    name = widget.accessibleName()
    if not name and isinstance(widget, QLineEdit):
        name = widget.placeholderText()
    return name or "a text field"


def closing_something(obj: QObject) -> bool:
    """Whether an Esc sent to ``obj`` closes a popup or a dialog (and must not stop)."""
    if QApplication.activePopupWidget() is not None:  # a menu, completer or combo list
        return True
    if QApplication.activeModalWidget() is not None:  # a message box, file dialog, export dialog
        return True
    widget = obj if isinstance(obj, QWidget) else (QApplication.focusWidget()
                                                   or QApplication.activeWindow())
    return widget is not None and isinstance(widget.window(), QDialog)


def key_target_text(focus: QWidget | None, running: bool, teleop: str, keyboard_drives: bool) -> str:
    """The status bar's line saying where keys go now."""
    field = text_input(focus)
    if field is not None:
        return f"Keys: typing into {field_name(field)} · click a camera to drive"
    if not keyboard_drives:
        return f"Keys: shortcuts · {teleop} drives" if teleop else "Keys: shortcuts"
    if running:
        return "Keys: drive the robot (keyboard)"
    return "Keys: keyboard teleop · F5 to drive"


class StopKeyFilter(QObject):
    """Application-wide filter for the STOP keys (see the module docstring).

    Installed after the keyboard bridge's filter, so it sees key presses first.
    """

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.window = window
        self._handled: tuple[int, int] | None = None  # (timestamp, key) already acted on

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        if event.isAutoRepeat():
            return False
        key = event.key()
        if key not in (Qt.Key.Key_Escape, Qt.Key.Key_Space):
            return False
        # A real key press reaches this filter twice (its window, then the focused widget).
        stamp = (event.timestamp(), int(key))
        if stamp == self._handled and event.timestamp():
            return False
        if closing_something(obj):
            return False  # the menu, popup or dialog closes (Esc) or takes the key (Space)
        if key == Qt.Key.Key_Escape:
            self._handled = stamp
            self.window.trigger_estop("Esc key")
            return False  # a focused field may still use its Esc (close its completer)
        if self.window.station.session.state == RunState.RUNNING and \
                text_input(QApplication.focusWidget()) is None:
            self._handled = stamp
            self.window.trigger_estop("Space key")
            return True
        return False
