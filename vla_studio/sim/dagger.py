"""An unattended DAgger loop in the simulator: evaluate, collect corrections, retrain, repeat.

```
 round r = 0 .. R   (policy_0 = the policy given)
   1 evaluate policy_r alone       N scenes from --eval-seed (the same scenes every round)
                                   -> success_rate of round r
   2 run policy_r with the expert  N new scenes; the corrector takes over when the run goes
     corrector (lock-step)         wrong and hands back; every episode recorded into
                                   OUT/corrections with dagger_round = r + 1
                                   -> intervention_rate of round r (share of steps corrected)
   3 r < R: train policy_{r+1}     `vla-studio train` (a child process) on the demonstrations
                                   + every correction round so far, fine-tuned from policy_r
                                   (--init), with the weighting preset -> OUT/round_{r+1}
```
Everything runs through the real station in lock-step (:mod:`vla_studio.sim.lockstep`): the
policy behind its runner, the corrector as the teleop source, the arbiter's handovers, the
safety filter, the recorder. ``OUT/dagger.json`` is rewritten after every phase, so an
interrupted loop continues where it stopped (``resume``): a phase that did not finish is run
again (the episodes it had recorded are moved to the dataset's trash first).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vla_studio.core.profile import StationProfile
from vla_studio.policies.runner_settings import RunnerSettings
from vla_studio.policies.vla.sample_weights import Weighting
from vla_studio.sim.corrector import CorrectorSettings
from vla_studio.sim.evaluation import EvalConfig, EvalReport, policy_source, run_evaluation

log = logging.getLogger(__name__)
SUMMARY = "dagger.json"
CORRECTIONS = "corrections"


class DaggerError(RuntimeError):
    """The loop cannot go on; the message says why (a training that failed, a bad resume)."""


@dataclass(frozen=True)
class DaggerConfig:
    """One DAgger session (``vla-studio dagger`` maps its options onto these).

    Attributes:
        policy: the initial policy (a checkpoint or training run directory).
        instructions: the tasks, cycled over every phase's episodes.
        rounds: correction rounds (each one collects, then retrains).
        episodes_per_round: episodes of every evaluation and every collection.
        out: the session folder (``corrections/`` dataset, ``round_N/`` runs, ``dagger.json``).
        profile: the simulated station.
        demos: demonstration datasets trained on with the corrections.
        seed: scene seed of the first collection episode (round r's start at
            ``seed + r * episodes_per_round``).
        eval_seed: scene seed of the first evaluation episode (the same scenes every round;
            keep them away from the demonstrations' and the collections' seeds).
        max_seconds: an episode's time limit (simulated seconds).
        weighting: how training weighs the correction rounds.
        epochs: training epochs of every round.
        train_args: more ``vla-studio train`` options (``--lr 3e-4``, ``--threads 2``...).
        corrector: when the expert takes over and hands back.
        runner: how the policy runs (chunk mode, confidence threshold...).
    """

    policy: str
    instructions: tuple[str, ...]
    rounds: int
    episodes_per_round: int
    out: str
    profile: StationProfile
    demos: tuple[str, ...] = ()
    seed: int = 500_000
    eval_seed: int = 900_000
    max_seconds: float = 20.0
    weighting: Weighting = field(default_factory=lambda: Weighting("intervention-weighted"))
    epochs: int = 5
    train_args: tuple[str, ...] = ()
    corrector: CorrectorSettings = field(default_factory=CorrectorSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)

    @property
    def corrections(self) -> Path:
        return Path(self.out).expanduser() / CORRECTIONS

    def settings(self) -> dict:
        """What the session was asked to do (stored in ``dagger.json``)."""
        return {"policy": self.policy, "instructions": list(self.instructions),
                "rounds": self.rounds, "episodes_per_round": self.episodes_per_round,
                "demos": list(self.demos), "seed": self.seed, "eval_seed": self.eval_seed,
                "max_seconds": self.max_seconds, "weighting": self.weighting.as_dict(),
                "epochs": self.epochs, "train_args": list(self.train_args),
                "corrector": dataclasses.asdict(self.corrector),
                "runner": {"mode": self.runner.mode,
                           "confidence_threshold": self.runner.confidence_threshold}}


@dataclass
class RoundRecord:
    """What one round found (a row of ``dagger.json``'s ``rounds``).

    ``success_rate`` is the policy's alone (no help); ``intervention_rate`` the share of the
    steps the corrector drove while the same policy ran with help."""

    round: int
    policy: str
    success_rate: float | None = None
    intervention_rate: float | None = None
    episodes: int = 0
    assisted_success_rate: float | None = None
    takeovers_per_episode: float | None = None
    wrong_object_rate: float | None = None
    evaluation: dict | None = None  # the unassisted run's figures (outcomes left out)
    assisted: dict | None = None
    trained: str = ""  # the next round's policy, once trained
    seconds: dict = field(default_factory=dict)

    def row(self) -> dict:
        d = dataclasses.asdict(self)
        return d


Report = Callable[[str], None]


def run_dagger(cfg: DaggerConfig, report: Report | None = None,
               resume: bool = False) -> dict:
    """Run the loop (see the module docstring) and return the summary ``dagger.json`` holds.

    Raises:
        DaggerError: a training run failed, or ``OUT`` holds another session.
        PolicyError, DeviceError, UnknownInstruction: as ``vla-studio eval``.
    """
    say = report or (lambda text: log.info("%s", text))
    out = Path(cfg.out).expanduser()
    summary_path = out / SUMMARY
    records: list[RoundRecord] = []
    if summary_path.exists():
        if not resume:
            raise DaggerError(f"{out} already holds a DAgger session ({SUMMARY}); continue it "
                              "with --resume or give another --out")
        records = _load_records(summary_path, cfg)
    out.mkdir(parents=True, exist_ok=True)
    policy = policy_source(cfg.policy)
    started = time.monotonic()
    for r in range(cfg.rounds + 1):
        rec = records[r] if r < len(records) else None
        if rec is None:
            rec = RoundRecord(r, policy, episodes=cfg.episodes_per_round)
            records.append(rec)
        policy = rec.policy
        if rec.evaluation is None:
            say(f"round {r}: evaluating {policy} alone on {cfg.episodes_per_round} scenes")
            t0 = time.monotonic()
            ev = _evaluate(cfg, policy, assisted=False, rnd=r)
            rec.evaluation = _figures(ev)
            rec.success_rate = rec.evaluation["success_rate"]
            rec.wrong_object_rate = rec.evaluation["wrong_object_rate"]
            rec.seconds["evaluation"] = round(time.monotonic() - t0, 1)
            _save(summary_path, cfg, records, started)
            say(f"round {r}: success {_pct(rec.success_rate)} without help")
        if rec.assisted is None:
            say(f"round {r}: collecting {cfg.episodes_per_round} corrected episodes "
                f"(dagger round {r + 1})")
            _trash_round(cfg.corrections, r + 1)  # an interrupted collection starts over
            t0 = time.monotonic()
            helped = _evaluate(cfg, policy, assisted=True, rnd=r)
            rec.assisted = _figures(helped)
            rec.intervention_rate = rec.assisted["intervention_rate"]
            rec.assisted_success_rate = rec.assisted["success_rate"]
            rec.takeovers_per_episode = rec.assisted["takeovers_per_episode"]
            rec.seconds["collection"] = round(time.monotonic() - t0, 1)
            _save(summary_path, cfg, records, started)
            say(f"round {r}: the corrector drove {_pct(rec.intervention_rate)} of the steps "
                f"({rec.takeovers_per_episode} takeovers per episode)")
        if r < cfg.rounds and not rec.trained:
            t0 = time.monotonic()
            rec.trained = _train_round(cfg, policy, r + 1, say)
            rec.seconds["training"] = round(time.monotonic() - t0, 1)
            _save(summary_path, cfg, records, started)
            policy = rec.trained
        elif rec.trained:
            policy = rec.trained
    return _save(summary_path, cfg, records, started)


def _evaluate(cfg: DaggerConfig, policy: str, assisted: bool, rnd: int) -> EvalReport:
    n = cfg.episodes_per_round
    if assisted:
        cfg.corrections.mkdir(parents=True, exist_ok=True)
    ev = EvalConfig(policy=policy, instructions=cfg.instructions, episodes=n,
                    profile=cfg.profile,
                    seed=cfg.seed + rnd * n if assisted else cfg.eval_seed,
                    max_seconds=cfg.max_seconds, runner=cfg.runner,
                    record=str(cfg.corrections) if assisted else "",
                    assist=cfg.corrector if assisted else None,
                    dagger_round=rnd + 1 if assisted else None)
    return run_evaluation(ev)


def _figures(report: EvalReport) -> dict:
    s = report.summary()
    return {k: s[k] for k in ("success_rate", "per_task", "wrong_object_rate", "episodes",
                              "successes", "intervention_rate", "takeovers_per_episode",
                              "confidence_success_mean", "confidence_failure_mean",
                              "infer_p50_ms")}


def _train_round(cfg: DaggerConfig, policy: str, rnd: int, say: Report) -> str:
    """Train the policy of round ``rnd`` in a child ``vla-studio train``; returns its best."""
    from vla_studio.policies.vla.train_job import TrainJob, TrainRequest

    run = Path(cfg.out).expanduser() / f"round_{rnd}"
    w = cfg.weighting
    extra = ["--init", policy, "--dagger-weighting", w.preset,
             "--intervention-share", repr(w.intervention_share),
             "--pre-intervention-s", repr(w.pre_intervention_s), *cfg.train_args]
    if (run / "last").is_dir():  # an interrupted training: continue it
        if (run / "best").is_dir() and _epochs_done(run) >= cfg.epochs:
            return str(run / "best")
        extra = ["--resume", str(run / "last"), *cfg.train_args]
    elif run.exists():
        shutil.rmtree(run)
    datasets = (*cfg.demos, str(cfg.corrections))
    say(f"round {rnd}: training on {', '.join(datasets)} from {policy} "
        f"({w.preset} weighting, {cfg.epochs} epochs)")
    job = TrainJob(TrainRequest(datasets=datasets, out=str(run), epochs=cfg.epochs,
                                extra=tuple(extra)))
    job.start()
    told = 0
    try:
        while job.running:
            time.sleep(0.5)
            state = job.poll()
            for e in state.epochs[told:]:
                say(f"round {rnd}: training epoch {e.get('epoch')}/{cfg.epochs}: val action "
                    f"error {e.get('val_action_l1', math.nan):.4f}")
            told = len(state.epochs)
        job.poll()
    finally:
        job.close()
    if job.returncode != 0 or not (run / "best").is_dir():
        raise DaggerError(f"training round {rnd} failed (exit {job.returncode}): "
                          f"{job.error_text() or 'see the log'}")
    return str(run / "best")


def _epochs_done(run: Path) -> int:
    try:
        state = json.loads((run / "last" / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    return int(state.get("epoch", 0)) if int(state.get("epoch_step", 0)) == 0 else 0


def _trash_round(dataset: Path, rnd: int) -> None:
    """Move the episodes of DAgger round ``rnd`` to the trash (an interrupted collection)."""
    from vla_studio.data.dataset import Dataset
    from vla_studio.data.dataset_index import DatasetIndex

    ds = Dataset(dataset)
    if not ds.episodes_dir.is_dir():
        return
    for summary in DatasetIndex(ds).refresh():
        if summary.dagger_round == rnd and not summary.trashed:
            src = ds.root / summary.file
            ds.trash_dir.mkdir(parents=True, exist_ok=True)
            os.replace(src, ds.trash_dir / src.name)
            log.info("moved %s (round %d, interrupted) to the trash", src.name, rnd)


def _load_records(path: Path, cfg: DaggerConfig) -> list[RoundRecord]:
    data = json.loads(path.read_text(encoding="utf-8"))
    names = {f.name for f in dataclasses.fields(RoundRecord)}
    records = [RoundRecord(**{k: v for k, v in row.items() if k in names})
               for row in data.get("rounds", [])]
    if records and records[0].policy != policy_source(cfg.policy):
        raise DaggerError(f"{path} began from {records[0].policy}, not {cfg.policy}: give the "
                          "same --policy to continue, or another --out")
    return records


def _save(path: Path, cfg: DaggerConfig, records: list[RoundRecord], started: float) -> dict:
    summary = summarize(records)
    summary["settings"] = cfg.settings()
    summary["corrections"] = str(cfg.corrections)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return summary


def summarize(records: list[RoundRecord]) -> dict[str, Any]:
    """``rounds`` (round, success_rate, intervention_rate, episodes, ...) and the overall
    change from round 0 to the last round evaluated."""
    rows = [r.row() for r in records]
    done = [r for r in records if r.success_rate is not None]
    gain = None
    if len(done) >= 2:
        gain = round(done[-1].success_rate - done[0].success_rate, 4)
    rates = [r.intervention_rate for r in records if r.intervention_rate is not None]
    falling = all(b < a for a, b in zip(rates, rates[1:])) if len(rates) >= 2 else None
    final = next((r.policy for r in reversed(records) if r.success_rate is not None), None)
    return {"rounds": rows, "success_gain": gain, "intervention_rate_falls": falling,
            "policy": final}


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.0f}%"
