"""The policy runner in lock-step: inference on the tick that needs a chunk, simulation waiting.

In real time (:class:`~vla_studio.policies.runner.PolicyRunner`) the model infers on the
runner's client thread while the loop ticks on; a chunk arrives some ticks after its
observation and its first actions are skipped. In lock-step nothing may run beside the
simulation, so :class:`LockstepPolicyRunner` infers *synchronously*, inside ``propose`` of the
tick whose schedule asks for a new chunk, and the simulated clock does not move meanwhile: the
chunk is in hand for the very tick it was computed from (zero latency in simulated time), and
the run is deterministic.

```
 driver thread, tick at t:  observe(obs) -> propose(obs, t):
                              schedule says a chunk is due at t? -> policy.infer(obs)
                                (child process, same socket protocol; host time is measured)
                              -> ChunkSchedule.action_at(t)  (chunk / replan / ensemble)
```
Everything else is the real runner's: hosts (a child process by default), the station-fit
check, confidence and its low-confidence fallback, crash/hang handling (a hung child still
times out, is killed and restarted), flushes on e-stop, pause and reset. ``round_trip_ms``
holds the measured host time of each inference (request, model, answer).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from vla_studio.core.arbiter import Proposal
from vla_studio.core.types import Observation
from vla_studio.policies.hosts import PolicyHost, make_host
from vla_studio.policies.loaders import policy_id as source_policy_id
from vla_studio.policies.runner import PolicyRunner, RunnerSettings
from vla_studio.policies.runner_stats import LatencyWindow
from vla_studio.policies.station_fit import StationOffer

if TYPE_CHECKING:
    from vla_studio.station import Station


class LockstepPolicyRunner(PolicyRunner):
    """A :class:`PolicyRunner` for lock-step stations (see the module docstring).

    Args:
        host, offer, settings, events, session, policy_id: as for :class:`PolicyRunner`.
        clock: the lock-step station's clock (``now()`` is simulated time).
    """

    def __init__(self, host: PolicyHost, offer: StationOffer | None,
                 settings: RunnerSettings | None = None, *, clock, events=None, session=None,
                 policy_id: str = "") -> None:
        super().__init__(host, offer, settings, events=events, session=session,
                         policy_id=policy_id, clock=clock.now)
        self.round_trip_ms = LatencyWindow(4096)

    @classmethod
    def for_station(cls, source: str, station: "Station", settings: RunnerSettings | None = None,
                    *, api_key: str | None = None, trusted: bool = False) -> "LockstepPolicyRunner":
        """A lock-step runner for ``source`` on a lock-step ``station`` (call :meth:`start`)."""
        s = settings or RunnerSettings()
        host = make_host(source, where=s.where, trusted=trusted, api_key=api_key,
                         request_timeout=s.request_timeout_s, threads=s.threads)
        return cls(host, StationOffer.from_station(station), s, clock=station.clock,
                   events=station.events, session=station.session,
                   policy_id=source_policy_id(source))

    def _start_client(self) -> None:
        """No client thread: :meth:`propose` infers on the loop's (the driver's) thread."""

    def _lead_s(self) -> float:
        # The simulation waits for the model: a chunk is in hand for the tick it was asked on.
        return 0.0

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        self._infer_if_due(obs, now)
        return super().propose(obs, now, dt)

    def shadow(self, obs: Observation, now: float, dt: float) -> Proposal | None:
        self._infer_if_due(obs, now)  # the shadow plan follows the operator's observations
        return super().shadow(obs, now, dt)

    def _infer_if_due(self, obs: Observation, now: float) -> None:
        last = self._last_propose
        if last is None or now - last > self.settings.resume_gap_s:
            self._new_segment(now)  # as the base class would, before this tick's request
        self._last_propose = now
        self._housekeeping()
        if self._due_observation() is obs:
            before = self.chunks
            t0 = time.monotonic()
            self._request(obs)
            if self.chunks > before:
                self.round_trip_ms.add((time.monotonic() - t0) * 1000.0)
