"""Robot calls under a deadline, and how the control loop survives one that never returns.

```
 control-loop thread              "robot-deadline" thread (polls every deadline / 4)
 calls.call("send_action", ...)   in flight past its deadline?
   -> driver blocks ...             -> mark it stuck, on_missed(call): the loop latches the e-stop
                                       (the latch's relay calls robot.emergency_hold()) and starts
                                       a fresh control-loop thread
 ... driver returns at last       the fresh thread ticks without touching the robot
   -> CallAbandoned: the old          (RobotUnresponsive) until the stuck call returns, then
      thread exits quietly            holds as usual (the stop is latched)
```
Robot I/O stays on the loop thread (no hand-off per call: under GIL contention each hand-off
between threads costs milliseconds). Only a call that misses its deadline turns its thread into
the "stuck" one; the driver is never called from two threads at once, because no new call
starts while a stuck one has not returned.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class RobotUnresponsive(RuntimeError):
    """A robot call is stuck past its deadline; no other call may start until it returns."""


class CallAbandoned(BaseException):
    """Raised in a thread whose stuck robot call finally returned after the loop gave up on it.

    A BaseException, so the loop's ``except Exception`` handlers cannot swallow it: the thread
    must leave the loop without touching anything.
    """


@dataclass(frozen=True)
class RobotCall:
    """One call in flight: what, when it started and when it must be done (host monotonic)."""

    name: str
    started: float
    deadline: float


class RobotCalls:
    """Runs robot calls on the calling thread and watches their deadline from its own thread.

    Args:
        deadline_s: longest a call may take.
        on_missed: called on the watchdog thread, once per stuck call, with the call and the
            time it was found stuck.
    """

    def __init__(self, deadline_s: float, on_missed: Callable[[RobotCall, float], None]) -> None:
        self.deadline_s = deadline_s
        self._on_missed = on_missed
        self._lock = threading.Lock()
        self._in_flight: RobotCall | None = None
        self._stuck: RobotCall | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.missed = 0

    @property
    def stuck(self) -> RobotCall | None:
        """The call that missed its deadline and has not returned yet (None: the robot is free)."""
        return self._stuck

    def start(self) -> None:
        """Start the watchdog thread (``robot-deadline``). Idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="robot-deadline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the watchdog thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)

    def call(self, name: str, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` now, on this thread, under the deadline.

        Raises:
            RobotUnresponsive: another call is stuck; ``fn`` was not called.
            CallAbandoned: ``fn`` returned (or raised) after it had been declared stuck.
        """
        now = time.monotonic()
        call = RobotCall(name, now, now + self.deadline_s)
        with self._lock:
            stuck = self._stuck
            if stuck is None:
                self._in_flight = call
        if stuck is not None:
            raise RobotUnresponsive(
                f"robot {stuck.name}() has not returned for {now - stuck.started:.1f} s")
        abandoned = False
        try:
            return fn(*args)
        finally:
            with self._lock:
                if self._stuck is call:
                    self._stuck, abandoned = None, True
                if self._in_flight is call:
                    self._in_flight = None
            if abandoned:
                log.warning("robot %s() returned after %.1f s; the control loop had carried on "
                            "without it", name, time.monotonic() - call.started)
                raise CallAbandoned(name)

    def _watch(self) -> None:
        poll = max(0.001, min(self.deadline_s / 4.0, 0.05))
        while not self._stop.wait(poll):
            now = time.monotonic()
            with self._lock:
                call = self._in_flight
                if call is None or self._stuck is not None or now <= call.deadline:
                    continue
                self._stuck = call
                self._in_flight = None
                self.missed += 1
            try:
                self._on_missed(call, now)
            except Exception:
                log.exception("handling the stuck robot call %s() failed", call.name)
