"""Which action of which chunk runs at which tick: chunk execution modes and latency alignment.

A chunk computed from the observation of tick time ``t_obs`` holds actions meant for the ticks
``t_obs, t_obs + dt, ...`` (``dt`` = 1 / the policy's rate). It arrives ``latency`` later, so its
first ``latency / dt`` actions are already in the past: they are skipped, never executed late.
At tick time ``t`` the action of a chunk is ``actions[round((t - t_obs) / dt)]`` when that index is
in range; when no chunk covers ``t`` the schedule is empty (an underrun: the runner holds; it
never repeats the last action).

Modes (``mode``):

* ``chunk`` - open loop: a chunk runs to its end before the next one takes over. The next one is
  requested ``lead`` before the end (the measured latency plus a tick), so it is there in time.
* ``replan`` - re-plan every ``k`` steps: a new chunk is requested ``k`` ticks after the previous
  request and replaces the running chunk as soon as it arrives.
* ``ensemble`` - temporal ensembling (ACT): a chunk is requested every tick; the action at ``t`` is
  the average of every chunk covering ``t`` with weights ``exp(-m * i)``, ``i = 0`` for the
  oldest chunk (ACT's choice: older predictions dominate, which smooths the motion).

Pure logic, no threads and no clock of its own: the runner calls it under its lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MODES = ("chunk", "replan", "ensemble")


@dataclass(frozen=True)
class TimedChunk:
    """A chunk placed on the host's time axis.

    Attributes:
        actions: ``[H, D]``.
        confidence: ``[H]`` (NaN where unknown).
        t_obs: tick time of the observation it was computed from (host monotonic).
        dt: seconds between its actions.
        t_received: when the answer arrived.
        seq: arrival order.
        method: how ``confidence`` was obtained.
    """

    actions: np.ndarray
    confidence: np.ndarray
    t_obs: float
    dt: float
    t_received: float
    seq: int = 0
    method: str = ""

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def t_last(self) -> float:
        """Target time of its last action."""
        return self.t_obs + (self.horizon - 1) * self.dt

    @property
    def latency_s(self) -> float:
        return self.t_received - self.t_obs

    def index_at(self, t: float) -> int:
        return int(math.floor((t - self.t_obs) / self.dt + 0.5))

    def covers(self, t: float) -> bool:
        return 0 <= self.index_at(t) < self.horizon

    def target_time(self, index: int) -> float:
        return self.t_obs + index * self.dt


@dataclass(frozen=True)
class ScheduledAction:
    """The action for one tick, with where it came from."""

    action: np.ndarray
    confidence: float
    target_time: float
    chunk: TimedChunk
    index: int
    contributors: int = 1


@dataclass
class ChunkSchedule:
    """The chunks in hand and the rule that turns them into one action per tick.

    Args:
        mode: ``chunk``, ``replan`` or ``ensemble``.
        dt: the policy's action period in seconds.
        replan_every: ``k`` of the ``replan`` mode.
        ensemble_decay: ``m`` of the ``ensemble`` mode (ACT uses 0.01).
    """

    mode: str
    dt: float
    replan_every: int = 4
    ensemble_decay: float = 0.01
    _active: TimedChunk | None = None
    _pending: TimedChunk | None = None
    _chunks: list[TimedChunk] = field(default_factory=list)
    _last_request_obs: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown chunk mode {self.mode!r}; allowed: {', '.join(MODES)}")
        if self.replan_every < 1:
            raise ValueError("replan_every must be at least 1")

    # ----- arrivals -----------------------------------------------------------------------------
    def add(self, chunk: TimedChunk, now: float) -> int:
        """Take a new chunk; returns how many of its actions were already due (skipped).

        A chunk whose actions all lie in the past is dropped (returns its whole horizon).
        """
        first = max(0, chunk.index_at(now))
        skipped = min(first, chunk.horizon)
        if skipped >= chunk.horizon:
            return skipped
        if self.mode == "ensemble":
            self._chunks.append(chunk)
        elif self.mode == "replan" or self._active is None or not self._active.covers(now):
            self._active, self._pending = chunk, None
        else:
            self._pending = chunk  # open loop: waits for the running chunk to finish
        return skipped

    def note_request(self, t_obs: float) -> None:
        """The runner sent a request with the observation of ``t_obs``."""
        self._last_request_obs = t_obs

    def flush(self) -> None:
        """Drop every chunk (e-stop, pause, new episode)."""
        self._active = self._pending = None
        self._chunks = []
        self._last_request_obs = None

    # ----- the tick ---------------------------------------------------------------------------
    def action_at(self, t: float) -> ScheduledAction | None:
        """The action for tick time ``t``, or None (nothing covers ``t``)."""
        if self.mode == "ensemble":
            return self._ensembled(t)
        active = self._active
        if active is not None and not active.covers(t):
            if self._pending is not None and self._pending.covers(t):
                self._active, self._pending = self._pending, None
                active = self._active
            elif active.index_at(t) >= active.horizon:
                self._active = active = None
        if active is None or not active.covers(t):
            return None
        i = active.index_at(t)
        return ScheduledAction(active.actions[i], float(active.confidence[i]),
                               active.target_time(i), active, i)

    def _ensembled(self, t: float) -> ScheduledAction | None:
        self._chunks = [c for c in self._chunks if c.index_at(t) < c.horizon]
        live = [c for c in self._chunks if c.covers(t)]  # arrival order: oldest first
        if not live:
            return None
        weights = np.exp(-self.ensemble_decay * np.arange(len(live)))
        weights /= weights.sum()
        idx = [c.index_at(t) for c in live]
        action = sum(w * c.actions[i] for w, c, i in zip(weights, live, idx))
        confs = np.array([c.confidence[i] for c, i in zip(live, idx)])
        known = np.isfinite(confs)
        conf = float(np.sum(weights[known] * confs[known]) / np.sum(weights[known])) if known.any() \
            else math.nan
        newest = live[-1]
        return ScheduledAction(np.asarray(action), conf, t, newest, idx[-1], len(live))

    # ----- planning ---------------------------------------------------------------------------
    def next_request_due(self, lead_s: float) -> float:
        """Host time at which the next observation should be sent (``-inf``: now).

        Args:
            lead_s: expected observation-to-answer latency plus a margin.
        """
        if self._last_request_obs is None:
            return -math.inf
        if self.mode == "ensemble":
            return self._last_request_obs + self.dt
        if self.mode == "replan":
            return self._last_request_obs + self.replan_every * self.dt
        newest = self._pending or self._active
        if newest is None:
            return -math.inf
        # Open loop: ask early enough that the next chunk is in hand when this one ends.
        return max(self._last_request_obs + self.dt, newest.t_last + self.dt - lead_s)

    def covered_until(self) -> float | None:
        """Target time of the last action in hand, or None when empty."""
        chunks = self._chunks if self.mode == "ensemble" else [
            c for c in (self._active, self._pending) if c is not None]
        return max((c.t_last for c in chunks), default=None)

    def depth(self, t: float) -> int:
        """Actions in hand for ticks after ``t`` (the queue depth)."""
        end = self.covered_until()
        return 0 if end is None else max(0, int(math.floor((end - t) / self.dt + 0.5)))

    def planned(self, t: float) -> np.ndarray:
        """The actions planned from ``t`` on, ``[n, D]`` (for overlays): the rest of the running
        chunk, then (open loop) the rest of the chunk waiting to take over after it."""
        chunk = (self._chunks[-1] if self._chunks else None) if self.mode == "ensemble" \
            else (self._active or self._pending)
        if chunk is None:
            return np.zeros((0, 0))
        i = max(0, chunk.index_at(t))
        rest = chunk.actions[i:]
        nxt = self._pending if self.mode == "chunk" and chunk is self._active else None
        if nxt is not None:  # it takes over at the tick after the running chunk's last action
            j = max(0, nxt.index_at(max(t, chunk.t_last + chunk.dt)))
            rest = np.concatenate([rest, nxt.actions[j:]])
        return rest.copy()
