"""Lock-step ticking of the control loop: the same tick, driven by a simulator's clock.

:class:`LockstepTicks` is a part of :class:`~vla_studio.core.loop.ControlLoop` (kept in its own
module so the loop's module stays about the real-time thread). See the loop's module docstring
for how lock-step fits in, and :mod:`vla_studio.core.lockstep` for the driver that uses it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from vla_studio.core.robot_calls import CallAbandoned
from vla_studio.core.types import Step

if TYPE_CHECKING:
    from vla_studio.core.loop import ControlLoop


# A simulated robot's call only computes (physics of one period): nothing moves while it runs,
# and under CPU contention its wall time says nothing about a hang (measured: a 3 ms physics
# step took over 200 ms, the real-time deadline, at a load of 6 on 2 cores). In lock-step the
# deadline catches a hung simulator instead: no return within this long latches the e-stop.
LOCKSTEP_ROBOT_DEADLINE_S = 10.0


class LockstepTicks:
    """The lock-step entry points of the control loop (a mixin of ``ControlLoop``)."""

    def start_lockstep(self: "ControlLoop") -> None:
        """Prepare lock-step ticking by the calling thread (see the module docstring): the
        robot-deadline watchdog and the e-stop relay run as with :meth:`start`, but no loop
        thread; the caller then drives ticks with :meth:`step_once` and owns the robot.

        Robot calls keep their deadline, at least :data:`LOCKSTEP_ROBOT_DEADLINE_S` (a
        simulation cannot run away while a call computes; see there)."""
        with self._lifecycle:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("the control loop's thread is running; lock-step needs it "
                                   "stopped")
            self._stop.clear()
            self._io.deadline_s = max(self._io.deadline_s, LOCKSTEP_ROBOT_DEADLINE_S)
            self._io.start()
            self.latch.add_emergency_hold(self.robot.emergency_hold)
            if not self.latch.relay_running:
                self.latch.start()
                self._started_relay = True
            self._lockstep_owner = threading.current_thread()

    @property
    def lockstep(self: "ControlLoop") -> bool:
        """Ticks are driven by :meth:`step_once` (lock-step), not by the loop's own thread."""
        return self._lockstep_owner is not None

    @property
    def step_queues(self: "ControlLoop") -> tuple:
        """The subscribers' step queues (the lock-step driver waits for them to drain)."""
        return tuple(self._subs)

    def step_once(self: "ControlLoop", t: float) -> Step | None:
        """Lock-step: run one tick with tick time ``t`` on the calling thread, now.

        ``t`` comes from the station's simulated clock and must increase from call to call.
        The tick is exactly the real-time loop's; an e-stop latched since the last call holds
        at once. Returns the emitted step (None when a robot call stuck past its deadline
        returned only now: the e-stop is latched and the tick is void).

        Raises:
            RuntimeError: lock-step was not started by this thread.
            Exception: whatever crashed the tick (the robot is held and the e-stop latched
                first, as when the loop thread crashes).
        """
        if threading.current_thread() is not self._lockstep_owner:
            raise RuntimeError("step_once() must be called by the thread that called "
                               "start_lockstep()")
        try:
            step = self._tick(self._tick_index, t, 0.0, None, time.monotonic())
        except CallAbandoned:
            return None
        except Exception as exc:
            self._crashed(exc)
            self._hold_safely()
            raise
        self._tick_index += 1
        return step
