"""The banner above the cameras: what the robot is doing, whether an episode is being recorded,
what to do next, and the always-visible STOP.

```
 [RUNNING · teleop (keyboard)]  [● REC 0:12 · pick up the red cube]   (latch status) [STOP]
  what to do now / why a start was refused
```
A view only: the main window hands it the session state, the loop's latest step, the recorder's
status and station events; :func:`describe_run` turns them into words. A run that is RUNNING but
held (an unplugged or silent device, a stale policy) reads HOLDING in amber, never a green
RUNNING; a crashed control loop reads LOOP CRASHED with what to do, never a normal stop.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from vla_studio.core.safety import EStopLatch
from vla_studio.core.session import ControlMode, RunState, SessionState
from vla_studio.core.types import SourceKind, Step
from vla_studio.data.recording import RecorderStatus
from vla_studio.ui.recording_status import recording_text
from vla_studio.ui.widgets.elided_label import ElidedLabel
from vla_studio.ui.widgets.estop import EStopWidget, is_crash_stop

# A hold shorter than this is a hiccup (one stale tick), not something to alarm the operator with.
HOLD_SHOWN_AFTER_S = 0.3
FLASH_S = 10.0
CRASH_HINT = "Control loop crashed — robot held; restart the station"
_MS = re.compile(r"\s*\(\d+(\.\d+)? ms\)")


@dataclass(frozen=True)
class RunView:
    """The banner's words for the run.

    Attributes:
        text: the big label ("RUNNING · teleop (keyboard)").
        state: its style key: running, holding, paused, estopped or crashed.
        hint: one line saying what to do now ("" when nothing is needed).
    """

    text: str
    state: str
    hint: str = ""


def describe_run(snap: SessionState, *, crashed: bool = False, hold_reason: str = "",
                 teleop: str = "", teleop_problem: str = "") -> RunView:
    """The banner's words for a session state.

    Args:
        snap: the session's state.
        crashed: the control loop crashed (the stop is latched for that reason, or it was).
        hold_reason: why the loop has been holding for a while during a run ("" when moving).
        teleop: the active teleop device's name.
        teleop_problem: what the active teleop device says to do about its problem, if any.
    """
    if crashed:
        return RunView("LOOP CRASHED", "crashed", CRASH_HINT)
    policy = snap.mode == ControlMode.POLICY
    if snap.state == RunState.ESTOPPED:
        again = "F7 to resume the policy run" if policy else "F5 to drive again"
        return RunView("E-STOPPED", "estopped",
                       f"Reset the stop (Reset…, then Confirm), then {again}")
    device = f" ({teleop})" if teleop and snap.mode == ControlMode.TELEOP else ""
    if snap.state == RunState.PAUSED and policy:
        return RunView("PAUSED", "paused", "Press F7 (Start in the Policy dock) to run the "
                       "policy, F5 to drive yourself")
    if snap.state == RunState.PAUSED:
        teleop_mode = snap.mode == ControlMode.TELEOP
        if teleop_mode and teleop_problem:
            return RunView("PAUSED", "paused", teleop_problem)
        how = f" with the {teleop}" if teleop and teleop_mode else ""
        return RunView("PAUSED", "paused", f"Press F5 (Start teleop) to drive{how}")
    if hold_reason:
        reason = _MS.sub("", hold_reason)
        hint = teleop_problem or ("The arm holds still until its input is fresh again"
                                  if "stale" in reason else "")
        return RunView(f"HOLDING · {reason}", "holding", hint)
    return RunView(f"RUNNING · {snap.mode.value}{device}", "running")


class StationBanner(QWidget):
    """Run state, REC marker, next-step hint and the e-stop controls (never hidden)."""

    def __init__(self, latch: EStopLatch, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("header")
        self.latch = latch
        self.run_state = ElidedLabel()
        self.run_state.setObjectName("runState")
        self.hint = ElidedLabel()
        self.hint.setObjectName("bannerHint")
        self.rec = ElidedLabel()
        self.rec.setObjectName("recMarker")
        self.rec.setVisible(False)
        self.estop = EStopWidget(latch)
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.setSpacing(0)
        left.addWidget(self.run_state)
        left.addWidget(self.hint)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addLayout(left)
        layout.addWidget(self.rec)
        layout.addWidget(self.estop, 1)
        self.crashed = False
        self._snap: SessionState | None = None
        self._hold_since: float | None = None
        self._hold_reason = ""
        self._teleop, self._teleop_problem = "", ""
        self._flash: tuple[str, float] | None = None
        self._shown: tuple[object, ...] = ()

    # ----- inputs ----------------------------------------------------------------------------
    def show_session(self, snap: SessionState) -> None:
        self._snap = snap
        if snap.state != RunState.RUNNING:
            self._hold_since = None
        if is_crash_stop(self.latch.event if snap.state == RunState.ESTOPPED else None):
            self.crashed = True
        self.update_view()

    def show_step(self, step: Step) -> None:
        """Follow holds: only a hold that lasts reads HOLDING."""
        if step.source == SourceKind.HOLD and step.hold_reason != "e-stop":
            if self._hold_since is None:
                self._hold_since = step.t
            self._hold_reason = step.hold_reason
        else:
            self._hold_since = None

    def show_teleop(self, name: str, problem: str) -> None:
        self._teleop, self._teleop_problem = name, problem

    def show_crash(self) -> None:
        """The control loop crashed (a ``loop.crashed`` event): say so until the station goes."""
        self.crashed = True
        self.update_view()

    def flash(self, text: str) -> None:
        """Show ``text`` (a refused start, what to do) in place of the hint for a while."""
        self._flash = (text, time.monotonic() + FLASH_S)
        self.update_view()

    def show_recording(self, status: RecorderStatus | None, starting: bool = False) -> None:
        text, state = recording_text(status, starting)
        if status is not None and status.episode is not None and text:
            instruction = status.episode.labels.instruction
            self.rec.setToolTip(f"Recording: {instruction}")
            text = f"{text} · {_elide(instruction, 32)}"
        if (text, state) != (self.rec.text(), self.rec.property("state")):
            self.rec.setText(text)
            _restyle(self.rec, state)
        self.rec.setVisible(bool(text))

    # ----- output ----------------------------------------------------------------------------
    def view(self) -> RunView:
        """What the banner shows now."""
        snap = self._snap
        if snap is None:
            return RunView("", "paused")
        holding = ""
        if snap.state == RunState.RUNNING and self._hold_since is not None and \
                time.monotonic() - self._hold_since >= HOLD_SHOWN_AFTER_S:
            holding = self._hold_reason or "held"
        return describe_run(snap, crashed=self.crashed, hold_reason=holding,
                            teleop=self._teleop, teleop_problem=self._teleop_problem)

    def update_view(self) -> None:
        """Re-evaluate (every display frame: holds become visible after a while)."""
        view = self.view()
        hint, hint_state = view.hint, "normal"
        if self._flash is not None:
            if time.monotonic() < self._flash[1] and view.state != "running":
                hint, hint_state = self._flash[0], "refused"
            else:
                self._flash = None
        shown = (view, hint, hint_state)
        if shown == self._shown:
            return
        self._shown = shown
        self.run_state.setText(view.text)
        # The run state is read first: it keeps its width, the REC marker's instruction gives.
        self.run_state.setMinimumWidth(min(self.run_state.sizeHint().width(), 420))
        self.run_state.setToolTip(self._snap.reason if self._snap else "")
        _restyle(self.run_state, view.state)
        self.hint.setText(hint)
        self.hint.setVisible(bool(hint))
        _restyle(self.hint, hint_state)
        self.estop.crashed = self.crashed
        self.estop.refresh()


def _restyle(widget: QWidget, state: str) -> None:
    """Set the ``state`` property the theme keys on, and re-polish."""
    widget.setProperty("state", state)
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def _elide(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
