"""Run DAgger unattended in the simulator: the scripted expert corrects, retrain, repeat.

Round 0 evaluates the policy alone (success rate), then runs it with the expert as the corrector:
the expert takes over when the policy drifts from its plan or stalls and hands back once on
track (intervention rate), and every corrected episode is recorded into OUT/corrections with its
round. Each round then trains the next policy with `vla-studio train` on the demonstrations and
every correction round so far, fine-tuned from the previous policy, and evaluates it the same
way. Everything runs in lock-step simulated time through the real station (runner, arbiter,
safety filter, recorder). OUT/dagger.json holds the figures after every phase; --resume
continues an interrupted session.

Examples:
  vla-studio dagger --policy runs/pick30 --task "pick up the red cube" --rounds 2 \\
      --episodes-per-round 30 --demos data/pick30 --out runs/dagger --json
  vla-studio dagger --policy runs/pick30 --task-file tasks.txt --rounds 3 \\
      --episodes-per-round 20 --weighting hg-dagger --train-arg=--lr --train-arg=3e-4 \\
      --out runs/hg
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "dagger"
HELP = "run DAgger rounds in the simulator with the scripted expert as corrector"
MAX_ROUNDS = 100
MAX_EPISODES = 10_000
MAX_SEED = 2**32 - 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vla_studio.policies.vla.sample_weights import PRESETS

    parser.add_argument("--station", metavar="FILE", default=argparse.SUPPRESS,
                        help="station profile (TOML); default: the simulated tabletop")
    parser.add_argument("--policy", metavar="DIR", required=True,
                        help="the initial policy: a checkpoint or training run directory")
    parser.add_argument("--task", metavar="TEXT", action="append", default=[],
                        help="an instruction (repeatable; episodes cycle through them)")
    parser.add_argument("--task-file", metavar="FILE", default=None,
                        help="instructions, one per line (instead of --task)")
    parser.add_argument("--rounds", type=int, default=2, help="correction rounds (default 2)")
    parser.add_argument("--episodes-per-round", type=int, default=30,
                        help="episodes of each evaluation and each collection (default 30)")
    parser.add_argument("--out", metavar="DIR", default="dagger",
                        help="session folder: corrections/ dataset, round_N/ training runs, "
                             "dagger.json (default ./dagger)")
    parser.add_argument("--demos", metavar="DATASET", action="append", default=[],
                        help="demonstration dataset trained on with the corrections (repeatable)")
    parser.add_argument("--weighting", choices=PRESETS, default="intervention-weighted",
                        help="how training weighs the correction rounds (default "
                             "intervention-weighted)")
    parser.add_argument("--intervention-share", type=float, default=0.5,
                        help="intervention-weighted / sirius: the interventions' share of the "
                             "samples (default 0.5)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per round")
    parser.add_argument("--train-arg", metavar="ARG", action="append", default=[],
                        help="an extra `vla-studio train` option, e.g. --train-arg=--lr "
                             "--train-arg=3e-4 (repeatable)")
    parser.add_argument("--seed", type=int, default=500_000,
                        help="scene seed of the first corrected episode")
    parser.add_argument("--eval-seed", type=int, default=900_000,
                        help="scene seed of the first evaluation episode (the same scenes "
                             "every round)")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time limit per episode")
    parser.add_argument("--drift", type=float, default=0.04,
                        help="the corrector takes over when the arm departs this far from the "
                             "expert's plan within a second, metres (default 0.04)")
    parser.add_argument("--stall", type=float, default=2.0,
                        help="... or when it has hardly moved for this long, seconds (default 2)")
    parser.add_argument("--confidence-threshold", type=float, default=0.0,
                        help="also ask for help (the corrector answers) when the policy's "
                             "confidence stays below this (default 0: off)")
    parser.add_argument("--where", choices=("child", "in-process"), default="child",
                        help="run the model in a child process (default) or in-process")
    parser.add_argument("--resume", action="store_true",
                        help="continue the session in --out where it stopped")
    parser.add_argument("--json", action="store_true",
                        help="print the figures as one JSON object on the last line")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vla_studio.commands import UsageError, check_number, station_profile
    from vla_studio.devices.base import DeviceError
    from vla_studio.policies.errors import PolicyError
    from vla_studio.policies.runner_settings import RunnerSettings
    from vla_studio.policies.vla.sample_weights import Weighting
    from vla_studio.sim.corrector import CorrectorSettings
    from vla_studio.sim.dagger import DaggerConfig, DaggerError, run_dagger
    from vla_studio.sim.lockstep import lockstep_problem
    from vla_studio.sim.tasks import UnknownInstruction, parse_instruction

    try:
        tasks = list(args.task)
        if args.task_file:
            with open(args.task_file, encoding="utf-8") as f:
                tasks += [line.strip() for line in f if line.strip() and
                          not line.lstrip().startswith("#")]
        if not tasks:
            raise UsageError("give the instructions with --task \"...\" (repeatable) or "
                             "--task-file FILE")
        check_number("--rounds", args.rounds, 0, MAX_ROUNDS)
        check_number("--episodes-per-round", args.episodes_per_round, 1, MAX_EPISODES)
        check_number("--epochs", args.epochs, 1, 10_000)
        check_number("--seed", args.seed, 0, MAX_SEED - MAX_EPISODES * (args.rounds + 1))
        check_number("--eval-seed", args.eval_seed, 0, MAX_SEED - args.episodes_per_round)
        check_number("--max-seconds", args.max_seconds, 0.0, 24 * 3600.0, low_open=True,
                     unit="s")
        check_number("--drift", args.drift, 0.005, 1.0, unit="m")
        check_number("--stall", args.stall, 0.2, 60.0, unit="s")
        check_number("--confidence-threshold", args.confidence_threshold, 0.0, 1.0)
        for text in tasks:
            parse_instruction(text)
        weighting = Weighting(args.weighting, args.intervention_share)
    except (UsageError, UnknownInstruction, ValueError, OSError) as exc:
        print(f"vla-studio dagger: error: {exc}", file=sys.stderr)
        return 2
    profile = station_profile(args)
    problem = lockstep_problem(profile)
    if problem:
        print(f"vla-studio dagger: error: {problem}", file=sys.stderr)
        return 2
    corrector = replace(CorrectorSettings(), drift_m=args.drift, stall_s=args.stall)
    cfg = DaggerConfig(policy=args.policy, instructions=tuple(tasks), rounds=args.rounds,
                       episodes_per_round=args.episodes_per_round, out=args.out,
                       profile=profile, demos=tuple(args.demos), seed=args.seed,
                       eval_seed=args.eval_seed, max_seconds=args.max_seconds,
                       weighting=weighting, epochs=args.epochs,
                       train_args=tuple(args.train_arg), corrector=corrector,
                       runner=RunnerSettings(where=args.where,
                                             confidence_threshold=args.confidence_threshold))
    try:
        summary = run_dagger(cfg, lambda text: print(text, flush=True), resume=args.resume)
    except (DaggerError, PolicyError, DeviceError) as exc:
        print(f"vla-studio dagger: error: {exc}", file=sys.stderr)
        return 2
    for row in summary["rounds"]:
        print(f"round {row['round']}: success {_pct(row['success_rate'])} alone, corrector "
              f"drove {_pct(row['intervention_rate'])} of the steps with help "
              f"({row['episodes']} episodes each)")
    gain = summary["success_gain"]
    if gain is not None:
        print(f"success changed by {100 * gain:+.0f} points; final policy: {summary['policy']}")
    if args.json:
        print(json.dumps(summary))
    return 0


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"
