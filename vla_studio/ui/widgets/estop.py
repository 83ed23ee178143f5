"""The always-visible software e-stop: a big STOP button and the two-step reset.

Pressing STOP calls ``EStopLatch.trigger`` directly on the GUI thread (it only sets flags); the
control loop, not this widget, stops the robot. The reset needs two deliberate clicks within the
latch's confirm window, and lands the session in PAUSED. After a control-loop crash there is
nothing to reset into (no loop drives the robot): the widget says to restart the station instead.
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from vla_studio.core.safety import EStopLatch, StopEvent

CRASH_REASON = "control loop crashed"


def is_crash_stop(event: StopEvent | None) -> bool:
    """Whether the latch was set because the control loop crashed."""
    return event is not None and event.reason.lower().startswith(CRASH_REASON)


class EStopWidget(QWidget):
    """STOP button, latch status and reset controls.

    Signals:
        stop_pressed(): emitted after the latch was triggered from this widget.
    """

    stop_pressed = Signal()

    def __init__(self, latch: EStopLatch, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.latch = latch
        self.stop_button = QPushButton("STOP")
        self.stop_button.setObjectName("estopButton")
        self.stop_button.setToolTip("Latch the software e-stop (Esc, or Space while a run is "
                                    "active). A hardware e-stop is still required on real robots.")
        self.stop_button.setMinimumSize(150, 56)
        self.stop_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.stop_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space must not "click" it twice
        self.stop_button.pressed.connect(self._on_stop)  # on press, not release: no delay
        self.status = QLabel()
        self.status.setObjectName("estopStatus")
        self.status.setWordWrap(True)
        self.reset_button = QPushButton("Reset...")
        self.reset_button.setObjectName("estopReset")
        self.reset_button.clicked.connect(self._on_reset)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status, 1)
        layout.addWidget(self.reset_button)
        layout.addWidget(self.stop_button)
        self._shown_tripped: bool | None = None
        #: Set by the window once the control loop crashed (the latch may even be reset later).
        self.crashed = False
        self.refresh()

    def _on_stop(self) -> None:
        self.latch.trigger("STOP button", "gui")
        self.stop_pressed.emit()
        self.refresh()

    def _on_reset(self) -> None:
        if not self.latch.is_tripped:
            return
        if self.latch.reset_armed:
            self.latch.confirm_reset()
        else:
            self.latch.request_reset()
        self.refresh()

    def refresh(self) -> None:
        """Update from the latch (called every display frame)."""
        tripped = self.latch.is_tripped
        ev = self.latch.event
        crashed = self.crashed or is_crash_stop(ev)
        self.reset_button.setVisible(tripped and not crashed)
        if crashed:
            why = f" ({html.escape(ev.reason)})" if ev and ev.reason.lower() != CRASH_REASON else ""
            self.status.setText(f"<b>Control loop crashed — robot held; restart the station</b>"
                                f"{why}")
        elif tripped:
            ago = f"{time.monotonic() - ev.t:.0f} s ago" if ev else ""
            origin = f" by {ev.origin}" if ev and ev.origin else ""
            reason = html.escape(ev.reason) if ev else ""
            self.status.setText(f"<b>E-STOP LATCHED</b>{html.escape(origin)}: {reason} ({ago})")
            if self.latch.reset_armed:
                self.reset_button.setText(f"Confirm reset ({self.latch.reset_time_left:.0f} s)")
            else:
                self.reset_button.setText("Reset...")
        else:
            self.status.setText("")
        if tripped != self._shown_tripped:  # re-polish only on change: the style keys on it
            self._shown_tripped = tripped
            for w in (self, self.stop_button):
                w.setProperty("tripped", tripped)
                w.style().unpolish(w)
                w.style().polish(w)
