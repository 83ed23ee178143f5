"""Session state machine: who may move the robot right now.

```
            start(mode)                 e-stop (any thread)
  PAUSED  ------------->  RUNNING  ---------------------->  ESTOPPED
    ^  <-----------------            pause(reason)             |
    |                                                           |
    +------------- two-step reset of the latch -----------------+
```
ESTOPPED is the latch's state, not a flag the session can clear: the session only leaves it when
the latch is reset, and then always lands in PAUSED.

A pause may be a *help request* (:meth:`Session.request_help`, the robot-gated half of DAgger: a
policy run whose confidence stayed low asks for the operator): the state says so (``help``)
until the run starts again, so the window can ring and show it and a take-over may resume it.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass
from typing import Callable

from vla_studio.core.safety import EStopLatch, StopEvent

log = logging.getLogger(__name__)


class RunState(str, enum.Enum):
    PAUSED = "paused"
    RUNNING = "running"
    ESTOPPED = "estopped"


class ControlMode(str, enum.Enum):
    """Which source drives the robot while RUNNING."""

    TELEOP = "teleop"
    POLICY = "policy"


@dataclass(frozen=True)
class SessionState:
    state: RunState
    mode: ControlMode
    reason: str  # why we are in this state (last pause / stop reason)
    help: bool = False  # PAUSED because the robot asked for help (see Session.request_help)


class SessionError(RuntimeError):
    """A transition that is not allowed now (e.g. starting while the e-stop is latched)."""


class Session:
    """Thread-safe run state shared by the loop, the GUI, the CLI and device threads.

    Args:
        latch: the station's e-stop latch; its triggers and resets drive this machine.
    """

    def __init__(self, latch: EStopLatch) -> None:
        self.latch = latch
        self._lock = threading.Lock()
        self._state = RunState.PAUSED
        self._mode = ControlMode.TELEOP
        self._reason = "started paused"
        self._help = False
        self._listeners: list[Callable[[SessionState], None]] = []
        latch.add_listener(self._on_latch)

    @property
    def snapshot(self) -> SessionState:
        with self._lock:
            state = RunState.ESTOPPED if self.latch.is_tripped else self._state
            return SessionState(state, self._mode, self._reason,
                                self._help and state == RunState.PAUSED)

    @property
    def state(self) -> RunState:
        return RunState.ESTOPPED if self.latch.is_tripped else self._state

    @property
    def mode(self) -> ControlMode:
        return self._mode

    def add_listener(self, callback: Callable[[SessionState], None]) -> None:
        """Call ``callback(state)`` after every transition, from the thread that caused it."""
        with self._lock:
            self._listeners.append(callback)

    def start(self, mode: ControlMode = ControlMode.TELEOP) -> None:
        """PAUSED -> RUNNING in ``mode``. Raises SessionError while the e-stop is latched."""
        with self._lock:
            if self.latch.is_tripped:
                ev = self.latch.event
                raise SessionError(
                    f"the e-stop is latched ({ev.reason if ev else 'stopped'}); reset it first")
            self._state, self._mode, self._reason = RunState.RUNNING, ControlMode(mode), "started"
            self._help = False
        log.info("session running (%s)", mode.value if isinstance(mode, ControlMode) else mode)
        self._notify()

    def set_mode(self, mode: ControlMode) -> None:
        """Change the source; switching while RUNNING pauses first (a handover is explicit)."""
        with self._lock:
            changed = self._mode != mode
            self._mode = ControlMode(mode)
            if changed and self._state == RunState.RUNNING:
                self._state, self._reason = RunState.PAUSED, f"mode changed to {mode.value}"
            if changed:
                self._help = False
        if changed:
            self._notify()

    def pause(self, reason: str) -> None:
        """RUNNING -> PAUSED (a no-op when already paused or stopped)."""
        self._pause(reason, False)

    def request_help(self, reason: str) -> None:
        """RUNNING -> PAUSED because the robot needs the operator (low confidence): the state
        reads ``help`` until the run starts again (a no-op when not running)."""
        self._pause(reason, True)

    def _pause(self, reason: str, help: bool) -> None:
        with self._lock:
            if self._state != RunState.RUNNING:
                return
            self._state, self._reason, self._help = RunState.PAUSED, reason, help
        log.info("session paused%s: %s", " (help requested)" if help else "", reason)
        self._notify()

    def _on_latch(self, tripped: bool, event: StopEvent | None) -> None:
        with self._lock:
            self._state = RunState.PAUSED  # after a reset we land here, never in RUNNING
            self._help = False
            self._reason = f"e-stop: {event.reason}" if tripped and event else "e-stop reset"
        self._notify()

    def _notify(self) -> None:
        snap = self.snapshot
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(snap)
            except Exception:
                log.exception("session listener %r failed", cb)
