"""How a policy run executes: the settings the policy panel edits, and the small rules that apply
them on the control-loop thread (speed scale, step once).

Most settings take effect at once (:meth:`~vla_studio.policies.runner.PolicyRunner.apply`):
speed, chunk mode, confidence threshold and fallback. Where the model runs (``where``,
``threads``) changes only with the next load.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from vla_studio.core.action_space import EE_DELTA, STATE_JOINT_POS
from vla_studio.core.config import option
from vla_studio.policies.chunk_schedule import MODES
from vla_studio.policies.confidence import METHODS

FALLBACKS = ("pause", "hold", "teleop")
# Settings that only a new load changes (the model process is built with them).
LOAD_SETTINGS = ("where", "threads")


@dataclass(frozen=True)
class RunnerSettings:
    """How a policy run executes (the policy panel edits these)."""

    mode: str = option("chunk", choices=MODES, help="chunk (open loop), replan, ensemble")
    replan_every: int = option(4, min=1, help="replan mode: steps between new chunks")
    ensemble_decay: float = option(0.01, min=0.0, help="ensemble mode: ACT's weight decay m")
    where: str = option("child", choices=("child", "in-process"),
                        help="local policies: child process (default) or in-process (debug)")
    threads: int = option(1, min=1, max=64, help="torch threads of a local policy")
    confidence_method: str = option("auto", choices=METHODS, help="how confidence is obtained")
    confidence_samples: int = option(1, min=1, max=32,
                                     help="chunks drawn per observation for sample spread")
    confidence_threshold: float = option(0.0, min=0.0, max=1.0, help="0 = no fallback")
    confidence_window: int = option(10, min=1, help="steps below the threshold that trigger it")
    fallback: str = option("pause", choices=FALLBACKS, help="pause (ask for help), hold, teleop")
    speed_scale: float = option(1.0, min=0.0, max=1.0,
                                help="factor on the policy's motions (the profile's speed scale "
                                     "and every safety limit still apply after it)")
    request_timeout_s: float = option(5.0, min=0.05, help="a slower chunk means the model hung")
    restart_on_hang: bool = option(True, help="kill and restart a hung local model")
    max_frame_age_s: float = option(0.5, min=0.0, help="older camera frames are not sent")
    resume_gap_s: float = option(0.25, min=0.0, help="a pause longer than this drops old plans")
    rate_tolerance: float = option(0.10, min=0.0, help="allowed policy/station rate difference")


def scaled_action(action: np.ndarray, kind: str, state: Mapping[str, np.ndarray],
                  scale: float) -> np.ndarray:
    """``action`` slowed down by ``scale`` (0..1); the gripper command is left as it is.

    End-effector deltas are scaled; a joint-position target is moved towards the current joints
    (``q + scale * (target - q)``). Without a joint state the target stays (the filter and the
    gate still cap it).
    """
    if scale >= 1.0:
        return action
    out = np.array(action, dtype=np.float64, copy=True)
    if kind == EE_DELTA:
        out[:-1] *= scale
        return out
    q = state.get(STATE_JOINT_POS)
    if q is None:
        return out
    q = np.asarray(q, dtype=np.float64).reshape(-1)[: out.size - 1]
    if q.size == out.size - 1 and np.all(np.isfinite(q)):
        out[:-1] = q + scale * (out[:-1] - q)
    return out


class StepBudget:
    """Step once: let ``n`` policy actions through, then hold until the run is started again.

    ``arm`` and ``clear`` come from the panel's thread, ``take`` and ``exhausted`` from the
    control-loop thread; the count is guarded by a lock held for a few instructions.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left: int | None = None  # None: run freely

    def arm(self, n: int) -> None:
        with self._lock:
            self._left = max(1, int(n))

    def clear(self) -> None:
        with self._lock:
            self._left = None

    @property
    def armed(self) -> bool:
        return self._left is not None

    @property
    def exhausted(self) -> bool:
        left = self._left
        return left is not None and left <= 0

    def take(self) -> bool:
        """Count one executed action; True when it was the last one allowed."""
        with self._lock:
            if self._left is None or self._left <= 0:
                return False
            self._left -= 1
            return self._left == 0
