"""Supervised policy runs on one station: load, start, pause, step, stop, finish; the run log and
the task's live verdict. The Qt-free model the policy panel is a view of.

```
 panel (GUI thread)            jobs thread (panel-owned)          core threads
 ------------------            -------------------------          ------------
 Load  --submit-->             load(): runner.start() (seconds)   policy-client, child process
 Start --submit-->             start(): set_mode(POLICY), new run (scene reset, recorder) or
                               resume; session.start()           control loop drives the runner
 Pause / settings (direct)     -                                  session.pause / runner.apply
 STOP (direct, latch.trigger)  -                                  loop holds + flushes at once
 latch / session / event bus listeners (any thread) --> RunLog (stops, resets, pauses, help)
 timer --poll()--> clamp counts, the task's verdict, auto-finish  --> RunLog
```
Calls that may block (loading, a scene reset, the recorder's start and stop) are meant for a
worker thread; :meth:`pause`, :meth:`apply` and :meth:`poll` return at once and may be called
from the GUI thread. The stop never goes through here: it is the latch's, from any thread.

A *run* starts with Start (or Step once) while none is active: the scene is reset for the
instruction (a simulator places its objects) and, when a recorder is given and recording is
asked for, the run is recorded as a policy episode. Start while a run is paused resumes it.
Finish ends it: the episode is saved with the robot's verdict (or the operator's), and the
outcome goes in the log.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Callable

from vla_studio.core.events import AppEvent
from vla_studio.core.session import ControlMode, RunState, SessionError, SessionState
from vla_studio.data.success_monitor import SuccessMonitor, TaskVerdict
from vla_studio.policies.base import PolicySpec
from vla_studio.policies.errors import PolicyError
from vla_studio.policies.run_log import (CLAMP, ERROR, HELP, OUTCOME, PAUSE, POLICY, RESET,
                                         RESUME, START, STOP, VERDICT, RunLog)
from vla_studio.policies.runner import PolicyRunner, RunnerSettings

if TYPE_CHECKING:
    from vla_studio.data.recorder import Recorder
    from vla_studio.station import Station

log = logging.getLogger(__name__)

# Safety counters that mean "the filter changed what the policy asked for".
CLAMP_FLAGS = ("clipped_workspace", "capped_delta", "capped_velocity", "clipped_joint_limits",
               "gate_rejected", "rejected_nonfinite", "rejected_shape")
CLAMP_SUMMARY_S = 2.0  # clamps are summarised at most this often (they can come every tick)
_POLICY_EVENTS = {"policy.help": HELP, "policy.crashed": ERROR, "policy.hung": ERROR,
                  "policy.error": ERROR, "policy.disconnected": ERROR,
                  "policy.reconnected": POLICY, "policy.restarted": POLICY,
                  "policy.stepped": PAUSE}
# Pauses the log tells through their own lines (a stop, a reset, help, a step, a finish).
_TOLD_ELSEWHERE = ("e-stop", "policy confidence", "stepped once", "run finished")


class SupervisorError(RuntimeError):
    """A supervisor call that cannot be done now; the message says why and what to do."""


class PolicySupervisor:
    """Policy runs on ``station`` (see the module docstring).

    Args:
        station: the station (its session, latch, loop, events and robot).
        recorder: records runs as episodes when asked (None: runs are never recorded).
        runner_factory: builds the runner (tests may pass their own); defaults to
            :meth:`PolicyRunner.for_station`.
    """

    def __init__(self, station: "Station", recorder: "Recorder | None" = None,
                 runner_factory: Callable[..., PolicyRunner] | None = None) -> None:
        self.station, self.recorder = station, recorder
        self._factory = runner_factory or PolicyRunner.for_station
        self.runner: PolicyRunner | None = None
        self.source = ""
        self.settings = RunnerSettings()
        self.log = RunLog()
        self.monitor = SuccessMonitor(station.loop, station.robot.episode_success)
        self.run_active = False
        self.recording = False  # the active run is being recorded
        self.instruction = ""
        self.auto_finish_s: float | None = None  # finish once the task has held this long
        self.last_outcome: bool | None = None
        self._verdict: tuple[bool | None, bool] = (None, False)
        self._finish_requested = False
        self._clamps = self._clamp_baseline()
        self._clamps_told_at = 0.0
        self._stops_in_run = 0
        # Stops, resets, pauses and policy events are logged as they happen, from the thread
        # that caused them (the log only appends under a short lock). The session and the latch
        # keep their listeners for good: these hold the supervisor weakly and go quiet on close.
        self._listening = threading.Event()
        self._listening.set()
        me = weakref.ref(self)
        self._unsubscribe = station.events.subscribe(_relay(me, "event", self._listening))
        station.session.add_listener(_relay(me, "session", self._listening))
        station.latch.add_listener(
            lambda tripped, ev, relay=_relay(me, "latch", self._listening): relay((tripped, ev)))

    # ----- loading (worker thread) --------------------------------------------------------------
    @property
    def spec(self) -> PolicySpec | None:
        return self.runner.spec if self.runner is not None else None

    def load(self, source: str, settings: RunnerSettings | None = None, *,
             api_key: str | None = None, trusted: bool = False) -> PolicySpec:
        """Load ``source`` (blocks for seconds: a worker thread) and make it the station's
        policy. The previous one is closed first.

        Raises:
            SupervisorError: a run is active.
            PolicyError: it cannot be loaded or does not fit the station (one line).
        """
        if self.run_active:
            raise SupervisorError("a run is active: finish it before loading another policy")
        self.unload()
        self.settings = settings or self.settings
        runner = self._factory(source, self.station, self.settings, api_key=api_key,
                               trusted=trusted)
        try:
            spec = runner.start(self.station.instruction)
        except PolicyError as exc:
            self.log.add(ERROR, f"Loading {source} failed: {exc}", logging.ERROR)
            raise
        self.station.set_policy_source(runner)
        self.runner, self.source = runner, source
        self.log.add(POLICY, f"Loaded {source} ({runner.host.label}): {describe_spec(spec)}")
        return spec

    def unload(self) -> None:
        """Pause and release the policy (its child process ends). Worker thread."""
        if self.runner is None:
            return
        if self.run_active:
            raise SupervisorError("a run is active: finish it before unloading the policy")
        if self.station.session.mode == ControlMode.POLICY:
            self.station.session.pause("policy unloaded")
        self.runner = None
        self.station.set_policy_source(None)  # closes it: the client thread and the child end
        self.log.add(POLICY, f"Unloaded {self.source}.")
        self.source = ""

    # ----- runs (worker thread: a new run resets the scene and may start the recorder) ---------
    def start(self, instruction: str, *, record: bool = False, step_once: bool = False) -> None:
        """Start a run (none active), or resume the paused one.

        Raises:
            SupervisorError: no policy, or no instruction for a new run.
            SessionError: the e-stop is latched (reset it first).
            RecorderError, LabelError: the recorder refused (disk, cameras, instruction).
        """
        runner = self.runner
        if runner is None:
            raise SupervisorError("no policy is loaded: load one first")
        session = self.station.session
        if self.station.latch.is_tripped:
            ev = self.station.latch.event
            raise SessionError(f"the e-stop is latched ({ev.reason if ev else 'stopped'}); reset "
                               "it first (Reset..., then Confirm)")
        session.set_mode(ControlMode.POLICY)  # after a teleop fallback too
        if step_once:
            runner.step_once()
        else:
            runner.run_freely()
        runner.clear_fallback()
        if self.run_active:
            session.start(ControlMode.POLICY)
            self.log.add(RESUME, "Stepping once (one chunk)." if step_once else "Resumed.")
            return
        instruction = " ".join(instruction.split())
        if not instruction:
            raise SupervisorError("type the instruction the policy should follow")
        self._begin_run(instruction, record and self.recorder is not None)
        self.log.add(START, f"Run started: {instruction!r}" +
                     (" (recorded as an episode)" if self.recording else "") +
                     (", stepping once" if step_once else ""))

    def _begin_run(self, instruction: str, record: bool) -> None:
        self.instruction = instruction
        self.last_outcome = None
        self._finish_requested = False
        self._stops_in_run = 0
        if record:
            assert self.recorder is not None
            # the operator, scene and notes of the Recorder dock; this run's instruction
            labels = dataclasses.replace(self.recorder.labels, instruction=instruction,
                                         paraphrases=(), task="")
            self.recorder.start(labels)  # resets the scene, starts the session in POLICY
        else:
            self.station.begin_episode(instruction)
            self.station.session.start(ControlMode.POLICY)
        self.recording = record
        self.run_active = True
        self.log.run_started = time.monotonic()
        self.monitor.begin(f"run-{self.log.run_started}", instruction)
        self._clamps = self._clamp_baseline()

    def finish(self, success: bool | None = None) -> bool | None:
        """End the active run: pause, save the episode (when recorded) and log the outcome.

        ``success`` None takes the robot's verdict (simulators judge their tasks), else the
        outcome stays unknown. Returns the outcome. Worker thread.
        """
        if not self.run_active:
            raise SupervisorError("no run is active")
        self.station.session.pause("run finished")
        verdict = self.monitor.poll()
        outcome = success if success is not None else verdict.success
        judged = "the operator" if success is not None else "the robot's verdict"
        if self.recording and self.recorder is not None:
            self.recorder.stop(success=outcome)
        self.run_active = self.recording = False
        self.monitor.begin(None)
        self.last_outcome = outcome
        words = {True: "SUCCESS", False: "FAILURE", None: "outcome unknown"}[outcome]
        run_s = time.monotonic() - (self.log.run_started or time.monotonic())
        self.log.add(OUTCOME, f"Run finished: {words}" + (f" ({judged})" if outcome is not None
                                                          else "") +
                     f" after {run_s:.1f} s; {self._stops_in_run} stop(s).",
                     logging.INFO if outcome else logging.WARNING)
        self.log.run_started = None
        return outcome

    # ----- quick controls (any thread) ----------------------------------------------------------
    def pause(self, reason: str = "paused by the supervisor") -> None:
        self.station.session.pause(reason)

    def apply(self, settings: RunnerSettings) -> None:
        """New run settings (speed, chunk mode, confidence threshold, fallback) from now on."""
        self.settings = settings
        if self.runner is not None:
            self.runner.apply(settings)

    @property
    def verdict(self) -> TaskVerdict:
        return self.monitor.verdict()

    # ----- the panel's timer ---------------------------------------------------------------------
    def poll(self, now: float | None = None) -> bool:
        """Turn what happened since the last call into log lines; follow the task's verdict.

        Returns True when the run should be finished now (the task held for
        :attr:`auto_finish_s`): the caller submits :meth:`finish` to its worker.
        """
        now = time.monotonic() if now is None else now
        if not self.run_active:
            return False
        self._summarise_clamps(now)
        verdict = self.monitor.poll(now)
        shown = (verdict.success, verdict.answered)
        if verdict.answered and shown != self._verdict:
            text = {True: "Task: accomplished (the robot's verdict)",
                    False: "Task: not yet accomplished",
                    None: "Task: the robot cannot judge it; you decide"}[verdict.success]
            self.log.add(VERDICT, text)
        self._verdict = shown
        due = (self.auto_finish_s is not None and verdict.success is True
               and verdict.held_s >= self.auto_finish_s and not self._finish_requested)
        if due:
            self._finish_requested = True
        return due

    def take(self, what: str, item: object) -> None:
        """A latch change, a session transition or an application event (any thread)."""
        if what == "latch":
            tripped, ev = item  # type: ignore[misc]
            if tripped:
                self._stops_in_run += int(self.run_active)
                origin = f" ({ev.origin})" if ev is not None and ev.origin else ""
                self.log.add(STOP, f"STOP{origin}: {ev.reason if ev else ''}; the robot holds",
                             logging.ERROR)
            else:
                self.log.add(RESET, "Stop reset: the run stays paused; Start resumes it")
        elif what == "session":
            snap: SessionState = item  # type: ignore[assignment]
            if snap.state == RunState.PAUSED and snap.mode == ControlMode.POLICY and \
                    self.run_active and not snap.reason.startswith(_TOLD_ELSEWHERE):
                self.log.add(PAUSE, f"Paused: {snap.reason}")
        elif what == "event":
            ev: AppEvent = item  # type: ignore[no-redef]
            kind = _POLICY_EVENTS.get(ev.kind)
            if kind is not None:
                self.log.add(kind, ev.message, ev.level)

    def _summarise_clamps(self, now: float) -> None:
        if now - self._clamps_told_at < CLAMP_SUMMARY_S:
            return
        counts = self._clamp_baseline()
        new = {k: counts[k] - self._clamps.get(k, 0) for k in counts
               if counts[k] > self._clamps.get(k, 0)}
        if new:
            self._clamps, self._clamps_told_at = counts, now
            parts = ", ".join(f"{k.replace('_', ' ')} x{n}" for k, n in sorted(new.items()))
            self.log.add(CLAMP, f"Safety filter: {parts}", logging.WARNING)

    def _clamp_baseline(self) -> dict[str, int]:
        counts = self.station.loop.counters.snapshot()
        return {k: int(counts.get(k, 0)) for k in CLAMP_FLAGS}

    def close(self) -> None:
        """Stop listening (the window closes); the station closes the runner."""
        self._listening.clear()
        self._unsubscribe()


def describe_spec(spec: PolicySpec) -> str:
    """The policy's spec in one line (cameras, image size, state, actions, rate, chunk)."""
    state = ", ".join(f"{k}[{'x'.join(str(d) for d in f.shape)}]"
                      for k, f in spec.state_features.items()) or "none"
    size = f"{spec.image_size[1]}x{spec.image_size[0]}"
    cams = f"cameras {', '.join(spec.cameras)} at {size}" if spec.cameras else "no cameras"
    return (f"{cams}; state {state}; {spec.chunk_size} x {spec.action_space.dim} "
            f"{spec.action_space.kind} actions at {spec.control_rate_hz:g} Hz")


def _relay(supervisor: "weakref.ref[PolicySupervisor]", what: str,
           listening: threading.Event) -> Callable[[object], None]:
    """A listener passing ``(what, value)`` to the supervisor while it lives and listens."""
    def listener(value: object) -> None:
        target = supervisor()
        if target is not None and listening.is_set():
            target.take(what, value)
    return listener
