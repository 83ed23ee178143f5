"""Fixed-rate timing statistics for the control loop (and any other periodic thread).

:class:`LoopStats` keeps the last few thousand ticks in ring buffers so the GUI, the benchmarks and
episode metadata can read achieved rate, jitter percentiles, per-stage times and overruns without
the loop ever allocating or locking on its hot path (one writer; readers copy).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from vla_studio.core.types import StageTiming

STAGES = ("observe", "decide", "filter", "send", "emit")

# How far in the future a proposal's stamp may be before it is invalid (float rounding and the
# conversion of remote stamps; host stamps taken before the check are never in the future).
FUTURE_STAMP_TOLERANCE_S = 0.005


def host_stamp_from_remote(remote_stamp: float, remote_sent: float, host_received: float) -> float:
    """Convert a remote event time to host monotonic time, on receipt.

    Two clocks are never compared: the remote side says how old the event was when it sent the
    message (both times on its own clock) and that age is taken back from the host receipt time.
    The transport delay is not known, so the result is at most that much too fresh; it is never
    in the future, and a negative age (a remote clock that jumped) counts as zero.

    Args:
        remote_stamp: when the event happened (the observation a chunk was inferred from), on
            the remote clock.
        remote_sent: when the remote side sent the message, on the remote clock.
        host_received: ``time.monotonic()`` when this process received it.

    Returns:
        The event time on the host monotonic clock.
    """
    age = remote_sent - remote_stamp
    if not math.isfinite(age) or age < 0.0:
        age = 0.0
    return host_received - age


@dataclass(frozen=True)
class LoopStatsSnapshot:
    """Figures over the retained window of ticks (all times in milliseconds)."""

    rate_hz: float
    achieved_hz: float
    ticks: int
    jitter_p50_ms: float
    jitter_p99_ms: float
    jitter_max_ms: float
    overruns: int
    skipped_ticks: int
    overrun_streak: int
    stage_p50_ms: dict[str, float]
    stage_p99_ms: dict[str, float]

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class LoopStats:
    """Ring-buffered timing of a fixed-rate loop.

    Args:
        rate_hz: the nominal rate.
        window: how many recent ticks percentiles are computed over.
    """

    def __init__(self, rate_hz: float, window: int = 4096) -> None:
        self.rate_hz = rate_hz
        self._n = window
        self._starts = np.zeros(window)
        self._jitter = np.zeros(window)
        self._stages = np.zeros((window, len(STAGES)))
        self._count = 0
        self.overruns = 0
        self.skipped_ticks = 0
        self.overrun_streak = 0
        self._lock = threading.Lock()  # only taken by readers and by reset, never per tick

    def record(self, start: float, timing: StageTiming, overran: bool) -> None:
        """Record one tick (called by the loop thread only)."""
        i = self._count % self._n
        self._starts[i] = start
        self._jitter[i] = timing.jitter_ms
        self._stages[i] = (timing.observe_ms, timing.decide_ms, timing.filter_ms,
                           timing.send_ms, timing.emit_ms)
        self._count += 1
        if overran:
            self.overruns += 1
            self.overrun_streak += 1
        else:
            self.overrun_streak = 0

    def snapshot(self) -> LoopStatsSnapshot:
        n = min(self._count, self._n)
        count = self._count
        if n == 0:
            zeros = {s: 0.0 for s in STAGES}
            return LoopStatsSnapshot(self.rate_hz, 0.0, 0, 0.0, 0.0, 0.0, self.overruns,
                                     self.skipped_ticks, self.overrun_streak, zeros, dict(zeros))
        starts = self._starts[:n].copy() if count <= self._n else np.roll(self._starts, -(count % self._n))
        jitter = self._jitter[:n].copy()
        stages = self._stages[:n].copy()
        span = float(starts[-1] - starts[0]) if n > 1 else 0.0
        achieved = (n - 1) / span if span > 0 else 0.0
        p50 = np.percentile(stages, 50, axis=0)
        p99 = np.percentile(stages, 99, axis=0)
        return LoopStatsSnapshot(
            rate_hz=self.rate_hz,
            achieved_hz=achieved,
            ticks=count,
            jitter_p50_ms=float(np.percentile(jitter, 50)),
            jitter_p99_ms=float(np.percentile(jitter, 99)),
            jitter_max_ms=float(jitter.max()),
            overruns=self.overruns,
            skipped_ticks=self.skipped_ticks,
            overrun_streak=self.overrun_streak,
            stage_p50_ms={s: float(v) for s, v in zip(STAGES, p50)},
            stage_p99_ms={s: float(v) for s, v in zip(STAGES, p99)},
        )
