"""From nothing to a working policy: expert demonstrations, training, closed-loop evaluation.

Three or four steps, each the command of the same name with the options below:

1. ``vla-studio record --teleop scripted --lockstep``: --episodes expert demonstrations of
   the tasks into OUT/demos, in lock-step, --workers processes; every scene layout (seeds
   SEED, SEED+1, ...) is demonstrated once per task (``--layout-repeats``), so the policy has
   to read the instruction to tell the tasks apart. The simulator pushes the arm now and then
   while the expert demonstrates (--push-speed, --push-turn; the station it records on is
   written to OUT/station.toml), so the demonstrations show the expert recovering, as in DART;
2. ``vla-studio train``: the reference VLA on OUT/demos into OUT/run, with the measured recipe
   (--epochs, and --coord-channels --keypoints 32 --goal-head --shift 4 --state-noise 0.3
   --colour-swap 0.5);
3. ``vla-studio dagger`` (optional, --correction-rounds N): the trained policy runs on
   --correction-episodes new scenes with the scripted expert as its corrector (it takes over
   where the policy goes wrong and hands back), and the policy is fine-tuned on the
   demonstrations and those corrections (--correction-epochs, corrections 30 % of the samples,
   learning rate 3e-4) into OUT/dagger; the session also evaluates each round's policy alone;
4. ``vla-studio eval``: --eval-episodes closed-loop episodes on held-out scene seeds (from
   --eval-seed, far from the training and correction seeds), figures into OUT/eval.json.

The policy to load is OUT/run/best, or OUT/dagger/round_N/best with --correction-rounds N (the
last line says which). On the pick tasks a correction round did not beat the trained policy
alone (docs/vla.md), so it is off by default. Running it again with the same OUT records only
the demonstrations still missing, and stops if OUT/run already holds a training run (continue
that with `vla-studio train --resume OUT/run/last`, and the correction rounds with
`vla-studio dagger ... --out OUT/dagger --resume`).

With --station, demonstrations and evaluation run on that profile as it is (its own push
settings; --push-speed and --push-turn apply to the default simulated station).

Example (the default: pick up the red, green or blue cube; about 20 minutes on 2 cores, 35
with a correction round):
  vla-studio demo-to-policy --out runs/pick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

NAME = "demo-to-policy"
HELP = "record expert demos in lock-step, train the reference VLA, correct it, evaluate it"
DEFAULT_TASKS = ("pick up the red cube", "pick up the green cube", "pick up the blue cube")
# The training options of the measured reference runs (docs/vla.md; the module docstring
# lists them too).
TRAIN_OPTIONS = ("--coord-channels", "--keypoints", "32", "--goal-head", "--shift", "4",
                 "--state-noise", "0.3", "--colour-swap", "0.5")
# ... and of its correction round (docs/vla.md): fine-tuning keeps the augmentation.
CORRECTION_OPTIONS = ("--intervention-share", "0.3", "--train-arg=--lr", "--train-arg=3e-4",
                      "--train-arg=--shift", "--train-arg=4", "--train-arg=--state-noise",
                      "--train-arg=0.3", "--train-arg=--colour-swap", "--train-arg=0.5")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="where demos/, run/ and eval.json go")
    parser.add_argument("--task", metavar="TEXT", action="append", default=[],
                        help="an instruction (repeatable; default: pick up the red, green, "
                             "blue cube)")
    parser.add_argument("--episodes", type=int, default=200, help="expert demonstrations")
    parser.add_argument("--seed", type=int, default=1000, help="scene seed of the first demo")
    parser.add_argument("--workers", type=int, default=2, help="recording processes")
    parser.add_argument("--layout-repeats", type=int, default=0, metavar="R",
                        help="demonstrations per scene layout (default: one per task)")
    parser.add_argument("--push-speed", type=float, default=0.08, metavar="M/S",
                        help="push the arm off its path at up to this speed while the expert "
                             "demonstrates (default 0.08; 0: no pushes)")
    parser.add_argument("--push-turn", type=float, default=0.5, metavar="RAD/S",
                        help="... and turn it by up to this rate (default 0.5)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs")
    parser.add_argument("--max-minutes", type=float, default=0.0,
                        help="stop training (and keep the best so far) after this long")
    parser.add_argument("--threads", type=int, default=0,
                        help="training threads (default: every core)")
    parser.add_argument("--correction-rounds", type=int, default=0, metavar="N",
                        help="DAgger rounds with the scripted expert as the corrector after "
                             "training (default 0: none)")
    parser.add_argument("--correction-episodes", type=int, default=30,
                        help="corrected episodes (and evaluation episodes) per round")
    parser.add_argument("--correction-epochs", type=int, default=3,
                        help="fine-tuning epochs per correction round")
    parser.add_argument("--correction-seed", type=int, default=500_000,
                        help="scene seed of the first corrected episode")
    parser.add_argument("--eval-episodes", type=int, default=51,
                        help="closed-loop evaluation episodes (0: no evaluation)")
    parser.add_argument("--eval-seed", type=int, default=900_000,
                        help="scene seed of the first evaluation episode")
    parser.add_argument("--eval-max-seconds", type=float, default=20.0,
                        help="time limit of an evaluation episode")
    parser.add_argument("--mode", choices=("chunk", "replan", "ensemble"), default="chunk",
                        help="chunk execution mode of the evaluation")


def _pushing_station(path: Path, speed: float, turn: float) -> Path:
    """Write the default simulated station with the sim robot's pushes set to ``path``.

    The profile is the default one, text and comments kept (episodes store their station's
    text), with the push settings added to its ``[robot]`` table.
    """
    from vla_studio.devices.registry import load_station_profile
    from vla_studio.paths import default_station_profile

    text = default_station_profile().read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip() == "[robot]") + 1
    lines[at:at] = ["# demo-to-policy: push the arm now and then while the expert "
                    "demonstrates (docs/simulator.md)\n",
                    f"push_speed = {speed!r}\n", f"push_turn = {turn!r}\n"]
    path.write_text("".join(lines), encoding="utf-8")
    load_station_profile(path)  # as valid as the default one
    return path


def run(args: argparse.Namespace) -> int:
    from vla_studio.cli import main as cli_main
    from vla_studio.commands import UsageError, check_number
    from vla_studio.data.dataset import Dataset

    try:
        check_number("--push-speed", args.push_speed, 0.0, 0.3, unit=" m/s")
        check_number("--push-turn", args.push_turn, 0.0, 2.0, unit=" rad/s")
        check_number("--correction-rounds", args.correction_rounds, 0, 20)
        if args.correction_rounds:
            check_number("--correction-episodes", args.correction_episodes, 1, 10_000)
            check_number("--correction-epochs", args.correction_epochs, 1, 1000)
    except UsageError as exc:
        print(f"vla-studio demo-to-policy: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser()
    tasks = tuple(args.task) or DEFAULT_TASKS
    demos, run_dir, dagger_dir = out / "demos", out / "run", out / "dagger"
    if (run_dir / "last").exists() or (run_dir / "best").exists():
        print(f"vla-studio demo-to-policy: error: {run_dir} already holds a training run; "
              f"continue it with `vla-studio train --dataset {demos} --out {run_dir} --resume "
              f"{run_dir / 'last'}`, or give another --out", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    task_file = out / "tasks.txt"
    task_file.write_text("".join(f"{t}\n" for t in tasks), encoding="utf-8")
    station = ["--station", str(args.station)] if getattr(args, "station", None) else []
    recording_station = station or ["--station", str(_pushing_station(
        out / "station.toml", args.push_speed, args.push_turn))]
    timings: dict[str, float] = {}
    steps = 4 if args.correction_rounds else 3

    have = len(Dataset(demos).episode_files()) if Dataset(demos).episodes_dir.is_dir() else 0
    missing = args.episodes - have
    repeats = args.layout_repeats or len(tasks)
    t0 = time.monotonic()
    if missing > 0:
        print(f"== 1/{steps} recording {missing} expert demonstration(s) in lock-step into {demos}",
              flush=True)
        # Resuming mid-way: the next layout (a whole one when `have` is a multiple of R).
        code = cli_main([*recording_station, "record", "--teleop", "scripted", "--task-file",
                         str(task_file), "--episodes", str(missing), "--seed",
                         str(args.seed + -(-have // repeats)), "--layout-repeats",
                         str(repeats), "--lockstep", "--workers",
                         str(max(1, min(args.workers, missing))), "--dataset", str(demos)])
        if code:
            return code
    else:
        print(f"== 1/{steps} {demos} already holds {have} demonstration(s)", flush=True)
    timings["record_s"] = time.monotonic() - t0

    print(f"== 2/{steps} training the reference VLA into {run_dir}", flush=True)
    t0 = time.monotonic()
    train = ["train", "--dataset", str(demos), "--out", str(run_dir), "--epochs",
             str(args.epochs), "--threads", str(args.threads), *TRAIN_OPTIONS]
    if args.max_minutes:
        train += ["--max-minutes", str(args.max_minutes)]
    code = cli_main(train)
    if code:
        return code
    timings["train_s"] = time.monotonic() - t0

    policy = run_dir / "best"
    if args.correction_rounds:
        print(f"== 3/{steps} {args.correction_rounds} correction round(s) with the scripted "
              f"expert into {dagger_dir}", flush=True)
        t0 = time.monotonic()
        dagger = [*station, "dagger", "--policy", str(run_dir), "--task-file", str(task_file),
                  "--rounds", str(args.correction_rounds), "--episodes-per-round",
                  str(args.correction_episodes), "--demos", str(demos), "--out",
                  str(dagger_dir), "--epochs", str(args.correction_epochs), "--seed",
                  str(args.correction_seed), "--eval-seed", str(args.eval_seed),
                  "--max-seconds", str(args.eval_max_seconds), *CORRECTION_OPTIONS, "--json"]
        if args.threads:
            dagger.append(f"--train-arg=--threads={args.threads}")
        session = _run_capturing_json(cli_main, dagger)
        if session is None:
            return 1
        policy = Path(session["policy"])
        timings["correction_s"] = time.monotonic() - t0

    summary: dict = {}
    if args.eval_episodes > 0:
        print(f"== {steps}/{steps} evaluating on {args.eval_episodes} held-out scene(s)",
              flush=True)
        t0 = time.monotonic()
        evaluation = [*station, "eval", "--policy", str(policy), "--episodes",
                      str(args.eval_episodes), "--seed", str(args.eval_seed), "--mode", args.mode,
                      "--max-seconds", str(args.eval_max_seconds), "--json"]
        for t in tasks:
            evaluation += ["--task", t]
        summary = _run_capturing_json(cli_main, evaluation)
        if summary is None:
            return 1
        timings["eval_s"] = time.monotonic() - t0
        (out / "eval.json").write_text(json.dumps({**summary, "timings": timings}, indent=1),
                                       encoding="utf-8")
    minutes = ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in timings.items())
    rate = summary.get("success_rate")
    result = f"; closed-loop success {100 * rate:.0f}%" if rate is not None else ""
    print(f"done ({minutes}){result}. The policy: {policy}  (load it in the policy "
          f"panel, or `vla-studio eval --policy {policy} ...`)")
    return 0


def _run_capturing_json(cli_main, argv: list[str]) -> dict | None:
    """Run a command that prints a JSON summary as its last line; everything else it prints
    goes through as it comes. Returns the summary (None when the command failed)."""
    import contextlib

    tee = _LastLine(sys.stdout)
    with contextlib.redirect_stdout(tee):
        code = cli_main(argv)
    if code or not tee.last.startswith("{"):
        return None
    return json.loads(tee.last)


class _LastLine:
    """A text stream passing lines through, except the one JSON line, which it keeps."""

    def __init__(self, stream) -> None:
        self.stream, self.last, self._partial = stream, "", ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line.startswith("{"):
                self.last = line
            else:
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
