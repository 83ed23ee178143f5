"""Conditions that repeat every tick, logged once with a count and a summary when they clear.

The control loop can hit the same problem at every tick for minutes (a robot that keeps refusing
commands, a source that keeps failing, a clamp that stays on). Logging each occurrence floods the
log and, worse, puts formatting and I/O on the control thread. :class:`RepeatedAlarm` logs the
first occurrence, counts the rest, and logs one summary once the condition has been absent for
``clear_after_s`` (so a condition that flickers tick to tick stays one alarm).

Only the loop thread calls an alarm (no lock); the log call itself goes through the queue handler
of :mod:`vla_studio.core.log_queue`, so a slow log destination never blocks the loop.
"""

from __future__ import annotations

import logging
import time

DEFAULT_CLEAR_AFTER_S = 1.0


class RepeatedAlarm:
    """One condition that may repeat every tick.

    Args:
        logger: where the two lines go.
        what: the condition in a few words ("robot command failed").
        level: log level of the first occurrence (the summary is logged at INFO).
        clear_after_s: how long the condition must be absent before it counts as cleared.
        announce: log the first occurrence (False when the caller tells the operator itself,
            e.g. through the event bus, which logs its events).
    """

    def __init__(self, logger: logging.Logger, what: str, level: int = logging.WARNING,
                 clear_after_s: float = DEFAULT_CLEAR_AFTER_S, announce: bool = True) -> None:
        self.logger, self.what, self.level = logger, what, level
        self.announce = announce
        self.clear_after_s = clear_after_s
        self.count = 0  # occurrences in the current streak
        self.total = 0  # occurrences since the alarm was made
        self._since: float | None = None
        self._last: float = 0.0

    @property
    def active(self) -> bool:
        return self._since is not None

    def occurred(self, detail: str = "", now: float | None = None, exc_info: bool = False) -> bool:
        """Count one occurrence; logs (with ``detail``, and the traceback when ``exc_info``)
        only when a new streak starts. Returns True when a new streak started."""
        now = time.monotonic() if now is None else now
        self.count += 1
        self.total += 1
        self._last = now
        if self._since is not None:
            return False
        self._since = now
        if not self.announce:
            return True
        self.logger.log(self.level, "%s%s (repeats are counted and summarised when it clears)",
                        self.what, f": {detail}" if detail else "", exc_info=exc_info)
        return True

    def quiet(self, now: float | None = None) -> bool:
        """The condition did not occur this time; logs the summary once it has been absent long
        enough. Returns True when the alarm cleared now. Cheap when nothing is active."""
        if self._since is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last < self.clear_after_s:
            return False
        self.logger.info("%s cleared: %d times over %.1f s (%d in all)", self.what, self.count,
                         self._last - self._since, self.total)
        self._since, self.count = None, 0
        return True
