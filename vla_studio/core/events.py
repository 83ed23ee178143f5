"""Non-blocking hand-offs out of real-time threads.

* :class:`StepQueue`: a bounded FIFO of steps for a consumer that needs every step (the recorder).
  ``offer`` never blocks: a full queue counts a drop and raises an alarm instead of stalling.
* :class:`LatestSlot`: holds only the newest value (GUI snapshots, latest frame, latest chunk).
* :class:`EventBus`: typed application events (alarms, messages) fanned out to subscribers; the
  Qt bridge subscribes with a callback that only appends to a deque.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class StepQueue(Generic[T]):
    """Bounded single-consumer queue that never blocks the producer.

    Args:
        name: who consumes it, for messages.
        maxsize: capacity; size it for several seconds of steps.
    """

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self.maxsize = maxsize
        self._q: queue.Queue[T] = queue.Queue(maxsize)
        self.dropped = 0
        self.high_water = 0
        self.closed = False

    def offer(self, item: T) -> bool:
        """Enqueue without blocking; False (and a counted drop) when full or closed."""
        if self.closed:
            return False
        try:
            self._q.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        size = self._q.qsize()
        if size > self.high_water:
            self.high_water = size
        return True

    def get(self, timeout: float | None = None) -> T | None:
        """Next item, or None after ``timeout`` seconds."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def qsize(self) -> int:
        return self._q.qsize()

    def close(self) -> None:
        self.closed = True


class LatestSlot(Generic[T]):
    """Holds the newest value with its sequence number; writers and readers never wait long.

    ``wait_newer`` lets a consumer sleep until a value newer than the one it has arrives.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value: T | None = None
        self._seq = 0

    def put(self, value: T) -> None:
        with self._cond:
            self._value = value
            self._seq += 1
            self._cond.notify_all()

    def get(self) -> T | None:
        return self._value  # a single reference read is atomic

    def get_with_seq(self) -> tuple[T | None, int]:
        with self._cond:
            return self._value, self._seq

    def wait_newer(self, seq: int, timeout: float) -> tuple[T | None, int]:
        """Block until the sequence number exceeds ``seq`` or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq <= seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._value, self._seq

    def clear(self) -> None:
        with self._cond:
            self._value = None


@dataclass(frozen=True)
class AppEvent:
    """Something the operator should know about.

    Attributes:
        kind: dotted category, e.g. ``"safety.estop"``, ``"camera.disconnected"``,
            ``"recorder.disk_full"``, ``"loop.overrun"``.
        message: one sentence for the operator: what happened and what to do.
        level: a ``logging`` level.
        data: extra fields for widgets that want them.
        t: host monotonic time.
    """

    kind: str
    message: str
    level: int = logging.INFO
    data: dict[str, Any] = field(default_factory=dict)
    t: float = field(default_factory=time.monotonic)


class EventBus:
    """Fan-out of :class:`AppEvent` to subscribers, from whichever thread publishes.

    Subscribers must be quick and must not block (append to a queue, set a flag). The last events
    are kept so a view opened late can show recent history.
    """

    def __init__(self, history: int = 500) -> None:
        self._lock = threading.Lock()
        self._subs: list[Callable[[AppEvent], None]] = []
        self.history: collections.deque[AppEvent] = collections.deque(maxlen=history)

    def subscribe(self, callback: Callable[[AppEvent], None]) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        with self._lock:
            self._subs.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subs:
                    self._subs.remove(callback)

        return unsubscribe

    def publish(self, event: AppEvent) -> None:
        with self._lock:
            self.history.append(event)
            subs = list(self._subs)
        log.log(event.level, "[%s] %s", event.kind, event.message)
        for cb in subs:
            try:
                cb(event)
            except Exception:
                log.exception("event subscriber %r failed", cb)

    def emit(self, kind: str, message: str, level: int = logging.INFO, **data: Any) -> None:
        """Shorthand for ``publish(AppEvent(kind, message, level, data))``."""
        self.publish(AppEvent(kind, message, level, dict(data)))
