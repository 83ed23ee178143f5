"""Closed-loop evaluation of a policy in the simulated station (``vla-studio eval``).

```
 for episode i (instruction = tasks[i mod T], scene seed = seed + i):
   station.begin_episode (or the recorder's start, when rollouts are recorded)
   session RUNNING in POLICY mode -> every tick through the real loop:
       observe -> PolicyRunner (child process) -> arbiter -> ActionFilter -> gate -> robot
   between ticks (on the loop's thread): task success? cubes not named disturbed?
   ends: success held for `settle` | time limit | the session paused (low confidence,
         model crash, e-stop)
```
Lock-step by default (simulated time, inference on the tick that needs a chunk, a run is
reproducible); real time with ``lockstep=False`` (the policy infers beside the ticking loop, as
in the app). The policy always runs behind a :class:`~vla_studio.policies.runner.PolicyRunner`
and every command goes through the station's safety filter and command gate.

An episode is a *wrong-object* episode when at any tick a cube the instruction does not name
was lifted or moved (:meth:`vla_studio.sim.tasks.Task.wrong_objects`). Confidence is the
runner's per-step confidence of the steps the policy drove, averaged per episode.

Assisted runs (``assist``, the collection half of ``vla-studio dagger``): the scripted expert
watches as the station's teleop source (:class:`~vla_studio.sim.corrector.ExpertCorrector`),
takes over when the policy goes wrong and hands back; a run that asks for help is answered, not
ended. The report counts the steps each side drove (the intervention rate) and the takeovers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from vla_studio.core.profile import StationProfile
from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.types import SourceKind
from vla_studio.policies.runner import RunnerSettings
from vla_studio.sim.tasks import parse_instruction

if TYPE_CHECKING:
    from vla_studio.sim.corrector import CorrectorSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation.

    Attributes:
        policy: the policy source (a checkpoint or run directory, a URL...).
        instructions: the tasks, cycled over the episodes.
        episodes: episodes in total.
        seed: scene seed of the first episode (episode i uses ``seed + i``).
        profile: the simulated station.
        lockstep: simulated time (True) or real time.
        max_seconds: an episode's time limit (simulated or real seconds).
        settle_s: how long success must hold to end the episode as a success.
        runner: chunk execution and confidence settings of the run.
        record: a dataset folder to record every rollout into ('' for none).
        assist: the automatic corrector's settings (None: the policy runs alone).
        dagger_round: stored with recorded episodes (the DAgger round they belong to).
    """

    policy: str
    instructions: tuple[str, ...]
    episodes: int
    profile: StationProfile
    seed: int = 100_000
    lockstep: bool = True
    max_seconds: float = 20.0
    settle_s: float = 0.5
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    record: str = ""
    assist: "CorrectorSettings | None" = None
    dagger_round: int | None = None


@dataclass(frozen=True)
class EpisodeOutcome:
    """How one evaluation episode went."""

    index: int
    instruction: str
    seed: int
    success: bool
    wrong_objects: tuple[str, ...]
    ended_by: str
    duration_s: float
    policy_steps: int
    confidence_mean: float
    path: str = ""
    intervention_steps: int = 0
    takeovers: int = 0

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["wrong_objects"] = list(self.wrong_objects)
        d["confidence_mean"] = _rounded(self.confidence_mean)
        d["duration_s"] = round(self.duration_s, 3)
        return d


@dataclass
class EvalReport:
    """Every episode's outcome and the run's inference figures."""

    config: EvalConfig
    outcomes: list[EpisodeOutcome] = field(default_factory=list)
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    infer_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    policy_id: str = ""
    clock: str = "sim"

    def summary(self) -> dict:
        """The figures ``vla-studio eval --json`` prints."""
        outs = self.outcomes
        per_task = {}
        for instruction in self.config.instructions:
            mine = [o for o in outs if o.instruction == instruction]
            per_task[instruction] = _rounded(np.mean([o.success for o in mine])) if mine else None
        ok = [o.confidence_mean for o in outs if o.success and math.isfinite(o.confidence_mean)]
        bad = [o.confidence_mean for o in outs if not o.success and math.isfinite(o.confidence_mean)]
        lat = self.latency_ms
        driven = sum(o.policy_steps + o.intervention_steps for o in outs)
        helped = sum(o.intervention_steps for o in outs)
        return {
            "success_rate": _rounded(np.mean([o.success for o in outs])) if outs else None,
            "per_task": per_task,
            "wrong_object_rate": _rounded(np.mean([bool(o.wrong_objects) for o in outs]))
            if outs else None,
            "confidence_success_mean": _rounded(np.mean(ok)) if ok else None,
            "confidence_failure_mean": _rounded(np.mean(bad)) if bad else None,
            "latency_p50_ms": _rounded(np.percentile(lat, 50)) if lat.size else None,
            "latency_p99_ms": _rounded(np.percentile(lat, 99)) if lat.size else None,
            "infer_p50_ms": _rounded(np.percentile(self.infer_ms, 50)) if self.infer_ms.size
            else None,
            "episodes": len(outs),
            "successes": sum(o.success for o in outs),
            "assisted": self.config.assist is not None,
            "intervention_rate": _rounded(helped / driven) if driven else None,
            "takeovers_per_episode": _rounded(np.mean([o.takeovers for o in outs]))
            if outs else None,
            "clock": self.clock,
            "seed": self.config.seed,
            "mode": self.config.runner.mode,
            "policy": self.config.policy,
            "policy_id": self.policy_id,
            "outcomes": [o.as_dict() for o in outs],
        }


def _rounded(v: float) -> float | None:
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def run_evaluation(cfg: EvalConfig,
                   on_episode: Callable[[EpisodeOutcome], None] | None = None) -> EvalReport:
    """Run ``cfg`` (see the module docstring) and return its report.

    Raises:
        PolicyError: the policy cannot be loaded or does not fit the station.
        DeviceError: the station cannot be built (lock-step needs a simulated one).
        UnknownInstruction: an instruction is not a task of the simulated tabletop.
    """
    from vla_studio.data.recorder import Recorder

    tasks = {text: parse_instruction(text) for text in cfg.instructions}
    station, runner = _station_and_runner(cfg)
    report = EvalReport(cfg, clock=station.clock.kind, policy_id=runner.policy_id)
    steps = station.loop.subscribe("evaluation", 256)
    recorder = Recorder(station, cfg.record) if cfg.record else None
    try:
        station.start()
        runner.start(cfg.instructions[0])
        station.set_policy_source(runner)
        if cfg.assist is not None:
            from vla_studio.sim.corrector import ExpertCorrector

            station.set_teleop_source(ExpertCorrector(station.robot, cfg.assist))
        station.session.set_mode(ControlMode.POLICY)
        if recorder is not None:
            recorder.connect()
        for i in range(cfg.episodes):
            instruction = cfg.instructions[i % len(cfg.instructions)]
            outcome = _episode(station, recorder, steps, cfg, i, instruction, tasks[instruction])
            report.outcomes.append(outcome)
            if on_episode is not None:
                on_episode(outcome)
        report.latency_ms = _latencies(runner, cfg.lockstep)
        report.infer_ms = runner.infer_ms.values()
        if recorder is not None:
            recorder.wait_idle(60.0)
            report.outcomes = [_with_path(o, recorder) for o in report.outcomes]
    finally:
        if recorder is not None:
            recorder.disconnect()
        station.loop.unsubscribe(steps)
        station.close()  # closes the runner (its child process is reaped)
    return report


def policy_source(text: str) -> str:
    """``text``, or the best checkpoint inside it when it is a training run directory."""
    path = Path(text).expanduser()
    if path.is_dir() and not (path / "config.json").is_file() and \
            (path / "best" / "config.json").is_file():
        return str(path / "best")
    return text


def _station_and_runner(cfg: EvalConfig):
    source = policy_source(cfg.policy)
    if cfg.lockstep:
        from vla_studio.policies.lockstep_runner import LockstepPolicyRunner
        from vla_studio.sim.lockstep import LockstepStation

        station = LockstepStation.from_profile(cfg.profile)
        return station, LockstepPolicyRunner.for_station(source, station, cfg.runner)
    from vla_studio.policies.runner import PolicyRunner
    from vla_studio.station import Station

    station = Station.from_profile(cfg.profile)
    return station, PolicyRunner.for_station(source, station, cfg.runner)


def _latencies(runner, lockstep: bool) -> np.ndarray:
    """Lock-step: host time of each inference round trip; real time: observation tick to
    chunk in hand (what the loop waited for)."""
    return runner.round_trip_ms.values() if lockstep else runner.latency.values()


def _episode(station, recorder, steps, cfg: EvalConfig, index: int, instruction: str,
             task) -> EpisodeOutcome:
    from vla_studio.data.labels import EpisodeLabels

    seed = cfg.seed + index
    episode_id = ""
    while steps.get(timeout=0) is not None:  # what the last episode's end left in the queue
        pass
    if recorder is not None:
        who = "corrector" if cfg.assist is not None else "evaluation"
        labels = EpisodeLabels(instruction=instruction, task=task.name, operator=who,
                               notes=f"vla-studio {'dagger' if cfg.assist else 'eval'} of "
                                     f"{cfg.policy}", device="expert" if cfg.assist else "",
                               dagger_round=cfg.dagger_round)
        episode_id = recorder.start(labels, seed=seed)
    else:
        from vla_studio.data.camera_readiness import cameras_without_fresh_frames
        from vla_studio.devices.base import DeviceError

        station.begin_episode(instruction, seed)
        # As the recorder does: the policy's first observation is never a picture from before
        # the reset, and a run is the same rollout whether it is recorded or not.
        late = cameras_without_fresh_frames(station, station.clock.now())
        if late:
            raise DeviceError(late[0])
        station.session.start(ControlMode.POLICY)
    clock, world = station.clock, station.robot.world
    period = station.loop.period_s
    t0 = clock.now()
    wrong: set[str] = set()
    confidences: list[float] = []
    policy_steps, success_since, success, ended_by = 0, None, False, ""
    intervention_steps = takeovers = 0

    def judge() -> tuple[bool, tuple[str, ...]]:  # on the loop's thread (it owns the world)
        return bool(task.success(world)), task.wrong_objects(world)

    while not ended_by:
        clock.sleep(period)  # lock-step: one tick, simulated
        while (step := steps.get(timeout=0)) is not None:
            if step.source == SourceKind.POLICY:
                policy_steps += 1
                conf = step.extras.get("confidence")
                if conf is not None and math.isfinite(float(conf)):
                    confidences.append(float(conf))
            elif step.source == SourceKind.INTERVENTION:
                intervention_steps += 1
                takeovers += step.extras.get("handover") == "takeover"
        success, disturbed = station.loop.call_on_loop(judge)
        wrong.update(disturbed)
        now = clock.now()
        if success:
            success_since = now if success_since is None else success_since
            if now - success_since >= cfg.settle_s - 1e-9:
                ended_by = "success"
        else:
            success_since = None
        snap = station.session.snapshot
        answered = snap.help and cfg.assist is not None  # the corrector resumes it next tick
        if not ended_by and snap.state != RunState.RUNNING and not answered:
            ended_by = f"paused: {snap.reason}"
        elif not ended_by and now - t0 >= cfg.max_seconds:
            ended_by = "time limit"
    station.session.pause("evaluation episode over")
    if recorder is not None and episode_id:
        recorder.stop(success=success, judged_by="robot")
    outcome = EpisodeOutcome(index + 1, instruction, seed, success and ended_by == "success",
                             tuple(sorted(wrong)), ended_by, clock.now() - t0, policy_steps,
                             float(np.mean(confidences)) if confidences else math.nan,
                             episode_id, intervention_steps, takeovers)
    log.info("eval episode %d: %s seed %d: %s", index + 1, instruction, seed, ended_by)
    return outcome


def _with_path(outcome: EpisodeOutcome, recorder) -> EpisodeOutcome:
    """The recorded episode's file instead of its id."""
    info = recorder.episode(outcome.path) if outcome.path else None
    path = str(info.path) if info is not None and info.path is not None else ""
    return dataclasses.replace(outcome, path=path)

