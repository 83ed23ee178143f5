"""How far behind the robot the recorder's writer may fall, and the steps it never got.

A step is safe from a crash of the process once it is committed to the file; until then it
waits in the loop's queue or in the writer's current batch. To bound what a SIGKILL loses, the
writer keeps that backlog under ``max_backlog_s`` (1 s by default):

* a batch is committed when the commit interval is up, or earlier when its oldest step gets
  close to the bound;
* a step taken from the queue already too old to be committed in time is *shed* (not written),
  so the writer catches up instead of drifting further behind;
* steps the loop could not queue at all (queue full) show as gaps in the tick counter.

Shed and unqueued steps are not silently lost: each hole is recorded in the episode (the next
recorded step carries ``SafetyFlag.STEP_QUEUE_FULL``; a journal row gives the hole's position,
size and time span; the total becomes the ``dropped_steps`` attribute), and the operator is
told that the recorder fell behind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from vla_studio.core.safety import SafetyFlag
from vla_studio.core.types import Step

# Time a step may still need once taken from the queue (its encoding, the commit's flush, a
# busy machine): a step is only accepted while that leaves it inside the bound. Measured with a
# writer at 60 % of real time: 0.25 s left a worst loss of 0.92 s; 0.35 s keeps a margin.
COMMIT_HEADROOM_S = 0.35
BEHIND_ALARM_INTERVAL_S = 10.0  # a writer that stays behind is reported again this often


@dataclass
class EpisodeDrops:
    """Holes in one episode (writer thread only).

    Attributes:
        pending: steps lost since the last recorded step, not yet attached to a row.
        since: tick time of the last recorded step before the pending hole (or the episode's
            start).
        rows: ``(before_step, count, t_from, t_to)`` rows not yet written to the journal.
        total: steps lost so far (written or not).
        worst_backlog_s: the oldest any step was when it was committed.
        alarmed_at: when the operator was last told the writer is behind.
    """

    pending: int = 0
    since: float | None = None
    rows: list[tuple[int, int, float, float]] = field(default_factory=list)
    total: int = 0
    worst_backlog_s: float = 0.0
    alarmed_at: float = float("-inf")

    def lose(self, count: int, last_recorded_t: float | None, t_begin: float) -> None:
        """``count`` steps of this episode will never be recorded."""
        if count <= 0:
            return
        if self.pending == 0:
            self.since = last_recorded_t if last_recorded_t is not None else t_begin
        self.pending += count
        self.total += count

    def mark(self, step: Step, before_step: int) -> Step:
        """The step recorded after a hole carries the flag, and the hole gets its row."""
        if self.pending == 0:
            return step
        self.rows.append((before_step, self.pending, float(self.since or step.t), float(step.t)))
        self.pending = 0
        flags = int(step.safety_flags) | int(SafetyFlag.STEP_QUEUE_FULL)
        return dataclasses.replace(step, safety_flags=flags)

    def close(self, num_steps: int, t_end: float) -> None:
        """A hole at the very end (nothing recorded after it) gets its row too."""
        if self.pending:
            self.rows.append((num_steps, self.pending, float(self.since or t_end), float(t_end)))
            self.pending = 0

    def take_rows(self) -> list[tuple[int, int, float, float]]:
        rows, self.rows = self.rows, []
        return rows


class TickGaps:
    """Steps the loop emitted but could not queue, seen as gaps in the tick counter."""

    def __init__(self) -> None:
        self._index: int | None = None
        self._t: float | None = None

    def missed(self, step: Step) -> list[float]:
        """Estimated tick times of the steps missing right before ``step`` (evenly spaced: the
        loop ticks at a fixed rate)."""
        index, t = self._index, self._t
        self._index, self._t = step.index, step.t
        if index is None or t is None or step.index <= index + 1 or step.t <= t:
            return []  # in order, or a restarted loop (its counter starts again)
        n = step.index - index - 1
        dt = (step.t - t) / (n + 1)
        return [t + dt * (k + 1) for k in range(n)]


class BacklogPolicy:
    """The writer's bound on how long a step may stay uncommitted.

    Args:
        max_backlog_s: the bound (what a SIGKILL may lose at most).
        commit_interval_s: regular commit period (shorter than the bound).
    """

    def __init__(self, max_backlog_s: float, commit_interval_s: float) -> None:
        self.max_backlog_s = max_backlog_s
        self.commit_interval_s = commit_interval_s
        # The oldest a step may be when taken and still be committed within the bound.
        self.shed_after_s = max(commit_interval_s, max_backlog_s - COMMIT_HEADROOM_S)

    def is_stale(self, step: Step, now: float) -> bool:
        return now - step.t > self.shed_after_s

    def commit_due(self, last_commit: float, oldest_pending_t: float | None, now: float) -> bool:
        if oldest_pending_t is None:
            return False
        return now - last_commit >= self.commit_interval_s or \
            now - oldest_pending_t >= self.shed_after_s - self.commit_interval_s
