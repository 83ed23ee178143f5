"""Action sources and the arbiter that picks one per tick.

An :class:`ActionSource` is anything that proposes actions: a teleop device with its mapping, the
scripted expert, a policy runner. Sources never block the loop: ``observe`` and ``propose`` only
read and write in-memory state; device I/O and inference run on the sources' own threads.

The arbiter applies one rule set for every source:

* TELEOP mode: the teleop source drives.
* POLICY mode: the policy drives, unless the teleop source reports ``takeover`` (the operator holds
  the intervention button or pushes the device past its threshold), in which case the step is an
  INTERVENTION. While the operator drives, the policy keeps proposing in the *shadow*
  (:meth:`ActionSource.shadow`): its proposal is recorded beside the operator's action (DAgger
  labels), never executed. When the takeover ends, the policy's queue is dropped and it
  re-plans from the current observation (:meth:`ActionSource.handback`), so nothing planned
  before or during the takeover runs afterwards. The first tick of each takeover and of each
  hand-back carries ``extras["handover"]`` (``"takeover"`` / ``"handback"``).
* A proposal older than its timeout holds the robot (watchdog), whatever the source says.
* A proposal stamped in the future (beyond :data:`~vla_studio.core.clock.FUTURE_STAMP_TOLERANCE_S`)
  or with a non-finite stamp is invalid: it holds and raises ``STAMP_INVALID``. A stamp from the
  future is a clock bug, never "always fresh".

Time rule for every source: ``Proposal.stamp`` is **host monotonic time** (``time.monotonic()``
in this process) of the input the action is based on: the device reading, the observation a
policy chunk was inferred from. A source whose input carries another clock (a remote policy
server, a device's own timestamp) converts it *on receipt* with
:func:`~vla_studio.core.clock.host_stamp_from_remote` (or stamps the receipt time), and never
passes a foreign clock through.
"""

from __future__ import annotations

import abc
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from vla_studio.core.clock import FUTURE_STAMP_TOLERANCE_S
from vla_studio.core.safety import SafetyFlag, SafetyLimits
from vla_studio.core.session import ControlMode
from vla_studio.core.types import Observation, SourceKind


@dataclass(frozen=True)
class Proposal:
    """What a source wants to do this tick.

    Attributes:
        action: the requested action, or None to hold (deadman released, no chunk yet, ...).
        stamp: host monotonic time (``time.monotonic()``) of the input this action is based on
            (device reading, the observation a chunk was inferred from); the arbiter's watchdog
            compares it with the tick time. Remote clocks are converted on receipt (see the
            module's time rule); a stamp in the future is invalid and holds.
        reason: why there is no action, shown to the operator.
        takeover: teleop only: the operator asks to override the policy (intervention).
        extras: arrays to record with the step (``policy_action``, ``confidence``, ...).
    """

    action: np.ndarray | None
    stamp: float
    reason: str = ""
    takeover: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)


class ActionSource(abc.ABC):
    """Something that proposes actions to the control loop. Methods are called on the loop thread
    and must return quickly (well under a millisecond)."""

    kind: SourceKind = SourceKind.TELEOP

    def reset(self, instruction: str) -> None:
        """A new episode starts with this language instruction."""

    def observe(self, obs: Observation) -> None:
        """The latest observation, delivered every tick before :meth:`propose`."""

    @abc.abstractmethod
    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        """The action for this tick. ``dt`` is the control period in seconds."""

    def flush(self) -> None:
        """Drop queued actions (e-stop, pause, handover)."""

    def shadow(self, obs: Observation, now: float, dt: float) -> Proposal | None:
        """Policy sources: what the source would do now while someone else drives (recorded,
        never executed); no side effect on the run (no fallback, no step budget). None: nothing
        to say."""
        return None

    def handback(self, obs: Observation) -> None:
        """Policy sources: control comes back after a takeover; drop every plan and re-plan
        from ``obs`` (the observation of this tick)."""
        self.flush()

    def wants_takeover(self) -> bool:
        """Teleop sources: the operator asks for control now (read while a run is paused for
        help; no side effects)."""
        return False

    def close(self) -> None:
        """Stop threads the source owns."""


@dataclass(frozen=True)
class Decision:
    """The arbiter's choice for one tick (action None = hold)."""

    action: np.ndarray | None
    source: SourceKind
    reason: str = ""
    flags: SafetyFlag = SafetyFlag.NONE
    extras: Mapping[str, Any] = field(default_factory=dict)


class SourceArbiter:
    """Chooses between the teleop and policy sources and applies the staleness watchdogs.

    Sources may be swapped from any thread (the GUI picks a device or loads a policy); the loop
    reads both references once per tick.
    """

    def __init__(self, limits: SafetyLimits) -> None:
        self._teleop_timeout = limits.teleop_timeout_ms / 1000.0
        self._policy_timeout = limits.policy_timeout_ms / 1000.0
        self._lock = threading.Lock()
        self._teleop: ActionSource | None = None
        self._policy: ActionSource | None = None
        self._intervening = False  # the last POLICY-mode decision was an intervention
        self.takeovers = 0  # takeovers since the arbiter was made (tests, benchmarks)

    @property
    def teleop(self) -> ActionSource | None:
        return self._teleop

    @property
    def policy(self) -> ActionSource | None:
        return self._policy

    def set_teleop(self, source: ActionSource | None) -> ActionSource | None:
        """Install the teleop source; returns the previous one (the caller closes it)."""
        with self._lock:
            old, self._teleop = self._teleop, source
        return old

    def set_policy(self, source: ActionSource | None) -> ActionSource | None:
        """Install the policy source; returns the previous one (the caller closes it)."""
        with self._lock:
            old, self._policy = self._policy, source
        return old

    def sources(self) -> list[ActionSource]:
        return [s for s in (self._teleop, self._policy) if s is not None]

    def reset(self, instruction: str) -> None:
        for s in self.sources():
            s.reset(instruction)

    def flush(self) -> None:
        self._intervening = False
        for s in self.sources():
            s.flush()

    @property
    def intervening(self) -> bool:
        """The operator had control at the last POLICY-mode tick."""
        return self._intervening

    def takeover_requested(self) -> bool:
        """The teleop source asks for control now (a run paused for help may resume)."""
        teleop = self._teleop
        return teleop is not None and teleop.wants_takeover()

    def observe(self, obs: Observation) -> None:
        for s in self.sources():
            s.observe(obs)

    def decide(self, mode: ControlMode, obs: Observation, now: float, dt: float) -> Decision:
        teleop, policy = self._teleop, self._policy
        if mode == ControlMode.TELEOP:
            self._intervening = False
            if teleop is None:
                return Decision(None, SourceKind.HOLD, "no teleop device")
            return self._checked(teleop.propose(obs, now, dt), SourceKind.TELEOP,
                                 self._teleop_timeout, SafetyFlag.TELEOP_STALE, now)
        if teleop is not None:
            t = teleop.propose(obs, now, dt)
            if t.takeover:
                return self._intervention(t, policy, obs, now, dt)
        handback = self._intervening
        self._intervening = False
        if policy is None:
            return Decision(None, SourceKind.HOLD, "no policy loaded")
        if handback:
            policy.handback(obs)  # re-plan from this observation; nothing older runs
        decision = self._checked(policy.propose(obs, now, dt), SourceKind.POLICY,
                                 self._policy_timeout, SafetyFlag.POLICY_STALE, now)
        if handback:
            decision = replace(decision, extras={**decision.extras, "handover": "handback"})
        return decision

    def _intervention(self, t: Proposal, policy: ActionSource | None, obs: Observation,
                      now: float, dt: float) -> Decision:
        """The operator drives; the policy's shadow proposal goes into the step's extras."""
        extras: dict[str, Any] = {}
        if policy is not None:
            shadow = policy.shadow(obs, now, dt)
            if shadow is not None:
                extras.update(shadow.extras)
                if shadow.action is not None:
                    extras.setdefault("policy_action", shadow.action)
        extras.update(t.extras)
        if not self._intervening:
            self._intervening = True
            self.takeovers += 1
            extras["handover"] = "takeover"
        return self._checked(replace(t, extras=extras), SourceKind.INTERVENTION,
                             self._teleop_timeout, SafetyFlag.TELEOP_STALE, now)

    @staticmethod
    def _checked(p: Proposal, kind: SourceKind, timeout: float, stale: SafetyFlag,
                 now: float) -> Decision:
        stamp = p.stamp
        # Sources stamp on their own threads, possibly after the tick started: the future is
        # measured against the clock now, not against the tick's start.
        latest = max(now, time.monotonic()) + FUTURE_STAMP_TOLERANCE_S
        if not math.isfinite(stamp) or stamp > latest:
            ahead = "not a number" if not math.isfinite(stamp) else \
                f"{(stamp - time.monotonic()) * 1000.0:.0f} ms in the future"
            return Decision(None, SourceKind.HOLD,
                            f"{kind.value} input has an invalid time stamp ({ahead}): the source "
                            "must stamp with the host monotonic clock", SafetyFlag.STAMP_INVALID,
                            p.extras)
        if now - stamp > timeout:
            age_ms = (now - stamp) * 1000.0
            return Decision(None, SourceKind.HOLD, f"{kind.value} input stale ({age_ms:.0f} ms)",
                            stale, p.extras)
        if p.action is None:
            return Decision(None, SourceKind.HOLD, p.reason or f"{kind.value}: no action", extras=p.extras)
        return Decision(p.action, kind, extras=p.extras)


class FixedActionSource(ActionSource):
    """Proposes the same action every tick with a fresh stamp (dry runs, tests, benchmarks).

    ``set_action`` may be called from any thread; ``takeover`` marks it as an intervention.
    """

    def __init__(self, action: np.ndarray | None, kind: SourceKind = SourceKind.TELEOP,
                 takeover: bool = False) -> None:
        self.kind = kind
        self._action = None if action is None else np.asarray(action, dtype=np.float64)
        self.takeover = takeover
        self.flushes = 0

    def set_action(self, action: np.ndarray | None) -> None:
        self._action = None if action is None else np.asarray(action, dtype=np.float64)

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        return Proposal(self._action, now, "no action set" if self._action is None else "",
                        self.takeover)

    def flush(self) -> None:
        self.flushes += 1
