"""Replay transport: the play clock and the bar of buttons under the panes.

:class:`PlaybackClock` turns wall time into episode time at the chosen speed and direction (a
display-rate QTimer; episode time is anchored, so a slow frame never slows the replay down,
it only skips ahead). J/K/L follow video editors: L plays forward, again for 2x and 4x; J the
same backwards; K stops.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap, QPolygonF
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QWidget

from vla_studio.ui.widgets.elided_label import ElidedLabel

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
DISPLAY_HZ = 60.0


class PlaybackClock(QObject):
    """Episode time while playing.

    Signals:
        due(float): the episode time (seconds from the first step) to show now.
        state_changed(): playing, direction or speed changed.
    """

    due = Signal(float)
    state_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.speed = 1.0
        self.direction = 0  # +1 forward, -1 backward, 0 stopped
        self.duration = 0.0
        self._anchor_t = 0.0
        self._anchor_wall = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(round(1000 / DISPLAY_HZ))
        self._timer.timeout.connect(self._tick)

    @property
    def playing(self) -> bool:
        return self.direction != 0

    def play(self, t: float, direction: int = 1, speed: float | None = None) -> None:
        """Play from episode time ``t``."""
        if speed is not None:
            self.speed = speed
        if direction > 0 and t >= self.duration:
            t = 0.0  # played to the end: from the start again
        if direction < 0 and t <= 0.0:
            t = self.duration
        self.direction = 1 if direction > 0 else -1
        self._anchor(t)
        self._timer.start()
        self.state_changed.emit()

    def stop(self) -> None:
        if self.direction:
            self.direction = 0
            self._timer.stop()
            self.state_changed.emit()

    def set_speed(self, speed: float, t: float) -> None:
        self.speed = speed
        if self.playing:
            self._anchor(t)
        self.state_changed.emit()

    def faster(self, direction: int, t: float) -> None:
        """L (``direction`` +1) or J (-1): start at 1x, or double the speed up to 4x."""
        if self.direction == direction:
            faster = [s for s in SPEEDS if s > self.speed]
            self.play(t, direction, faster[0] if faster else self.speed)
        else:
            self.play(t, direction, max(1.0, self.speed) if self.direction else 1.0)

    def now(self) -> float:
        return self._anchor_t + self.direction * self.speed * (time.monotonic() - self._anchor_wall)

    def _anchor(self, t: float) -> None:
        self._anchor_t, self._anchor_wall = t, time.monotonic()

    def _tick(self) -> None:
        t = self.now()
        if t >= self.duration or t <= 0.0:
            t = min(max(t, 0.0), self.duration)
            self.due.emit(t)
            self.stop()
            return
        self.due.emit(t)


def media_icon(kind: str, colour: str = "#dde1e7", size: int = 18) -> QIcon:
    """A transport icon drawn here (the style's media icons are dark on the dark theme):
    ``play``, ``pause``, ``start``, ``end``, ``back`` (play backward), ``forward``."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(colour))
    m, s = 3, size - 6

    def right(x: float, w: float) -> None:
        p.drawPolygon(QPolygonF([QPointF(x, m), QPointF(x + w, m + s / 2), QPointF(x, m + s)]))

    def left(x: float, w: float) -> None:
        p.drawPolygon(QPolygonF([QPointF(x + w, m), QPointF(x, m + s / 2),
                                 QPointF(x + w, m + s)]))

    if kind == "play":
        right(m + 1, s)
    elif kind == "pause":
        p.drawRect(QRectF(m + 1, m, s / 3, s))
        p.drawRect(QRectF(m + s - s / 3 - 1, m, s / 3, s))
    elif kind == "forward":
        right(m, s / 2)
        right(m + s / 2, s / 2)
    elif kind == "back":
        left(m, s / 2)
        left(m + s / 2, s / 2)
    elif kind == "end":
        right(m, s - 3)
        p.drawRect(QRectF(m + s - 2, m, 2, s))
    elif kind == "start":
        p.drawRect(QRectF(m, m, 2, s))
        left(m + 3, s - 3)
    p.end()
    return QIcon(pixmap)


def _button(text: str, tip: str, icon: str = "") -> QToolButton:
    b = QToolButton()
    if icon:
        b.setIcon(media_icon(icon))
    else:
        b.setText(text)
    b.setToolTip(tip)
    b.setAutoRaise(True)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the replay view
    return b


BUTTONS_BEFORE = (("", "go_start", "Start (Home)", "start"),
                  ("◆◀", "previous_event", "Previous event (Shift+E)", ""),
                  ("", "play_backward", "Play backward, faster each press (J)", "back"),
                  ("◀|", "step_back", "Previous step (←; Shift+← one second)", ""))
BUTTONS_AFTER = (("|▶", "step_forward", "Next step (→; Shift+→ one second)", ""),
                 ("", "play_forward", "Play forward, faster each press (L)", "forward"),
                 ("▶◆", "next_event", "Next event (E)", ""),
                 ("", "go_end", "End (End)", "end"))


class TransportBar(QWidget):
    """Start, previous event, backward, step back, play, step, forward, next event, end; the
    speed; the position. Each button's tooltip names its key.

    Signals:
        clicked(str): the name of the replay view method to call (``toggle_play``...).
        speed_chosen(float).
    """

    clicked = Signal(str)
    speed_chosen = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("replayTransport")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(2)
        for text, method, tip, icon in BUTTONS_BEFORE:
            b = _button(text, tip, icon)
            b.clicked.connect(lambda _=False, m=method: self.clicked.emit(m))
            layout.addWidget(b)
        self.play_button = _button("", "Play / pause (Space, K pauses)", "play")
        self.play_button.setObjectName("replayPlay")
        self.play_button.clicked.connect(lambda: self.clicked.emit("toggle_play"))
        layout.addWidget(self.play_button)
        for text, method, tip, icon in BUTTONS_AFTER:
            b = _button(text, tip, icon)
            b.clicked.connect(lambda _=False, m=method: self.clicked.emit(m))
            layout.addWidget(b)
        self.speed = QComboBox()
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.setToolTip("Playback speed (J and L change it too)")
        self.speed.activated.connect(lambda i: self.speed_chosen.emit(SPEEDS[i]))
        layout.addSpacing(8)
        layout.addWidget(self.speed)
        layout.addSpacing(12)
        self.position = QLabel("—")
        self.position.setObjectName("replayPosition")
        layout.addWidget(self.position)
        layout.addStretch(0)
        self.hint = ElidedLabel("? shows every key")
        self.hint.setObjectName("mutedText")
        self.hint.setMinimumWidth(0)
        layout.addWidget(self.hint, 1)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def show_state(self, playing: bool, direction: int, speed: float) -> None:
        self.play_button.setIcon(media_icon("pause" if playing else "play"))
        if speed in SPEEDS:
            self.speed.setCurrentIndex(SPEEDS.index(speed))
        self.hint.setText(("playing backward" if direction < 0 else "playing") +
                          f" at {speed:g}×" if playing else "? shows every key")

    def show_position(self, t: float, duration: float, step: int, steps: int) -> None:
        self.position.setText(f"{t:6.2f} / {duration:.2f} s   step {step + 1} / {steps}")
