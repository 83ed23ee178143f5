"""The log of policy runs the supervisor reads: starts, stops, clamps, pauses, help, verdicts,
outcomes, one line each with the run time it happened at.

Written by :class:`~vla_studio.policies.supervisor.PolicySupervisor` (its poll and its jobs),
read by the policy panel; thread-safe, bounded, plain data.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass

MAX_ENTRIES = 2000

# Entry kinds (the panel colours them).
START, RESUME, PAUSE, STOP, RESET, CLAMP, HELP, VERDICT, OUTCOME, POLICY, ERROR = (
    "start", "resume", "pause", "stop", "reset", "clamp", "help", "verdict", "outcome", "policy",
    "error")


@dataclass(frozen=True)
class LogEntry:
    """One line of the run log.

    Attributes:
        seq: position in the log (increasing from 1).
        t: host monotonic time.
        run_s: seconds since the run started (None outside a run).
        kind: one of the kinds above.
        text: what happened, for a person.
        level: a ``logging`` level (warnings and errors stand out).
    """

    seq: int
    t: float
    run_s: float | None
    kind: str
    text: str
    level: int = logging.INFO

    def line(self) -> str:
        when = f"{self.run_s:6.1f} s" if self.run_s is not None else "      -"
        return f"{when}  {self.text}"


class RunLog:
    """A bounded, thread-safe list of :class:`LogEntry`."""

    def __init__(self, maxlen: int = MAX_ENTRIES) -> None:
        self._entries: collections.deque[LogEntry] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._seq = 0
        self.run_started: float | None = None

    def add(self, kind: str, text: str, level: int = logging.INFO,
            t: float | None = None) -> LogEntry:
        t = time.monotonic() if t is None else t
        started = self.run_started
        with self._lock:
            self._seq += 1
            entry = LogEntry(self._seq, t, None if started is None else max(0.0, t - started),
                             kind, text, level)
            self._entries.append(entry)
        return entry

    def since(self, seq: int) -> list[LogEntry]:
        """Entries after ``seq`` (0: all kept)."""
        with self._lock:
            return [e for e in self._entries if e.seq > seq]

    def kinds(self) -> list[str]:
        with self._lock:
            return [e.kind for e in self._entries]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
