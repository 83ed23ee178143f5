"""Live figures of a policy run: latency percentiles, queue depth, underruns, confidence.

The runner's threads write plain counters and a ring buffer; the GUI (at display rate), the
benchmarks and the run log read a :class:`RunnerSnapshot` copy.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass

import numpy as np

# Run states shown in the panel.
STARTING, IDLE, RUNNING, CRASHED, HUNG, DISCONNECTED, ERROR, CLOSED = (
    "starting", "idle", "running", "crashed", "hung", "disconnected", "error", "closed")


class LatencyWindow:
    """The last ``size`` latencies (milliseconds) with percentiles; thread-safe."""

    def __init__(self, size: int = 512) -> None:
        self._buf = np.zeros(size)
        self._n = 0
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._buf[self._n % self._buf.size] = ms
            self._n += 1

    def values(self) -> np.ndarray:
        with self._lock:
            return self._buf[: min(self._n, self._buf.size)].copy()

    def percentile(self, q: float) -> float:
        v = self.values()
        return float(np.percentile(v, q)) if v.size else math.nan


@dataclass(frozen=True)
class RunnerSnapshot:
    """One reading of a runner's figures.

    Attributes:
        state: ``starting``, ``idle``, ``running``, ``crashed``, ``hung``, ``disconnected``,
            ``error`` or ``closed``.
        message: why, for the panel (empty when all is well).
        host: where the model runs (child process, remote URL, in-process).
        mode: chunk execution mode.
        chunks: chunks received since start.
        latency_p50_ms, latency_p95_ms, latency_p99_ms: observation tick to chunk received.
        infer_p50_ms: the model's own time per chunk, as the server measured it.
        queue_depth: actions in hand beyond the current tick.
        underruns: ticks a running policy had no action for (held).
        skipped_stale: chunk actions skipped because their tick had passed when they arrived.
        dropped_chunks: chunks that arrived entirely too late, or after a flush.
        errors: failed requests.
        restarts: times the model was restarted.
        confidence: confidence of the last executed action (NaN: unknown).
        confidence_method: how it was obtained.
        fallback: the low-confidence fallback in force (empty: none).
    """

    state: str
    message: str
    host: str
    mode: str
    chunks: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    infer_p50_ms: float
    queue_depth: int
    underruns: int
    skipped_stale: int
    dropped_chunks: int
    errors: int
    restarts: int
    confidence: float
    confidence_method: str
    fallback: str

    def as_dict(self) -> dict:
        return asdict(self)
