"""The policy runner: asynchronous inference feeding the control loop a timestamped action queue.

```
 control loop thread                          policy-client thread (owned by the runner)
 -------------------                          ------------------------------------------
 observe(obs) --latest obs + wake--------->   due? (mode, measured latency) -> policy.infer(obs)
                                              |  child process / remote server / in-process
                                              v
 propose(obs, now) <--action_at(now)--  ChunkSchedule (under a short lock) <-- TimedChunk
   -> Proposal(action, stamp = the tick the action was meant for, extras)
```
The loop thread only reads and writes memory under a lock held for microseconds; it never waits
for the model. The client thread does everything slow: encoding, the request, confidence,
restarting a crashed or hung model, and the session/event side of fallbacks.

Safety rules kept here (the loop's arbiter and ActionFilter add theirs):

* No action when the queue is empty: the proposal holds with the stamp of the last action in
  hand, so the arbiter's watchdog flags a stale policy; the last action is never repeated.
* A crashed, hung, disconnected or failing model holds the robot and says so on the EventBus; a
  crash or a hang also pauses the session, so a restart never resumes motion by itself.
* After any pause (``propose`` not called for ``resume_gap_s``), on ``flush`` (e-stop) and on
  ``reset`` (new episode), plans made before are dropped; answers in flight are discarded.
* Confidence below the threshold for a window of steps triggers the fallback (pause and ask for
  help by default, or hold, or hand over to the teleop device).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from vla_studio.core.arbiter import ActionSource, Proposal
from vla_studio.core.events import EventBus
from vla_studio.core.session import Session
from vla_studio.core.types import Observation, SourceKind
from vla_studio.policies.base import Policy, PolicySpec
from vla_studio.policies.chunk_schedule import ChunkSchedule, TimedChunk
from vla_studio.policies.client import PolicyTimeout
from vla_studio.policies.confidence import ConfidenceEstimator, LowConfidenceMonitor, action_scale
from vla_studio.policies.errors import PolicyConnectionError, PolicyError
from vla_studio.policies.hosts import PolicyHost, make_host
from vla_studio.policies.loaders import policy_id as source_policy_id
from vla_studio.policies.runner_recovery import ERRORS_BEFORE_PAUSE, RunnerRecovery
from vla_studio.policies.runner_settings import (FALLBACKS, LOAD_SETTINGS, RunnerSettings,
                                                 StepBudget, scaled_action)
from vla_studio.policies.runner_stats import (CLOSED, CRASHED, DISCONNECTED, ERROR, HUNG, IDLE,
                                              RUNNING, STARTING, LatencyWindow, RunnerSnapshot)
from vla_studio.policies.station_fit import StationOffer, check_fit

if TYPE_CHECKING:
    from vla_studio.station import Station

__all__ = ["ERRORS_BEFORE_PAUSE", "FALLBACKS", "PolicyRunner", "RunnerSettings"]

log = logging.getLogger(__name__)


class PolicyRunner(RunnerRecovery, ActionSource):
    """Runs one policy for the control loop (an :class:`ActionSource` of kind POLICY).

    Args:
        host: where the policy runs (see :mod:`vla_studio.policies.hosts`).
        offer: what the station provides; the policy's spec is checked against it on start.
        settings: execution settings.
        events: where run events go (``policy.*``).
        session: paused on a crash, a hang or low confidence (None: events only).
        policy_id: stored with recorded episodes.
        clock: the station's tick-time clock (host monotonic time; a lock-step station's
            simulated time, see :mod:`vla_studio.policies.lockstep_runner`).
    """

    kind = SourceKind.POLICY

    def __init__(self, host: PolicyHost, offer: StationOffer | None,
                 settings: RunnerSettings | None = None, *, events: EventBus | None = None,
                 session: Session | None = None, policy_id: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.offer = host, offer
        self._clock = clock
        self.settings = settings or RunnerSettings()
        self.events = events or EventBus()
        self.session = session
        self.policy_id = policy_id or host.label
        self._policy: Policy | None = None
        self._spec: PolicySpec | None = None
        self._lock = threading.Lock()  # guards the schedule; held for microseconds
        self._schedule: ChunkSchedule | None = None
        self._estimator = ConfidenceEstimator(self.settings.confidence_method)
        self._monitor = LowConfidenceMonitor(self.settings.confidence_threshold,
                                             self.settings.confidence_window)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Observation | None = None
        self._instruction = ""
        self._reset_pending = False
        self._restart_requested = False
        self._epoch = 0
        self._last_propose: float | None = None
        self._last_stamp: float | None = None
        self._awaiting_first = True
        self._inflight_since: float | None = None
        self._last_sent_tick = -1
        self._min_obs_t = -math.inf
        self._last_chunk: TimedChunk | None = None
        self._fallback_reason = ""
        self._fallback_pending = False
        self._step = StepBudget()
        self._pause_pending = ""  # why the client thread should pause the session
        self._consecutive_errors = 0
        self.state, self.message = STARTING, ""
        self.latency = LatencyWindow()
        self.infer_ms = LatencyWindow()
        self.chunks = self.underruns = self.skipped_stale = self.dropped_chunks = 0
        self.errors = self.restarts = self.queue_depth = 0
        self.confidence, self.confidence_method = math.nan, ""

    @classmethod
    def for_station(cls, source: str, station: "Station", settings: RunnerSettings | None = None,
                    *, api_key: str | None = None, trusted: bool = False) -> "PolicyRunner":
        """A runner for ``source`` on ``station`` (not started: call :meth:`start`)."""
        s = settings or RunnerSettings()
        host = make_host(source, where=s.where, trusted=trusted, api_key=api_key,
                         request_timeout=s.request_timeout_s, threads=s.threads)
        return cls(host, StationOffer.from_station(station), s, events=station.events,
                   session=station.session, policy_id=source_policy_id(source))

    # ----- lifecycle ---------------------------------------------------------------------------
    @property
    def spec(self) -> PolicySpec | None:
        return self._spec

    def start(self, instruction: str = "") -> PolicySpec:
        """Load the policy, check it fits the station, start the client thread.

        Blocks while the model loads (seconds): call it off the GUI thread.

        Raises:
            PolicyError: cannot load, or it does not fit (nothing has moved; all is released).
        """
        try:
            policy = self.host.open()
            if self.offer is not None:
                check_fit(policy.spec, self.offer, self.host.label, self.settings.rate_tolerance)
            policy.reset(instruction)
        except BaseException:
            self.host.close()
            self.state = CLOSED
            raise
        self._policy, self._spec, self._instruction = policy, policy.spec, instruction
        self._schedule = ChunkSchedule(self.settings.mode, 1.0 / policy.spec.control_rate_hz,
                                       self.settings.replan_every, self.settings.ensemble_decay)
        self._estimator = ConfidenceEstimator(
            self.settings.confidence_method,
            action_scale(policy.spec.normalization, policy.spec.action_space.dim))
        self.state = IDLE
        self._stopping.clear()
        self._start_client()
        self.events.emit("policy.loaded", f"Policy loaded ({self.host.label}).",
                         policy_id=self.policy_id)
        return policy.spec

    def _start_client(self) -> None:
        """Start the client thread that infers (a lock-step runner infers on the loop's)."""
        self._thread = threading.Thread(target=self._run, name="policy-client", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the client thread, then release the model (kills a hung child)."""
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=1.0)
            if thread.is_alive():  # stuck in a request: end it from here
                self.host.kill()
                thread.join(timeout=self.settings.request_timeout_s + 1.0)
            if thread.is_alive():
                log.error("policy client thread did not stop (an in-process model is hung)")
        self.host.close()
        self.state = CLOSED

    def close(self) -> None:
        self.stop()

    # ----- ActionSource (control-loop thread; never blocks) ------------------------------------
    def reset(self, instruction: str) -> None:
        self._instruction = instruction
        self._reset_pending = True
        self.flush()

    def observe(self, obs: Observation) -> None:
        self._latest = obs
        self._wake.set()

    def flush(self, since: float | None = None) -> None:
        """Drop every plan and every answer in flight; only observations from ``since`` (default:
        now) on may be sent, so a plan made before an e-stop never runs after its reset."""
        with self._lock:
            if self._schedule is not None:
                self._schedule.flush()
            self._epoch += 1
            self._min_obs_t = self._clock() if since is None else since
        self._awaiting_first = True
        self._wake.set()

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        last, self._last_propose = self._last_propose, now
        if last is None or now - last > self.settings.resume_gap_s:
            self._new_segment(now)
        if self._fallback_reason:
            return Proposal(None, now, self._fallback_reason)
        if self._step.exhausted:
            return Proposal(None, now, "stepped once: press Start to continue")
        if self.state in (STARTING, CRASHED, HUNG, DISCONNECTED, ERROR, CLOSED):
            return Proposal(None, now, self.message or f"policy {self.state}")
        inflight = self._inflight_since
        if inflight is not None and now - inflight > self.settings.request_timeout_s:
            return Proposal(None, now, f"the model has not answered for {now - inflight:.1f} s")
        with self._lock:
            sched = self._schedule
            if sched is None:
                return Proposal(None, now, "policy not started")
            chosen = sched.action_at(now)
            self.queue_depth = sched.depth(now)
            end = sched.covered_until()
        if chosen is None:
            if self._awaiting_first:
                return Proposal(None, now, "waiting for the policy's first chunk")
            self.underruns += 1
            stamp = min(now, end) if end is not None else (self._last_stamp or now)
            return Proposal(None, stamp, "policy queue empty (underrun): holding")
        self.confidence, self.confidence_method = chosen.confidence, chosen.chunk.method
        if self._monitor.update(chosen.confidence):
            self._fallback_reason = (f"policy confidence below {self._monitor.threshold:.2f} for "
                                     f"{self._monitor.window} steps ({chosen.chunk.method})")
            self._fallback_pending = True
            self._wake.set()
            return Proposal(None, now, self._fallback_reason)
        proposed = np.array(chosen.action, dtype=np.float64)
        action = scaled_action(proposed, self._spec.action_space.kind if self._spec else "",
                               obs.state, self.settings.speed_scale)
        self._last_stamp = stamp = min(chosen.target_time, now)
        extras = {**self._extras(chosen), "policy_action": proposed}
        if self._step.take():  # the last action of a step: the client thread pauses the run
            self._pause_pending = "stepped once"
            self._wake.set()
        return Proposal(action, stamp, extras=extras)

    def shadow(self, obs: Observation, now: float, dt: float) -> Proposal | None:
        """The action the policy would take now while the operator drives (a takeover): its
        planned action and confidence, for the step's labels. The model keeps planning on the
        latest observations; nothing here counts towards the low-confidence fallback or a step
        budget, and nothing proposed here is ever executed (see :meth:`handback`)."""
        last, self._last_propose = self._last_propose, now
        if last is None or now - last > self.settings.resume_gap_s:
            self._new_segment(now)
        if self.state not in (IDLE, RUNNING):
            return None
        with self._lock:
            sched = self._schedule
            chosen = sched.action_at(now) if sched is not None else None
        if chosen is None:
            return None
        return Proposal(np.array(chosen.action, dtype=np.float64), min(chosen.target_time, now),
                        extras=self._extras(chosen))

    def handback(self, obs: Observation) -> None:
        """The operator let go: drop every plan (those made before and during the takeover)
        and re-plan from ``obs``; a low-confidence fallback is over (the operator helped)."""
        self.flush(since=obs.t)
        self._monitor.reset()
        self._fallback_reason = ""
        self._fallback_pending = False

    def _extras(self, chosen) -> dict:
        return {"policy_action": np.array(chosen.action, dtype=np.float64),
                "confidence": chosen.confidence, "confidence_method": chosen.chunk.method,
                "policy_latency_ms": chosen.chunk.latency_s * 1000.0,
                "chunk_index": chosen.index, "chunk_seq": chosen.chunk.seq}

    def _new_segment(self, now: float) -> None:
        """The run (re)started after a pause: old plans and an old fallback no longer apply."""
        self.flush(since=now)
        self._monitor.reset()
        self._fallback_reason = ""
        self._fallback_pending = False

    # ----- controls (any thread) ---------------------------------------------------------------
    def restart(self) -> None:
        """Restart the model (after a crash or a hang) on the client thread."""
        self._restart_requested = True
        self._wake.set()

    def clear_fallback(self) -> None:
        """Let a run held by the low-confidence fallback continue."""
        self._monitor.reset()
        self._fallback_reason = ""

    def step_once(self, actions: int | None = None) -> None:
        """Execute the next ``actions`` policy actions (default: one chunk's worth), then hold
        and pause the session; :meth:`run_freely` (the panel's Start) lifts it."""
        horizon = self._spec.chunk_size if self._spec is not None else 1
        self._step.arm(actions or horizon)

    def run_freely(self) -> None:
        """Undo :meth:`step_once`: the run continues until paused."""
        self._step.clear()

    @property
    def inferring(self) -> bool:
        """A request is with the model now (benchmarks time stops against it)."""
        return self._inflight_since is not None

    @property
    def stepping(self) -> bool:
        """A step-once budget is in force."""
        return self._step.armed

    def apply(self, settings: RunnerSettings) -> None:
        """Use ``settings`` from now on (any thread). Speed, threshold and fallback change at
        once; a new chunk mode drops the plans in hand; ``where`` and ``threads`` keep their
        values until the next load."""
        old = self.settings
        settings = replace(settings, **{k: getattr(old, k) for k in LOAD_SETTINGS})
        self.settings = settings
        if (settings.confidence_threshold, settings.confidence_window) != \
                (old.confidence_threshold, old.confidence_window):
            self._monitor = LowConfidenceMonitor(settings.confidence_threshold,
                                                 settings.confidence_window)
        spec = self._spec
        if spec is None:
            return
        if settings.confidence_method != old.confidence_method:
            self._estimator = ConfidenceEstimator(
                settings.confidence_method,
                action_scale(spec.normalization, spec.action_space.dim))
        if (settings.mode, settings.replan_every, settings.ensemble_decay) != \
                (old.mode, old.replan_every, old.ensemble_decay):
            with self._lock:  # like a flush: nothing planned under the old mode runs
                self._schedule = ChunkSchedule(settings.mode, 1.0 / spec.control_rate_hz,
                                               settings.replan_every, settings.ensemble_decay)
                self._epoch += 1
                self._min_obs_t = self._clock()
            self._awaiting_first = True
            self._wake.set()

    def planned_actions(self) -> np.ndarray:
        """What the running chunk still plans to do, ``[n, D]`` (predicted-path overlay)."""
        with self._lock:
            if self._schedule is None:
                return np.zeros((0, 0))
            return self._schedule.planned(self._clock())

    def snapshot(self) -> RunnerSnapshot:
        return RunnerSnapshot(
            self.state, self._fallback_reason or self.message, self.host.label,
            self.settings.mode, self.chunks, self.latency.percentile(50),
            self.latency.percentile(95), self.latency.percentile(99), self.infer_ms.percentile(50),
            self.queue_depth, self.underruns, self.skipped_stale, self.dropped_chunks, self.errors,
            self.restarts, self.confidence, self.confidence_method,
            self.settings.fallback if self._fallback_reason else "")

    # ----- the client thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=0.1)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self._housekeeping()
                obs = self._due_observation()
                if obs is not None:
                    self._request(obs)
            except Exception:  # never let the thread die silently: the run would just hold
                log.exception("policy client failed")
                self._fail(ERROR, "the policy client failed (see the log); restart the policy")

    def _demanded(self) -> bool:
        last = self._last_propose
        return last is not None and self._clock() - last < self.settings.resume_gap_s

    def _due_observation(self) -> Observation | None:
        obs, policy, spec = self._latest, self._policy, self._spec
        if obs is None or policy is None or spec is None or self.state not in (IDLE, RUNNING,
                                                                               DISCONNECTED):
            return None
        if (not self._demanded() or obs.tick == self._last_sent_tick or self._fallback_reason
                or obs.t < self._min_obs_t):
            return None
        with self._lock:
            due = self._schedule.next_request_due(self._lead_s()) if self._schedule else math.inf
        if obs.t + 1e-6 < due:
            return None
        for cam in spec.cameras:
            frame = obs.frames.get(cam)
            if frame is None or frame.color is None:
                self.message = f"waiting for camera '{cam}'"
                return None
            if obs.t - frame.t_capture > self.settings.max_frame_age_s:
                self.message = f"camera '{cam}' is stale ({obs.t - frame.t_capture:.1f} s old)"
                return None
        missing = [k for k in spec.state_features if k not in obs.state]
        if missing:
            self.message = f"robot state {', '.join(missing)} missing"
            return None
        if self.message.startswith(("waiting for camera", "camera ", "robot state")):
            self.message = ""
        return obs

    def _lead_s(self) -> float:
        dt = self._schedule.dt if self._schedule else 0.05
        p90 = self.latency.percentile(90)
        return dt + (p90 / 1000.0 if math.isfinite(p90) else dt)

    def _request(self, obs: Observation) -> None:
        policy = self._policy
        assert policy is not None and self._schedule is not None
        with self._lock:  # atomic with flush(): an observation from before it is never sent
            if obs.t < self._min_obs_t:
                return
            epoch = self._epoch
            self._schedule.note_request(obs.t)
        self._last_sent_tick = obs.tick
        self._inflight_since = self._clock()
        try:
            chunk = policy.infer(obs)
            n = self.settings.confidence_samples
            if n > 1 and chunk.confidence is None and "samples" not in chunk.extras:
                draws = [chunk.actions] + [policy.infer(obs).actions for _ in range(n - 1)]
                chunk = type(chunk)(chunk.actions, None, chunk.t_observation, chunk.t_start,
                                    time.monotonic(), {**chunk.extras, "samples": np.stack(draws)})
        except PolicyTimeout as exc:
            self._on_hung(exc)
            return
        except PolicyConnectionError as exc:
            self._on_connection_error(exc)
            return
        except Exception as exc:  # a policy bug or a protocol error: counted, paused if repeated
            self._on_error(exc)
            return
        finally:
            self._inflight_since = None
        received = self._clock()
        self._consecutive_errors = 0
        if self.state == DISCONNECTED:
            self.events.emit("policy.reconnected", f"Policy server reachable again ({self.host.label}).")
        self.state, self.message = RUNNING, ""
        timing = chunk.extras.get("server_timing", {})
        self.infer_ms.add(float(timing.get("infer_ms", chunk.latency_ms)))
        self.latency.add((received - obs.t) * 1000.0)
        self.chunks += 1
        dt = self._schedule.dt
        conf, method = self._estimator.estimate(chunk, obs.t, dt, self._last_chunk)
        named = chunk.extras.get("confidence_method")
        if method == "policy" and isinstance(named, str) and named:
            method = named  # the policy says how it knows (e.g. token_probability)
        timed = TimedChunk(np.asarray(chunk.actions, np.float64), conf, obs.t, dt, received,
                           self.chunks, method)
        self._last_chunk = timed
        with self._lock:
            if epoch != self._epoch:  # flushed while in flight: an old plan, never executed
                self.dropped_chunks += 1
                return
            passed = max(0, math.ceil((received - obs.t) / dt - 0.05))
            self._schedule.add(timed, received)
            self._awaiting_first = False  # from now on an empty queue is an underrun
        if passed >= timed.horizon:
            self.dropped_chunks += 1
            self.message = (f"chunks arrive too late: {(received - obs.t) * 1000:.0f} ms for a "
                            f"chunk of {timed.horizon} x {dt * 1000:.0f} ms; use a longer chunk "
                            "or a faster model")
        else:
            self.skipped_stale += passed

    def _housekeeping(self) -> None:
        if self._reset_pending and self._policy is not None and self.state in (IDLE, RUNNING):
            self._reset_pending = False
            try:
                self._policy.reset(self._instruction)
            except PolicyError as exc:
                self._on_error(exc)
            self._last_chunk = None
        if self._fallback_pending:
            self._fallback_pending = False
            self._run_fallback()
        if self._pause_pending:
            why, self._pause_pending = self._pause_pending, ""
            if self.session is not None:
                self.session.pause(why)
            self.events.emit("policy.stepped", "Stepped once: the run is paused; Start "
                             "continues, Step once runs the next chunk.")
        if self._restart_requested:
            self._restart_requested = False
            self._restart_model("restart requested")
        elif self.state not in (CRASHED, CLOSED, STARTING) and not self.host.alive():
            self._fail(CRASHED, f"the policy process {self.host.exit_description()}: the robot "
                       "holds; restart the policy to continue", kind="policy.crashed")
