"""Evaluate a policy closed-loop in the simulated station, headless.

Each episode resets the scene (episode i uses scene seed SEED+i, instructions cycled over the
--task values), runs the policy through the station's control loop and safety path until the
task has succeeded for --settle seconds, the time limit passes or the run pauses (low
confidence, a model crash, the e-stop), then reports success per task, the wrong-object rate
(a cube the instruction does not name was lifted or moved), mean confidence on successes and
failures, and inference latency. Lock-step by default (simulated time; the policy infers on
the tick that needs a chunk, in its child process); --realtime runs the station on host time
with asynchronous inference, as the app does.

Examples:
  vla-studio eval --policy runs/pick --task "pick up the red cube" \\
      --task "pick up the green cube" --task "pick up the blue cube" --episodes 51 --seed 900000
  vla-studio eval --policy runs/pick --task "pick up the red cube" --episodes 5 --realtime \\
      --record data/rollouts --json
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "eval"
HELP = "evaluate a policy closed-loop in the simulated station"
MAX_EPISODES = 100_000
MAX_SEED = 2**32 - 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--station", metavar="FILE", default=argparse.SUPPRESS,
                        help="station profile (TOML); default: the simulated tabletop")
    parser.add_argument("--policy", metavar="DIR", required=True,
                        help="policy: a checkpoint or training run directory, or ws://host:port")
    parser.add_argument("--task", metavar="TEXT", action="append", required=True,
                        help="an instruction (repeatable; episodes cycle through them)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes in total")
    parser.add_argument("--seed", type=int, default=100_000,
                        help="scene seed of the first episode (episode i uses SEED+i); keep it "
                             "away from the seeds the training demonstrations used")
    clock = parser.add_mutually_exclusive_group()
    clock.add_argument("--lockstep", dest="lockstep", action="store_true", default=True,
                       help="simulated time, as fast as it computes (the default)")
    clock.add_argument("--realtime", dest="lockstep", action="store_false",
                       help="host time: the policy infers beside the ticking loop, as in the app")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time limit per episode")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds the task must stay accomplished to count as a success")
    parser.add_argument("--mode", choices=("chunk", "replan", "ensemble"), default="chunk",
                        help="chunk execution: open loop, replan every k, temporal ensembling")
    parser.add_argument("--replan-every", type=int, default=4, help="replan mode: k")
    parser.add_argument("--confidence-threshold", type=float, default=0.0,
                        help="pause an episode (a failure) when confidence stays below this")
    parser.add_argument("--where", choices=("child", "in-process"), default="child",
                        help="run the model in a child process (default) or in-process")
    parser.add_argument("--record", metavar="DATASET", default="",
                        help="record every rollout as an episode into this dataset folder")
    parser.add_argument("--json", action="store_true",
                        help="print the figures as one JSON object on the last line")


def run(args: argparse.Namespace) -> int:
    from vla_studio.commands import UsageError, check_number, station_profile
    from vla_studio.policies.errors import PolicyError
    from vla_studio.policies.runner import RunnerSettings
    from vla_studio.sim.evaluation import EvalConfig, run_evaluation
    from vla_studio.sim.tasks import UnknownInstruction, parse_instruction

    try:
        check_number("--episodes", args.episodes, 1, MAX_EPISODES)
        check_number("--seed", args.seed, 0, MAX_SEED - args.episodes + 1)
        check_number("--max-seconds", args.max_seconds, 0.0, 24 * 3600.0, low_open=True, unit="s")
        check_number("--settle", args.settle, 0.0, 3600.0, unit="s")
        check_number("--replan-every", args.replan_every, 1, 1000)
        check_number("--confidence-threshold", args.confidence_threshold, 0.0, 1.0)
        for text in args.task:
            parse_instruction(text)
    except (UsageError, UnknownInstruction) as exc:
        print(f"vla-studio eval: error: {exc}", file=sys.stderr)
        return 2
    profile = station_profile(args)
    settings = RunnerSettings(mode=args.mode, replan_every=args.replan_every, where=args.where,
                              confidence_threshold=args.confidence_threshold)
    cfg = EvalConfig(policy=args.policy, instructions=tuple(args.task), episodes=args.episodes,
                     profile=profile, seed=args.seed, lockstep=args.lockstep,
                     max_seconds=args.max_seconds, settle_s=args.settle, runner=settings,
                     record=args.record)

    def tell(o) -> None:
        wrong = f", moved the {'/'.join(o.wrong_objects)} cube" if o.wrong_objects else ""
        print(f"episode {o.index}/{cfg.episodes}: {o.instruction!r} seed {o.seed}: "
              f"{'success' if o.success else 'failure'} ({o.ended_by}, {o.duration_s:.1f} s, "
              f"confidence {o.confidence_mean:.2f}{wrong})", flush=True)

    try:
        report = run_evaluation(cfg, tell)
    except PolicyError as exc:
        print(f"vla-studio eval: error: {exc}", file=sys.stderr)
        return 2
    summary = report.summary()
    rates = ", ".join(f"{k!r} {_pct(v)}" for k, v in summary["per_task"].items())
    print(f"success {_pct(summary['success_rate'])} over {summary['episodes']} episodes ({rates}); "
          f"wrong object {_pct(summary['wrong_object_rate'])}; confidence "
          f"{_num(summary['confidence_success_mean'])} on successes, "
          f"{_num(summary['confidence_failure_mean'])} on failures; inference p99 "
          f"{_num(summary['latency_p99_ms'], 1)} ms")
    if args.record:
        print(f"rollouts recorded into {args.record}")
    if args.json:
        print(json.dumps(summary))
    return 0


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _num(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"
