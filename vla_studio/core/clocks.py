"""The clock a station runs on: host time (real time) or simulated time (lock-step).

Everything that stamps or compares *tick times* (the control loop's tick stamps, episode windows
in the recorder, camera capture stamps, success "held for" timers, a policy runner's chunk
schedule) reads the station's :class:`Clock`, so the same code runs in both modes:

=============  =================================  ==============================================
clock          ``now()``                          ``sleep(s)`` (waiting for time to pass)
=============  =================================  ==============================================
HostClock      ``time.monotonic()``               ``time.sleep(s)``: the loop thread ticks on
SimClock       ``origin + ticks x period``:       on the lock-step driver's thread: *runs* the
               advanced one control period per    loop for ``ceil(s / period)`` ticks (time only
               lock-step tick, never otherwise    passes by simulating it); on any other thread:
                                                  a host sleep while the driver ticks
=============  =================================  ==============================================

A :class:`SimClock` is monotonic across episodes (the simulator's own ``data.time`` restarts at
every scene reset; tick stamps must not). What stays on host time in both modes: wall-clock
deadlines (robot-call deadlines, fsync intervals, timeouts a person waits through) and the
measured durations of stages and inferences.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Protocol

HOST, SIM = "host", "sim"


class Clock(Protocol):
    """What the station's components ask of a clock.

    Attributes:
        kind: ``"host"`` or ``"sim"`` (stored as the episode attribute ``clock``).
        realtime: True when time passes by itself (host time).
    """

    kind: str
    realtime: bool

    def now(self) -> float:
        """The current tick-time axis value, seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of this clock's time pass."""
        ...


class HostClock:
    """Host monotonic time: the real-time station's clock."""

    kind = HOST
    realtime = True

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(max(0.0, seconds))


HOST_CLOCK = HostClock()


class SimClock:
    """Simulated time, advanced by a lock-step driver one control period per tick.

    The value is ``origin + ticks * period`` (no accumulated rounding), read from any thread
    without a lock (one int, replaced whole).

    Args:
        period_s: the control period.
        origin: the time of tick 0.
    """

    kind = SIM
    realtime = False

    def __init__(self, period_s: float, origin: float = 0.0) -> None:
        if not (period_s > 0 and math.isfinite(period_s)):
            raise ValueError(f"the control period must be a positive number, got {period_s}")
        self.period_s, self.origin = float(period_s), float(origin)
        self._ticks = 0
        self._owner: threading.Thread | None = None
        self._run: Callable[[int], None] | None = None

    @property
    def ticks(self) -> int:
        return self._ticks

    def now(self) -> float:
        return self.origin + self._ticks * self.period_s

    def advance(self) -> float:
        """One control period has been simulated (the driver only). Returns the new time."""
        self._ticks += 1
        return self.now()

    def bind(self, owner: threading.Thread | None, run_ticks: Callable[[int], None] | None) -> None:
        """Attach the lock-step driver: ``run_ticks(n)`` simulates ``n`` ticks on ``owner``."""
        self._owner, self._run = owner, run_ticks

    def ticks_for(self, seconds: float) -> int:
        """How many ticks make at least ``seconds`` pass (at least one for any positive wait)."""
        if seconds <= 0:
            return 0
        return max(1, math.ceil(seconds / self.period_s - 1e-9))

    def sleep(self, seconds: float) -> None:
        """On the driver's thread: simulate until ``seconds`` have passed (nothing else makes
        simulated time pass). On another thread: a short host wait (at most 50 ms, while the
        driver ticks as fast as it can); such callers poll :meth:`now` for their condition."""
        run = self._run
        if run is not None and threading.current_thread() is self._owner:
            n = self.ticks_for(seconds)
            if n:
                run(n)
            return
        time.sleep(max(0.0, min(seconds, 0.05)))
