"""The one place core state crosses into Qt.

Core threads never call Qt. Instead the bridge, on the GUI thread, pulls at display rate:

* the loop's latest Step (a LatestSlot: only the newest matters) → ``step`` signal,
* loop statistics and safety counters → ``stats`` signal (a few times a second),
* session transitions and application events, which core threads append to thread-safe deques
  from their listeners → ``session_changed`` / ``app_event`` signals. Each e-stop latch and reset
  becomes an event too (``safety.estop`` / ``safety.reset``), so the Events dock lists them
  beside everything else.

It also beats the GUI heartbeat: if this thread freezes during a policy run, the control loop
notices the silence and pauses (safety invariant 3).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from vla_studio.core.clock import LoopStatsSnapshot
from vla_studio.core.events import AppEvent
from vla_studio.core.safety import Heartbeat, StopEvent
from vla_studio.core.session import SessionState
from vla_studio.core.types import Step
from vla_studio.station import Station

DISPLAY_HZ = 30.0


def latch_listener(events: "collections.deque[AppEvent]",
                   listening: threading.Event) -> Callable[[bool, StopEvent | None], None]:
    """A latch listener (called on the triggering thread) that turns each latch and reset into
    an AppEvent on ``events`` while ``listening`` is set; it only appends to the deque."""

    def on_latch(tripped: bool, event: StopEvent | None) -> None:
        if not listening.is_set():
            return
        if tripped and event is not None:
            origin = f" by {event.origin}" if event.origin else ""
            events.append(AppEvent("safety.estop", f"E-stop latched{origin}: {event.reason}",
                                   logging.ERROR, {"origin": event.origin, "reason": event.reason},
                                   event.t))
        elif not tripped:
            events.append(AppEvent("safety.reset", "E-stop reset: the robot stays paused until a "
                                   "run is started", logging.INFO))

    return on_latch
STATS_HZ = 4.0


class CoreBridge(QObject):
    """Rate-limited Qt signals for a Station's state.

    Signals:
        step(object): the newest Step, at most once per display frame, only when it changed.
        stats(object, object): (LoopStatsSnapshot, safety counts dict) at STATS_HZ.
        session_changed(object): SessionState after each transition (coalesced per frame).
        app_event(object): each AppEvent, in order.
        frame_tick(): once per display frame (views that poll devices use it).
    """

    step = Signal(object)
    stats = Signal(object, object)
    session_changed = Signal(object)
    app_event = Signal(object)
    frame_tick = Signal()

    def __init__(self, station: Station, parent: QObject | None = None,
                 display_hz: float = DISPLAY_HZ) -> None:
        super().__init__(parent)
        self.station = station
        self.heartbeat = Heartbeat()
        station.loop.heartbeat = self.heartbeat
        self._events: collections.deque[AppEvent] = collections.deque(maxlen=1000)
        self._session: collections.deque[SessionState] = collections.deque(maxlen=100)
        #: Events published from now on reach ``app_event``; older ones only the bus's history.
        self.subscribed_at = time.monotonic()
        self._unsubscribe = station.events.subscribe(self._events.append)
        station.session.add_listener(self._session.append)
        # The latch keeps its listeners for good: this one goes quiet on stop(), and holds only
        # the deque (a listener holding the bridge would keep this QObject alive until Python's
        # cyclic GC deletes it, from whichever thread happens to run the GC).
        self._listening = threading.Event()
        self._listening.set()
        station.latch.add_listener(latch_listener(self._events, self._listening))
        self._last_seq = -1
        self._last_stats = 0.0
        self.last_session = station.session.snapshot
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / display_hz))
        self._timer.timeout.connect(self.pump)
        self._timer.start()

    def stop(self) -> None:
        """Stop pulling (the window is closing)."""
        self._timer.stop()
        self._unsubscribe()
        self._listening.clear()
        if self.station.loop.heartbeat is self.heartbeat:
            self.station.loop.heartbeat = None

    def pump(self) -> None:
        """One display frame: beat, then forward whatever changed since the last frame."""
        self.heartbeat.beat()
        while self._session:
            self.last_session = self._session.popleft()
            if not self._session:  # only the newest transition of this frame matters
                self.session_changed.emit(self.last_session)
        while self._events:
            self.app_event.emit(self._events.popleft())
        step, seq = self.station.loop.snapshot.get_with_seq()
        if step is not None and seq != self._last_seq:
            self._last_seq = seq
            self.step.emit(step)
        now = time.monotonic()
        if now - self._last_stats >= 1.0 / STATS_HZ:
            self._last_stats = now
            stats: LoopStatsSnapshot = self.station.loop.stats.snapshot()
            self.stats.emit(stats, self.station.loop.counters.snapshot())
        self.frame_tick.emit()

    @property
    def latest_step(self) -> Step | None:
        return self.station.loop.snapshot.get()
