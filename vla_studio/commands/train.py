"""Train the reference VLA on recorded datasets; checkpoints go to --out (RUN/best, RUN/last).

Reads VLA Studio datasets directly (every saved episode not labelled a failure; trims,
instructions and labels from the annotations). Single process by default, using every core; the
same command runs data-parallel under torchrun, each rank reading its shard of the episodes.

Examples:
  vla-studio train --dataset ~/vla-studio/datasets/sim --out runs/pick --epochs 20
  vla-studio train --dataset runs/pick --resume runs/pick/last --epochs 30 --out runs/pick
  vla-studio train --dataset demos --dataset dagger/corrections --init runs/pick \
      --dagger-weighting intervention-weighted --epochs 5 --out runs/pick-round1
  torchrun --nproc-per-node 2 -m vla_studio train --dataset DATA --out runs/ddp
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from dataclasses import replace

from vla_studio.commands import train_dagger

NAME = "train"
HELP = "train the reference VLA on recorded datasets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", metavar="DIR", action="append", required=True,
                        help="dataset folder (repeatable)")
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="run directory: best/ and last/ checkpoints, metrics.jsonl")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training samples")
    parser.add_argument("--chunk", type=int, default=10, help="actions per chunk (H)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch over all ranks")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of split, weights, order, augmentation")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="fraction of episodes held out for validation")
    parser.add_argument("--best-metric", choices=("val_action_l1", "val_loss"),
                        default="val_action_l1",
                        help="validation figure that picks RUN/best (default: the decoded "
                             "actions' error)")
    parser.add_argument("--resume", metavar="CKPT", default="",
                        help="continue from a last/ checkpoint (or its run directory)")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads per rank (default: the cores divided among local ranks)")
    parser.add_argument("--data-shards", type=int, default=0,
                        help="shards the batch order is defined over (default: one per rank); a "
                             "single process with --data-shards N reproduces an N-rank run")
    parser.add_argument("--camera", metavar="NAME", action="append", default=[],
                        help="camera to use (repeatable; default: every camera)")
    parser.add_argument("--state", metavar="KEY", action="append", default=[],
                        help="state feature to read (repeatable; default: whichever of ee_pos, "
                             "ee_quat, gripper the episodes recorded)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="model input size (default 96 96)")
    parser.add_argument("--width", type=int, default=None, help="transformer width (default 128)")
    parser.add_argument("--depth", type=int, default=None, help="fusion layers (default 3)")
    parser.add_argument("--coord-channels", action="store_true",
                        help="give every camera encoder pixel-coordinate channels (CoordConv)")
    parser.add_argument("--keypoints", type=int, default=None, metavar="K",
                        help="spatial-softmax keypoints per camera (default 0: none)")
    parser.add_argument("--goal-head", action="store_true",
                        help="auxiliary target: where the gripper next closes (needs ee_pos)")
    parser.add_argument("--goal-weight", type=float, default=1.0,
                        help="weight of the --goal-head loss (default 1)")
    parser.add_argument("--no-grid-tokens", action="store_true",
                        help="with --keypoints: the cameras give only keypoint tokens")
    parser.add_argument("--include-failures", action="store_true",
                        help="also train on episodes labelled as failures")
    parser.add_argument("--no-augment", action="store_true", help="no image augmentation")
    parser.add_argument("--state-noise", type=float, default=None, metavar="STD",
                        help="Gaussian noise on the normalised state while training (default 0)")
    parser.add_argument("--shift", type=int, default=None, metavar="PX",
                        help="random image shift of up to PX pixels (default 6)")
    parser.add_argument("--colour-swap", type=float, default=None, metavar="P",
                        help="probability of permuting a sample's RGB channels and renaming "
                             "the red/green/blue of its instruction to match (default 0)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps")
    parser.add_argument("--max-minutes", type=float, default=0.0,
                        help="stop (and save) after this many minutes")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary as the last line of stdout")
    train_dagger.add_arguments(parser)
    parser.add_argument("--progress-json", action="store_true",
                        help="also print every progress report as one JSON object per line on "
                             "stdout (what the GUI's training dialog reads)")


def run(args: argparse.Namespace) -> int:
    from vla_studio.policies.vla.batches import NO_AUGMENTATION, Augmentation
    from vla_studio.policies.vla.checkpoint import CheckpointError
    from vla_studio.policies.vla.episodes import TrainingDataError
    from vla_studio.policies.vla.model import ModelConfig
    from vla_studio.policies.vla.train import TrainConfig, train

    overrides = {"chunk_size": args.chunk}
    if args.image_size:
        overrides["image_size"] = tuple(args.image_size)
    if args.width:
        overrides["width"] = args.width
    if args.depth:
        overrides["depth"] = args.depth
    if args.coord_channels:
        overrides["coord_channels"] = True
    if args.keypoints is not None:
        overrides["keypoints"] = args.keypoints
    if args.no_grid_tokens:
        overrides["grid_tokens"] = False
    if args.goal_head:
        overrides["goal_head"] = True
    try:
        augmentation = NO_AUGMENTATION if args.no_augment else Augmentation()
        if args.state_noise is not None:
            augmentation = replace(augmentation, state_noise=args.state_noise)
        if args.shift is not None:
            augmentation = replace(augmentation, shift=args.shift)
        if args.colour_swap is not None:
            augmentation = replace(augmentation, colour_swap=args.colour_swap)
        model = replace(ModelConfig(), **overrides)
        cfg = TrainConfig(datasets=tuple(args.dataset), out=args.out, epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                          val_fraction=args.val_fraction, best_metric=args.best_metric,
                          device=args.device, threads=args.threads,
                          data_shards=args.data_shards, cameras=tuple(args.camera),
                          state_keys=tuple(args.state),
                          include_failures=args.include_failures,
                          augmentation=augmentation, model=model, goal_weight=args.goal_weight,
                          max_steps=args.max_steps, max_minutes=args.max_minutes,
                          resume=args.resume, init=args.init,
                          weighting=train_dagger.weighting(args))
    except ValueError as exc:
        print(f"vla-studio train: error: {exc}", file=sys.stderr)
        return 2
    main = int(os.environ.get("RANK", "0")) == 0
    if not main:  # under torchrun, rank 0 speaks for the run
        logging.getLogger().setLevel(logging.WARNING)
    line = ProgressLine(sys.stderr)
    report = line.report if not args.progress_json else \
        (lambda p: (line.report(p), _print_progress(p)))
    try:
        result = train(cfg, report)
    except (TrainingDataError, CheckpointError, ValueError) as exc:
        line.end()
        print(f"vla-studio train: error: {exc}", file=sys.stderr)
        return 2
    line.end()
    if not main:
        return 0
    last = result.epochs[-1] if result.epochs else {}
    print(f"trained {result.steps} steps ({result.stopped_by}); {result.parameters:,} parameters; "
          f"{result.train_samples_per_s:.0f} samples/s; train loss {last.get('train_loss', math.nan):.3f}, "
          f"val loss {last.get('val_loss', math.nan):.3f}; policy: {result.best}")
    if args.json:
        print(json.dumps({"run_dir": str(result.run_dir), "best": str(result.best),
                          "steps": result.steps, "stopped_by": result.stopped_by,
                          "parameters": result.parameters,
                          "train_samples_per_s": round(result.train_samples_per_s, 2),
                          "epochs": result.epochs}))
    return 0


def _print_progress(p) -> None:
    """One progress report as a JSON line (``{"progress": {...}}``) on stdout."""
    from dataclasses import asdict

    record = {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
              for k, v in asdict(p).items() if k != "metrics"}
    record["metrics"] = {k: v for k, v in p.metrics.items()
                         if not isinstance(v, float) or math.isfinite(v)}
    print(json.dumps({"progress": record}), flush=True)


class ProgressLine:
    """One self-rewriting status line on a terminal (plain lines when not a terminal)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._open = False

    def report(self, p) -> None:
        if p.phase == "load":
            text = p.message
        elif p.phase == "train":
            eta = (p.total_steps - p.step) * p.elapsed_s / max(p.step, 1)
            text = (f"epoch {p.epoch}/{p.epochs}  step {p.step}/{p.total_steps}  loss {p.loss:.3f}  "
                    f"{p.samples_per_s:.0f} samples/s  lr {p.lr:.2e}  "
                    f"elapsed {_clock(p.elapsed_s)}  eta {_clock(eta)}")
        else:
            m = p.metrics
            self.end()
            extra = "".join(f"  {k} {m[k]:.3f}" for k in ("val_token_acc", "val_within_4_bins",
                                                             "val_action_l1", "val_gripper_acc",
                                                             "val_goal_cm", "val_goal_yaw_deg")
                        if k in m)
            print(f"epoch {p.epoch}/{p.epochs} done: train loss {p.loss:.3f}  val loss "
                  f"{p.val_loss:.3f}{extra}  ({_clock(p.elapsed_s)})", file=self.stream, flush=True)
            return
        if self.tty:
            self.stream.write("\r" + text[:160].ljust(100))
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def _clock(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 60}:{s % 60:02d}"
