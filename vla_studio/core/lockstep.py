"""The lock-step driver: cameras, control loop and physics advance together on simulated time.

```
 driver thread (owns robot, cameras' renderers, clock)          recorder writer thread
 tick():  backpressure: wait while a step queue holds >= N steps <--- drains the queue
          t = clock.now()
          camera.capture(t) for every camera (renders the world as it is at t)
          loop.step_once(t): observe -> decide -> filter -> gate -> send -> emit  (the one tick
                             of the real-time loop; send advances physics by one period)
          clock.advance()  (t + T)
```
Real time paces the loop with a timer; lock-step paces it with the slowest participant. A
source that needs time (a policy inferring, the recorder writing) makes the simulation wait
instead of missing ticks, so nothing is dropped and nothing is late: the recorder's queue is
kept short by backpressure (never by dropping), cameras render synchronously for each tick (no
render threads racing the physics), and every timestamp comes from the simulated clock.

Waiting for simulated time (``clock.sleep`` on the driver's thread) runs ticks: a script that
polls "is the task done?" between sleeps is the same code in both modes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol, Sequence

from vla_studio.core.clocks import SimClock
from vla_studio.core.types import Frame, Step

if TYPE_CHECKING:
    from vla_studio.core.loop import ControlLoop

log = logging.getLogger(__name__)
# Steps a subscriber may hold before the driver waits for it: a few ticks, so a queued step is
# never older than a fraction of a second of simulated time (the recorder's backlog bound).
QUEUE_STEPS = 4
BACKPRESSURE_POLL_S = 0.0005


class SynchronousCamera(Protocol):
    """A camera that renders on demand, on the driver's thread."""

    name: str

    def capture(self, t: float) -> Frame | None:
        """Render the scene as it is now, stamped ``t`` (or skip until its next frame is due)."""
        ...


class LockstepDriver:
    """Ticks a control loop, its cameras and its simulation together.

    Args:
        loop: the station's control loop (its robot simulates one period per command).
        clock: the station's simulated clock (advanced here, one period per tick).
        cameras: cameras rendered before each tick, in order.
        queue_steps: steps a step queue may hold before the next tick waits for it.
        stall_timeout_s: a subscriber that takes no step for this long (host time) is given up
            on until it takes steps again: ticks go on, and what does not fit its queue is
            counted as dropped by the loop's own full-queue alarm.
    """

    def __init__(self, loop: "ControlLoop", clock: SimClock, cameras: Sequence[SynchronousCamera],
                 *, queue_steps: int = QUEUE_STEPS, stall_timeout_s: float = 60.0) -> None:
        if abs(clock.period_s - loop.period_s) > 1e-12:
            raise ValueError(f"the clock's period ({clock.period_s} s) is not the loop's "
                             f"({loop.period_s} s)")
        self.loop, self.clock, self.cameras = loop, clock, list(cameras)
        self.queue_steps, self.stall_timeout_s = max(1, queue_steps), stall_timeout_s
        self.ticks = 0
        self.waits = 0  # ticks that waited for a subscriber
        self.waited_s = 0.0  # host seconds spent waiting
        self._owner: threading.Thread | None = None
        self._stalled: set = set()  # step queues given up on until they take steps again

    @property
    def running(self) -> bool:
        return self._owner is not None

    def start(self) -> None:
        """Make the calling thread the one that ticks (and owns the robot and renderers)."""
        self.loop.start_lockstep()
        self._owner = threading.current_thread()
        self.clock.bind(self._owner, self.run)

    def stop(self) -> None:
        """Detach from the clock (the station stops the loop)."""
        self._owner = None
        self.clock.bind(None, None)

    def run(self, ticks: int) -> Step | None:
        """Run ``ticks`` ticks; returns the last step."""
        step = None
        for _ in range(ticks):
            step = self.tick()
        return step

    def tick(self) -> Step | None:
        """One lock-step tick (see the module docstring). Returns the emitted step."""
        if threading.current_thread() is not self._owner:
            raise RuntimeError("tick() must run on the thread that started the driver")
        self._backpressure()
        t = self.clock.now()
        for cam in self.cameras:
            cam.capture(t)
        step = self.loop.step_once(t)
        self.clock.advance()
        self.ticks += 1
        return step

    def _backpressure(self) -> None:
        """Wait (host time) until every step queue has room for a few more steps."""
        start = None
        for q in self.loop.step_queues:
            limit = min(self.queue_steps, max(1, q.maxsize - 1))
            if q.qsize() < limit:
                self._stalled.discard(q)  # taking steps again: waited for from now on
                continue
            if q in self._stalled:
                continue
            while not q.closed and q.qsize() >= limit:
                now = time.monotonic()
                if start is None:
                    start = now
                if now - start > self.stall_timeout_s:
                    log.error("lock-step: %s took no step for %.0f s; ticking on without it "
                              "until it does (its queue drops what does not fit)", q.name,
                              now - start)
                    self._stalled.add(q)
                    break
                time.sleep(BACKPRESSURE_POLL_S)
        if start is not None:
            self.waits += 1
            self.waited_s += time.monotonic() - start
