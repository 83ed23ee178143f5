"""The automatic corrector: the scripted expert watches a policy run and takes over when it goes
wrong, then hands back (unattended DAgger in the simulator; ``vla-studio dagger``).

It is the teleop source of the station during a policy run, so it takes over exactly as an
operator does (the arbiter's ``takeover``: shadow labels, bumpless handovers, re-planning on the
hand-back). Every tick, on the loop's thread, the expert computes what *it* would do from the
privileged world state (it is reactive, see :mod:`vla_studio.sim.expert`), and the corrector
compares that plan with what the robot actually did::

    executed  = TCP(t) - TCP(t-1)            (the policy's last command, after the safety filter)
    planned   = the expert's delta for t-1   (what it would have commanded from the same state)
    drift     = path_drift(sum(executed), sum(planned))  over the last ``window_s``:
                how far the policy went off the expert's path (sideways, or backwards)
    take over when  drift > drift_m                      (heading elsewhere)
               or   the TCP moved < stall_m in stall_s   (stuck; not while grasping or releasing)
               or   it made < min_progress of the expert's planned progress in stall_s
                    (dithering: moving, but getting nowhere)
               or   the gripper disagreed for gripper_s  (closing in mid-air, letting go)
               or   the run asked for help               (low confidence: it answers at once)
    hand back  after at least min_correction_s, once the expert's phase has moved on
               (reached the next step of the task), or after max_correction_s at the latest

The drift ignores speed along the planned path: a policy that is slower or faster than the
expert but heads where the expert would is doing the task, as an operator watching would judge
(a policy that stops altogether is caught by the stall test). Comparing positions instead would
take over from every policy that is slower than the expert's speed profile, so the share of
corrected steps would measure speed, not mistakes.

At a takeover the expert's motion restarts from rest (its speed profile ramps up from zero, as
an operator's clutch re-references), so the first corrected command is a small one.
"""

from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass

import numpy as np

from vla_studio.core.arbiter import Proposal
from vla_studio.core.config import option
from vla_studio.core.types import Observation
from vla_studio.devices.robots.sim import SimRobot
from vla_studio.devices.teleop.scripted import ScriptedSource
from vla_studio.sim.expert import ExpertSettings

log = logging.getLogger(__name__)
# Phases in which the expert itself stands still on purpose (a stall there is no stall).
STILL_PHASES = ("close", "release", "done")
REASONS = ("drift", "stall", "gripper", "help")


@dataclass(frozen=True)
class CorrectorSettings:
    """When the automatic corrector takes over and hands back (see the module docstring)."""

    drift_m: float = option(0.04, min=0.005, max=1.0,
                            help="take over when the executed path departs this far from the "
                                 "expert's plan within the window, metres")
    window_s: float = option(1.0, min=0.1, max=10.0, help="drift window, seconds")
    stall_s: float = option(2.0, min=0.2, max=60.0, help="stall window, seconds")
    stall_m: float = option(0.01, min=0.0, max=0.5,
                            help="moving less than this within the stall window is a stall")
    min_progress: float = option(0.25, min=0.0, max=1.0,
                                 help="making less than this share of the expert's planned "
                                      "progress within the stall window is a stall too")
    gripper_s: float = option(0.6, min=0.05, max=10.0,
                              help="take over when the gripper disagrees with the expert's "
                                   "this long")
    min_correction_s: float = option(1.0, min=0.0, max=30.0,
                                     help="the expert drives at least this long")
    max_correction_s: float = option(3.0, min=0.1, max=60.0,
                                     help="the expert hands back after this long at the latest")


class ExpertCorrector(ScriptedSource):
    """A teleop source that corrects a policy run with the scripted expert.

    Args:
        robot: the station's sim robot (its world is read on the loop's thread).
        settings: when to take over and hand back.
        expert: the expert's speeds and heights.
    """

    def __init__(self, robot: SimRobot, settings: CorrectorSettings | None = None,
                 expert: ExpertSettings | None = None) -> None:
        super().__init__(robot, expert)
        self.correction = settings or CorrectorSettings()
        self.takeovers = 0
        self.reasons: collections.Counter[str] = collections.Counter()
        self._help_asked = False
        self._start_episode()

    def _start_episode(self) -> None:
        self._active = False
        self._since = 0.0
        self._phase_at_takeover = ""
        self._prev_pos: np.ndarray | None = None
        self._planned = np.zeros(3)
        self._planned_gripper: float | None = None
        self._pairs: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque()
        self._stall_pairs: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque()
        self._path: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self._gripper_since: float | None = None
        self._last_t: float | None = None

    # ----- ActionSource ----------------------------------------------------------------------
    @property
    def correcting(self) -> bool:
        """The expert has control now."""
        return self._active

    def reset(self, instruction: str) -> None:
        super().reset(instruction)
        self._start_episode()

    def wants_takeover(self) -> bool:
        self._help_asked = True  # a run paused for help: take over on the next tick
        return True

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        if self._last_t is not None and now - self._last_t > 2.5 * dt:
            self._start_episode()  # a pause or a new episode: measure afresh
        self._last_t = now
        pos = _tcp(obs)
        reason = self._watch(obs, pos, now, dt)
        if not self._active and reason:
            self._active, self._since = True, now
            self._phase_at_takeover = self._expert.phase if self._expert is not None else ""
            self.takeovers += 1
            self.reasons[reason] += 1
            self.flush()  # the expert's motion ramps up from rest
            log.debug("corrector takes over (%s) at t=%.2f", reason, now)
        elif self._active and self._may_hand_back(now):
            self._active = False
            self._reset_watch()
            log.debug("corrector hands back at t=%.2f", now)
        p = super().propose(obs, now, dt)
        self._planned = np.asarray(p.action[:3], np.float64) if p.action is not None \
            else np.zeros(3)
        self._planned_gripper = float(p.action[6]) if p.action is not None else None
        self._prev_pos = pos
        if not self._active or p.action is None:
            # Not driving, or the expert is done: the policy keeps (or takes back) control.
            if self._active and p.action is None:
                self._active = False
                self._reset_watch()
            return Proposal(None, p.stamp, p.reason or "watching the policy")
        return Proposal(p.action, p.stamp, takeover=True)

    # ----- the watch -------------------------------------------------------------------------
    def _reset_watch(self) -> None:
        self._pairs.clear()
        self._stall_pairs.clear()
        self._path.clear()
        self._gripper_since = None

    def _watch(self, obs: Observation, pos: np.ndarray | None, now: float, dt: float) -> str:
        """Why to take over now ('' while the policy does fine or the expert drives)."""
        if self._help_asked:
            self._help_asked = False
            return "help"
        expert = self._expert
        if self._active or pos is None or expert is None or expert.done:
            return ""
        c = self.correction
        if self._prev_pos is not None:
            self._pairs.append((pos - self._prev_pos, self._planned))
            while len(self._pairs) > max(1, int(round(c.window_s / dt))):
                self._pairs.popleft()
            executed = np.sum([e for e, _ in self._pairs], axis=0)
            planned = np.sum([p for _, p in self._pairs], axis=0)
            if path_drift(executed, planned) > c.drift_m:
                return "drift"
            self._stall_pairs.append(self._pairs[-1])
            stall_n = max(1, int(round(c.stall_s / dt)))
            while len(self._stall_pairs) > stall_n:
                self._stall_pairs.popleft()
            if len(self._stall_pairs) == stall_n and too_little_progress(
                    np.sum([e for e, _ in self._stall_pairs], axis=0),
                    np.sum([p for _, p in self._stall_pairs], axis=0),
                    c.min_progress, 2.0 * c.drift_m):
                return "stall"
        self._path.append((now, pos))
        while self._path and now - self._path[0][0] > c.stall_s:
            self._path.popleft()
        if now - self._path[0][0] >= c.stall_s - 0.5 * dt and expert.phase not in STILL_PHASES:
            moved = max(float(np.linalg.norm(p - self._path[0][1])) for _, p in self._path)
            if moved < c.stall_m:
                return "stall"
        sent = self._sent_gripper()
        if self._planned_gripper is not None and sent is not None and \
                (sent >= 0.5) != (self._planned_gripper >= 0.5):
            self._gripper_since = now if self._gripper_since is None else self._gripper_since
            if now - self._gripper_since >= c.gripper_s:
                return "gripper"
        else:
            self._gripper_since = None
        return ""

    def _may_hand_back(self, now: float) -> bool:
        c = self.correction
        driven = now - self._since
        if driven < c.min_correction_s:
            return False
        phase = self._expert.phase if self._expert is not None else ""
        return phase != self._phase_at_takeover or driven >= c.max_correction_s

    def _sent_gripper(self) -> float | None:
        last = getattr(self.robot, "last_sent", None)
        if last is None:
            return None
        value = float(np.asarray(last).reshape(-1)[-1])
        return value if math.isfinite(value) else None


def path_drift(executed: np.ndarray, planned: np.ndarray) -> float:
    """How far ``executed`` (a displacement, metres) left the direction of ``planned``.

    The part of ``executed`` across the planned direction, together with any part that goes
    backwards along it; progress along it, however fast or slow, is no drift. With no planned
    motion (the expert would stand still) every movement is drift.
    """
    executed = np.asarray(executed, np.float64)
    planned = np.asarray(planned, np.float64)
    norm = float(np.linalg.norm(planned))
    if norm < 1e-9:
        return float(np.linalg.norm(executed))
    u = planned / norm
    along = float(executed @ u)
    across = float(np.linalg.norm(executed - along * u))
    return math.hypot(across, min(along, 0.0))


def too_little_progress(executed: np.ndarray, planned: np.ndarray, share: float,
                        meaningful_m: float) -> bool:
    """Whether ``executed`` made less than ``share`` of the progress along ``planned`` while the
    expert planned to move further than ``meaningful_m`` (a short plan, near a target where the
    expert itself slows down, is never a stall)."""
    planned = np.asarray(planned, np.float64)
    norm = float(np.linalg.norm(planned))
    if norm <= meaningful_m:
        return False
    return float(np.asarray(executed, np.float64) @ planned) / norm < share * norm


def _tcp(obs: Observation) -> np.ndarray | None:
    pos = obs.state.get("ee_pos")
    if pos is None:
        return None
    p = np.asarray(pos, np.float64).reshape(-1)[:3]
    return p if p.size == 3 and np.all(np.isfinite(p)) else None
