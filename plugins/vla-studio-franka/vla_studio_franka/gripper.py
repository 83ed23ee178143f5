"""The Franka Hand on its own thread: its commands take 0.1-1 s and even reading its width waits
for the next state packet (~1 ms), so neither may run on the control loop.

```
 control loop --command(opening)--> latest target --> "franka-gripper" thread
              <--latest()---------- GripperReading <-- grasp()/move() (blocking), width reads
```
Only the newest target is kept: a gripper that is still closing when the operator asks for
three more openings executes the last one, never a backlog.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from vla_studio_franka.targets import gripper_width

log = logging.getLogger(__name__)

CLOSED_BELOW = 0.05  # commands at or below this opening grasp (close with force)
READ_PERIOD_S = 0.05  # width refresh while idle


@dataclass(frozen=True)
class GripperReading:
    """Latest measured gripper state.

    Attributes:
        width: finger width, metres.
        max_width: width when fully open (measured by homing), metres.
        grasped: whether the gripper holds something (after a grasp).
        stamp: host monotonic time of the reading.
    """

    width: float
    max_width: float
    grasped: bool
    stamp: float

    @property
    def opening(self) -> float:
        """Width as a fraction of the full opening (1 = open, 0 = closed)."""
        if self.max_width <= 0.0:
            return 0.0
        return min(1.0, max(0.0, self.width / self.max_width))


class GripperWorker:
    """Owns franky's ``Gripper`` and runs every call to it on the thread ``franka-gripper``.

    Args:
        connect: makes the franky ``Gripper`` (called on :meth:`start`'s caller's thread, so a
            missing gripper fails ``connect()`` with its message).
        speed: finger speed, m/s.
        force: grasp force, N.
        deadband: change of the commanded opening that sends a new command (commands are slow
            and each one interrupts nothing: tiny changes are not worth one).
    """

    def __init__(self, connect: Callable[[], Any], speed: float, force: float,
                 deadband: float) -> None:
        self._connect = connect
        self.speed, self.force, self.deadband = speed, force, deadband
        self._gripper: Any = None
        self._cond = threading.Condition()
        self._target: float | None = None
        self._done: float | None = None  # the opening of the last command executed
        self._reading: GripperReading | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self.commands = 0  # gripper commands executed (tests, diagnostics)
        self.last_error = ""

    # ----- lifecycle ----------------------------------------------------------------------------
    def start(self, home: bool = False) -> None:
        """Connect, optionally home (blocking, ~1 s), read once, start the thread."""
        self._gripper = self._connect()
        if home:
            self.home()
        self._read()
        with self._cond:
            self._stop = False
        self._thread = threading.Thread(target=self._run, name="franka-gripper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread (a command in progress finishes first, at most ~1 s)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.error("the gripper thread did not stop within 5 s")
        self._gripper = None

    # ----- any thread ----------------------------------------------------------------------------
    def command(self, opening: float) -> None:
        """Ask for ``opening`` (1 = open, 0 = closed); never blocks."""
        if not math.isfinite(opening):
            return
        with self._cond:
            self._target = min(1.0, max(0.0, float(opening)))
            self._cond.notify_all()

    def latest(self) -> GripperReading | None:
        return self._reading

    def home(self) -> bool:
        """Home the gripper (measures its full width). Blocking: only before :meth:`start`
        returns, or from the gripper thread."""
        ok = bool(self._gripper.homing())
        self._read()
        return ok

    # ----- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stop and not self._pending():
                    self._cond.wait(READ_PERIOD_S)
                if self._stop:
                    return
                target = self._target if self._pending() else None
            try:
                if target is not None:
                    self._execute(target)
                self._read()
                self.last_error = ""
            except Exception as exc:  # GripperException, NetworkException: keep the arm going
                if str(exc) != self.last_error:
                    log.error("Franka gripper: %s", str(exc))
                self.last_error = str(exc)
                time.sleep(READ_PERIOD_S)

    def _pending(self) -> bool:
        if self._target is None:
            return False
        return self._done is None or abs(self._target - self._done) > self.deadband

    def _execute(self, opening: float) -> None:
        reading = self._reading
        max_width = reading.max_width if reading is not None else 0.08
        self._done = opening
        self.commands += 1
        if opening <= CLOSED_BELOW:
            # Grasp "anything between closed and open": succeeds on an object of any width.
            self._gripper.grasp(0.0, self.speed, self.force, 0.005, max_width)
        else:
            self._gripper.move(gripper_width(opening, max_width), self.speed)

    def _read(self) -> None:
        g = self._gripper
        state = g.state
        self._reading = GripperReading(float(state.width), float(state.max_width),
                                       bool(state.is_grasped), time.monotonic())
