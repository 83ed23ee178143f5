"""Feeds key presses to the station's keyboard teleop devices, whichever widget has focus.

An application-wide event filter sees every key event before widgets do. It turns Qt keys into
the device's key names (``"w"``, ``"shift"``, ``"up"``) and calls ``press`` / ``release``;
auto-repeats are ignored (a held key is one press). It stays out of the way while the operator
types in a text field (instruction box, search field, spin box): presses there go to the field.
When the keyboard device is the active teleop source, its bound keys are consumed so a focused
list or combo box does not also react to them.

Qt does not deliver key releases to an application that lost focus, so every key is released when
the application is deactivated; and the display-frame heartbeat keeps the device's stamp fresh, so
a frozen GUI makes the keyboard stale and the arm holds. Esc and Space stay the window's STOP keys
(the main window's filter is installed later and therefore sees them first).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QComboBox, QLineEdit,
                               QPlainTextEdit, QTextEdit, QWidget)

from vla_studio.devices.teleop.keyboard import KeyboardTeleop
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge

_K = Qt.Key
QT_KEY_NAMES: dict[int, str] = {
    **{int(getattr(_K, f"Key_{c}")): c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    **{int(getattr(_K, f"Key_{d}")): d for d in "0123456789"},
    int(_K.Key_Shift): "shift", int(_K.Key_Control): "ctrl", int(_K.Key_Alt): "alt",
    int(_K.Key_Tab): "tab", int(_K.Key_Return): "enter", int(_K.Key_Enter): "enter",
    int(_K.Key_Backspace): "backspace", int(_K.Key_Insert): "insert",
    int(_K.Key_Delete): "delete", int(_K.Key_Home): "home", int(_K.Key_End): "end",
    int(_K.Key_PageUp): "pageup", int(_K.Key_PageDown): "pagedown", int(_K.Key_Up): "up",
    int(_K.Key_Down): "down", int(_K.Key_Left): "left", int(_K.Key_Right): "right",
    int(_K.Key_Comma): "comma", int(_K.Key_Period): "period", int(_K.Key_Slash): "slash",
    int(_K.Key_Semicolon): "semicolon", int(_K.Key_Apostrophe): "apostrophe",
    int(_K.Key_BracketLeft): "bracketleft", int(_K.Key_BracketRight): "bracketright",
    int(_K.Key_Minus): "minus", int(_K.Key_Equal): "equal", int(_K.Key_Backslash): "backslash",
    int(_K.Key_QuoteLeft): "grave",
}


def key_name(event: QKeyEvent) -> str | None:
    """The keyboard device's name for a Qt key event, or None for keys it does not know."""
    return QT_KEY_NAMES.get(int(event.key()))


def typing_in_text_field() -> bool:
    """Whether the focused widget takes text (keys must reach it, not the robot)."""
    w: QWidget | None = QApplication.focusWidget()
    if w is None:
        return False
    if isinstance(w, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)):
        return not (isinstance(w, QLineEdit) and w.isReadOnly())
    return isinstance(w, QComboBox) and w.isEditable()


class KeyboardBridge(QObject):
    """The Qt side of the keyboard teleop devices of one station.

    The application-wide filter is installed while the window the bridge serves is open: it is
    removed when that window closes (a closed window's widgets may still be torn down later, and
    an application filter sees every event of every object until then) and put back if the
    window is shown again.

    Args:
        station: whose ``keyboard`` devices are fed.
        bridge: its display-rate ``frame_tick`` beats the devices' heartbeat.
        parent: the widget that owns the bridge (the Teleop dock); the filter is removed when it
            is destroyed.
    """

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget) -> None:
        super().__init__(parent)
        self.station = station
        self.keyboards = [d for d in station.teleops.values() if isinstance(d, KeyboardTeleop)]
        self._owner = parent
        self._window: QWidget | None = None
        self._watcher = _WindowWatcher(self)
        self.installed = False
        if self.keyboards:
            bridge.frame_tick.connect(self.heartbeat)
            QGuiApplication.instance().applicationStateChanged.connect(self._on_app_state)
            self.attach()

    def attach(self) -> None:
        """Start filtering key events application-wide (idempotent)."""
        app = QApplication.instance()
        if self.keyboards and not self.installed and app is not None:
            app.installEventFilter(self)
            self.installed = True

    def detach(self) -> None:
        """Stop filtering and release every key."""
        app = QApplication.instance()
        if self.installed and app is not None:
            app.removeEventFilter(self)
        self.installed = False
        self.release_all()

    def watch_window(self) -> None:
        """Follow the owner's top-level window (call once it is placed in one, e.g. on show)."""
        window = self._owner.window()
        if window is self._window or window is self._owner:
            return
        if self._window is not None:
            self._window.removeEventFilter(self._watcher)
        self._window = window
        window.installEventFilter(self._watcher)

    def heartbeat(self) -> None:
        """The GUI thread is alive: refresh the devices' stamps (called every display frame)."""
        for kb in self.keyboards:
            kb.heartbeat()

    def release_all(self) -> None:
        for kb in self.keyboards:
            kb.release_all()

    def _on_app_state(self, state: Qt.ApplicationState) -> None:
        if state != Qt.ApplicationState.ApplicationActive:
            self.release_all()

    def _driving_keyboard(self) -> KeyboardTeleop | None:
        active = self.station.teleops.get(self.station.active_teleop or "")
        return active if isinstance(active, KeyboardTeleop) else None

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) or \
                not isinstance(event, QKeyEvent):
            return False
        name = key_name(event)
        if name is None:
            return False
        driving = self._driving_keyboard()
        consume = driving is not None and driving.binds(name)
        if kind == QEvent.Type.KeyRelease:
            if event.isAutoRepeat():
                return consume and not typing_in_text_field()
            for kb in self.keyboards:  # always: a key may go up after focus moved to a field
                kb.release(name)
            return consume and not typing_in_text_field()
        if typing_in_text_field():
            return False
        if not event.isAutoRepeat():
            for kb in self.keyboards:
                kb.press(name)
        return consume


class _WindowWatcher(QObject):
    """Detaches the keyboard bridge while its window is closed (watches that window only)."""

    def __init__(self, bridge: KeyboardBridge) -> None:
        super().__init__(bridge)
        self._bridge = bridge

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind == QEvent.Type.Close:
            self._bridge.detach()
        elif kind == QEvent.Type.Show:
            self._bridge.attach()
        return False
