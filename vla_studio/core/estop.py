"""The latched software e-stop (DESIGN.md safety invariants 1, 2 and 5).

:class:`EStopLatch` can be triggered from any thread; the control loop holds position on its next
tick (it is woken at once) and flushes queued policy actions. Reset takes two deliberate steps and
returns the session to PAUSED, never to motion. A new stop while a reset is armed disarms it.

```
 trigger() (GUI, gamepad reader, watchdog, loop) --> latched --signal--> "estop-relay" thread
                                                        |                 robot.emergency_hold()
                                                        +--wake--> control loop: hold, flush
```
The relay is the latch's own thread: it delivers the stop to the driver's ``emergency_hold()``
whatever the control-loop thread is doing, even when it is stuck inside a driver call that never
returns. The triggering thread never calls a driver itself (a GUI slot must not block on one).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StopEvent:
    """One e-stop trigger: when (host monotonic), why, and from where."""

    t: float
    reason: str
    origin: str


class EStopLatch:
    """A latched software e-stop that any thread can trigger.

    ``trigger`` only sets flags and events (no I/O, no Qt, no locks held across callbacks), so it
    is safe from a GUI slot, a device reader thread, a watchdog or a signal handler's thread.

    Reset is deliberate: :meth:`request_reset` arms it and :meth:`confirm_reset` within
    ``confirm_window_s`` clears it. Clearing never restarts motion: listeners (the session) move
    to PAUSED.

    Args:
        confirm_window_s: seconds between the two reset steps.
    """

    def __init__(self, confirm_window_s: float = 5.0) -> None:
        self.confirm_window_s = confirm_window_s
        self._tripped = threading.Event()
        self._lock = threading.Lock()
        self._event: StopEvent | None = None
        self._reset_armed_at: float | None = None
        self._wake: list[threading.Event] = []
        self._listeners: list[Callable[[bool, StopEvent | None], None]] = []
        self.trigger_count = 0
        self.history: list[StopEvent] = []
        self._emergency: list[Callable[[], None]] = []
        self._relay_signal = threading.Event()
        self._relay_stop = False
        self._relay: threading.Thread | None = None
        self.relayed = 0  # stops the relay delivered to every emergency-hold callback

    @property
    def is_tripped(self) -> bool:
        return self._tripped.is_set()

    @property
    def event(self) -> StopEvent | None:
        """The trigger that latched the stop (the first since the last reset)."""
        return self._event

    def add_wake_event(self, event: threading.Event) -> None:
        """Set ``event`` on every trigger (the control loop waits on it between ticks)."""
        with self._lock:
            self._wake.append(event)

    # ----- the relay ------------------------------------------------------------------------
    def add_emergency_hold(self, hold: Callable[[], None]) -> None:
        """Call ``hold()`` from the relay thread whenever the stop latches (a driver's
        ``emergency_hold``). It must be thread-safe and quick; exceptions are logged."""
        with self._lock:
            if hold not in self._emergency:
                self._emergency.append(hold)

    def remove_emergency_hold(self, hold: Callable[[], None]) -> None:
        with self._lock:
            if hold in self._emergency:
                self._emergency.remove(hold)

    @property
    def relay_running(self) -> bool:
        return self._relay is not None and self._relay.is_alive()

    def start(self) -> None:
        """Start the relay thread (``estop-relay``). Idempotent."""
        with self._lock:
            if self._relay is not None and self._relay.is_alive():
                return
            self._relay_stop = False
            self._relay_signal.clear()  # left set by stop(): not a stop to deliver
            self._relay = threading.Thread(target=self._relay_forever, name="estop-relay",
                                           daemon=True)
            self._relay.start()
        if self._tripped.is_set():  # latched before the relay ran: deliver it now
            self._relay_signal.set()

    def stop(self) -> None:
        """Stop and join the relay thread. Idempotent."""
        with self._lock:
            relay, self._relay = self._relay, None
            self._relay_stop = True
        self._relay_signal.set()
        if relay is not None:
            relay.join(timeout=5.0)
            if relay.is_alive():
                log.error("the e-stop relay did not stop within 5 s: an emergency_hold() call "
                          "is blocked in the robot driver")

    def _relay_forever(self) -> None:
        while True:
            self._relay_signal.wait()
            self._relay_signal.clear()
            if self._relay_stop:
                return
            with self._lock:
                holds = list(self._emergency)
            for hold in holds:
                try:
                    hold()
                except Exception:
                    log.exception("emergency hold %r failed; the control loop still holds", hold)
            self.relayed += 1

    # ----- listeners -------------------------------------------------------------------------
    def add_listener(self, callback: Callable[[bool, StopEvent | None], None]) -> None:
        """Call ``callback(tripped, event)`` after each trigger and reset (from that thread)."""
        with self._lock:
            self._listeners.append(callback)

    def trigger(self, reason: str, origin: str = "") -> None:
        """Latch the stop. Idempotent; every call is counted and logged."""
        now = time.monotonic()
        stop = StopEvent(now, reason, origin)
        with self._lock:
            self.trigger_count += 1
            self.history.append(stop)
            del self.history[:-100]
            first = not self._tripped.is_set()
            # A new stop always disarms a requested reset: the operator asked to reset the stop
            # they had seen, not one that happened after (request -> trigger -> confirm must fail).
            disarmed = self._reset_armed_at is not None
            self._reset_armed_at = None
            if first:
                self._event = stop
                self._tripped.set()
            wake, listeners = list(self._wake), list(self._listeners)
        if first:
            self._relay_signal.set()  # first: the path that needs no control loop
        for ev in wake:
            ev.set()
        if first:
            log.warning("E-STOP latched by %s: %s", origin or "unknown", reason)
            for cb in listeners:
                _call_safely(cb, True, stop)
        elif disarmed:
            log.warning("e-stop reset cancelled: a new stop from %s (%s); request the reset again",
                        origin or "unknown", reason)

    def request_reset(self) -> None:
        """First reset step: arm the reset. Raises RuntimeError when the stop is not latched."""
        with self._lock:
            if not self._tripped.is_set():
                raise RuntimeError("the e-stop is not latched; nothing to reset")
            self._reset_armed_at = time.monotonic()
        log.info("e-stop reset requested; confirm within %.0f s", self.confirm_window_s)

    @property
    def reset_time_left(self) -> float:
        """Seconds left to confirm a requested reset (0 when none is armed)."""
        armed = self._reset_armed_at
        return 0.0 if armed is None else max(0.0, self.confirm_window_s - (time.monotonic() - armed))

    @property
    def reset_armed(self) -> bool:
        return self._tripped.is_set() and self.reset_time_left > 0.0

    def confirm_reset(self) -> bool:
        """Second reset step. Returns True when the stop was cleared."""
        with self._lock:
            armed = self._reset_armed_at
            if not self._tripped.is_set() or armed is None:
                return False
            if time.monotonic() - armed > self.confirm_window_s:
                self._reset_armed_at = None
                return False
            self._tripped.clear()
            self._event = None
            self._reset_armed_at = None
            listeners = list(self._listeners)
        log.warning("e-stop reset; the session is PAUSED")
        for cb in listeners:
            _call_safely(cb, False, None)
        return True


def _call_safely(cb: Callable, *args: object) -> None:
    try:
        cb(*args)
    except Exception:
        log.exception("e-stop listener %r failed", cb)


