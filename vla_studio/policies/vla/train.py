"""Training the reference VLA from VLA Studio datasets (single process or torchrun DDP).

```
 every rank: scan datasets (metadata, actions, state) -> split -> vocab + q01/q99 + state stats
             deal train episodes into S data shards; this rank decodes the frames of its shards
 loop:  sub-batch per held shard (seeded order + augmentation) -> concat -> forward -> loss
        -> backward (DDP averages gradients) -> clip -> AdamW (warmup + cosine)
 epoch end: validation loss on every rank's val episodes (summed over ranks)
            rank 0 writes RUN/last (resumable) and RUN/best (lowest val loss), metrics.jsonl
```
The trainer never prints; it reports :class:`Progress` to a callback (the CLI draws a progress
line, the GUI a loss plot) and logs through ``logging``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from vla_studio import __version__
from vla_studio.policies.vla import checkpoint, distributed
from vla_studio.policies.vla.batches import (Augmentation, ShardedBatchOrder,
                                             build_samples, deal_shards, gather)
from vla_studio.policies.vla.episodes import (DatasetScan, EpisodeMeta, TrainingDataError,
                                              load_frames, scan_datasets, split_episodes)
from vla_studio.policies.vla.evaluation import evaluate
from vla_studio.policies.vla.model import (ModelConfig, VLANet, chunk_loss, count_parameters,
                                           goal_loss_sum)
from vla_studio.policies.vla.normalization import ActionBins, StateStats
from vla_studio.policies.vla.sample_weights import Weighting, apply_to_training
from vla_studio.policies.vla.tokenizer import WordTokenizer

log = logging.getLogger(__name__)
METRICS = "metrics.jsonl"
BEST_METRICS = ("val_action_l1", "val_loss")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (``vla-studio train`` maps its flags onto these).

    Attributes:
        datasets: dataset folders to train on.
        out: run directory (``best/``, ``last/``, ``metrics.jsonl``).
        epochs: passes over the training samples.
        batch_size: global batch (over all ranks).
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup: fraction of the steps spent warming the learning rate up.
        seed: seeds the split, the initial weights, the batch order and augmentation.
        val_fraction: fraction of episodes held out for validation.
        max_val_samples: validation steps evaluated per epoch (evenly spaced), 0 = all.
        best_metric: the validation figure (lower is better) that picks ``RUN/best``. The
            default is the error of the decoded actions, what the robot executes: with 256 fine
            bins the cross-entropy starts rising (over-confident neighbours) while the actions
            still get better.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        threads: torch CPU threads per rank (0: the machine's cores divided among local ranks).
        data_shards: shards the batch order is defined over (0: one per rank); fixed for a run.
        cameras: cameras to use (empty: every camera all episodes share).
        state_keys: state features the policy reads (empty: those of ``ee_pos``, ``ee_quat``,
            ``gripper`` the episodes recorded).
        include_failures: also train on episodes labelled as failures.
        augmentation: image/instruction augmentation.
        model: architecture; ``num_cameras``, ``state_dim``, ``action_dim``, ``vocab_size`` are
            filled in from the data.
        goal_weight: weight of the grasp-goal auxiliary loss (models with ``goal_head``).
        max_steps: stop after this many optimisation steps in total (0: no limit).
        max_minutes: stop (and save) after this much wall-clock time (0: no limit).
        resume: a ``last/`` checkpoint (or run directory) to continue from.
        init: a checkpoint (or run directory: its ``best``) to fine-tune from: its
            architecture, vocabulary, normalisation and weights, a fresh optimiser and run
            (DAgger: each round starts from the previous round's policy).
        weighting: how correction rounds are weighted (:mod:`.sample_weights`).
        log_every: steps between progress reports.
    """

    datasets: tuple[str, ...]
    out: str
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.03
    seed: int = 0
    val_fraction: float = 0.1
    max_val_samples: int = 2000
    best_metric: str = "val_action_l1"
    device: str = "auto"
    threads: int = 0
    data_shards: int = 0
    cameras: tuple[str, ...] = ()
    state_keys: tuple[str, ...] = ()
    include_failures: bool = False
    augmentation: Augmentation = field(default_factory=Augmentation)
    model: ModelConfig = field(default_factory=ModelConfig)
    goal_weight: float = 1.0
    max_steps: int = 0
    max_minutes: float = 0.0
    resume: str = ""
    init: str = ""
    weighting: Weighting = field(default_factory=Weighting)
    log_every: int = 10


@dataclass(frozen=True)
class Progress:
    """One report from the training loop.

    Attributes:
        phase: ``"load"`` (decoding frames), ``"train"`` or ``"epoch"`` (an epoch ended).
        epoch: current epoch (1-based).
        epochs: epochs of the run.
        step: optimisation steps done in total.
        total_steps: steps the run will take (without a time limit).
        loss: mean training loss since the last report.
        val_loss: validation loss (``"epoch"`` reports).
        samples_per_s: training throughput over all ranks since the last report.
        lr: current learning rate.
        elapsed_s: wall-clock seconds since training started.
        message: what is happening (``"load"`` reports).
        metrics: every figure of the epoch (``"epoch"`` reports).
    """

    phase: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float = math.nan
    val_loss: float = math.nan
    samples_per_s: float = 0.0
    lr: float = 0.0
    elapsed_s: float = 0.0
    message: str = ""
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced.

    Attributes:
        run_dir: the run directory.
        best: the best checkpoint's directory.
        steps: optimisation steps taken in total.
        losses: the training loss of every step of this invocation (global batch mean).
        epochs: per-epoch metrics (train_loss, val_loss, val_token_acc, ...).
        parameters: model parameters.
        train_samples_per_s: mean throughput of this invocation over all ranks.
        stopped_by: ``"epochs"``, ``"max_steps"`` or ``"time"``.
    """

    run_dir: Path
    best: Path
    steps: int
    losses: list[float]
    epochs: list[dict]
    parameters: int
    train_samples_per_s: float
    stopped_by: str


def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up to ``peak``, then cosine decay to a tenth of it at ``total``."""
    warm = max(1, int(total * warmup))
    if step < warm:
        return peak * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def spec_json(scan: DatasetScan, cameras: Sequence[str], model: ModelConfig) -> dict[str, Any]:
    """The policy spec stored in ``config.json``."""
    return {"cameras": list(cameras), "image_size": list(model.image_size),
            "state_features": {k: {"dtype": "float32", "shape": list(shape), "names": None}
                               for k, shape in zip(scan.state_keys, scan.state_shapes)},
            "action_space": {"kind": scan.action_kind, "names": list(scan.action_names)},
            "control_rate_hz": scan.control_rate_hz, "chunk_size": model.chunk_size}


class _Data:
    """The samples this rank holds: its training shards and its validation episodes."""

    def __init__(self, cfg: TrainConfig, ctx: distributed.DistContext, scan: DatasetScan,
                 train_eps: list[EpisodeMeta], val_eps: list[EpisodeMeta], cameras: Sequence[str],
                 model: ModelConfig, tokenizer: WordTokenizer, bins: ActionBins, stats: StateStats,
                 shards: int, report: Callable[[Progress], None]) -> None:
        self.shard_eps = deal_shards(len(train_eps), shards)
        self.my_shards = [s for s in range(shards) if s % ctx.world == ctx.rank]
        held = [train_eps[i] for s in self.my_shards for i in self.shard_eps[s]]
        my_val = [ep for i, ep in enumerate(val_eps) if i % ctx.world == ctx.rank]
        self.shard_sizes = [sum(train_eps[i].num_steps for i in eps) for eps in self.shard_eps]
        self.shard_start: dict[int, int] = {}
        row = 0
        for s in self.my_shards:
            self.shard_start[s] = row
            row += self.shard_sizes[s]
        threads = cfg.threads or max(1, (os.cpu_count() or 1) // ctx.local_world)

        def loaded(done: int, total: int) -> None:
            if done == total or done % max(1, total // 10) == 0:  # about ten reports
                report(Progress("load", message=f"decoding frames: {done}/{total} episodes"))

        frames = load_frames(held + my_val, cameras, model.image_size, threads, loaded)
        n_train = sum(ep.num_steps for ep in held)
        self.train_images = frames.images[:n_train]
        self.val_images = frames.images[n_train:]
        tcp = _state_columns(scan, "ee_pos", 3) if model.goal_head else None
        if model.goal_head and tcp is None:
            raise TrainingDataError("the goal head needs the TCP position (state ee_pos) in "
                                    "the episodes; train without --goal-head")
        quat = _state_columns(scan, "ee_quat", 4) if model.goal_yaw else None
        self.train = build_samples(held, bins, stats, tokenizer, model.chunk_size, tcp, quat)
        self.val = build_samples(my_val, bins, stats, tokenizer, model.chunk_size, tcp, quat) \
            if my_val else None
        held_idx = [i for s in self.my_shards for i in self.shard_eps[s]]
        self.plan = apply_to_training(cfg.weighting, train_eps, self.shard_eps, held_idx,
                                      self.train.valid, self.train.episode,
                                      scan.control_rate_hz, cfg.seed)
        total_val = sum(ep.num_steps for ep in val_eps)
        stride = max(1, math.ceil(total_val / cfg.max_val_samples)) if cfg.max_val_samples else 1
        self.val_rows = np.arange(0, len(self.val), stride) if self.val is not None else np.zeros(0, int)


def _state_columns(scan: DatasetScan, name: str, size: int) -> slice | None:
    """Where state feature ``name`` (of ``size`` values) is in the concatenated state."""
    start = 0
    for key, shape in zip(scan.state_keys, scan.state_shapes):
        n = int(np.prod(shape))
        if key == name and n == size:
            return slice(start, start + n)
        start += n
    return None


def train(cfg: TrainConfig, report: Callable[[Progress], None] | None = None) -> TrainResult:
    """Run (or resume) training; see the module docstring. Every rank calls this.

    Raises:
        TrainingDataError: the datasets cannot be trained on.
        checkpoint.CheckpointError: ``cfg.resume`` is not a resumable checkpoint.
    """
    ctx = distributed.init(cfg.device)
    try:
        return _train(cfg, ctx, report if (report is not None and ctx.is_main) else (lambda p: None))
    finally:
        distributed.shutdown(ctx)


def _train(cfg: TrainConfig, ctx: distributed.DistContext, report: Callable[[Progress], None]) -> TrainResult:
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // ctx.local_world)
    torch.set_num_threads(threads)
    run_dir = Path(cfg.out).expanduser()
    resume_state: dict[str, Any] = {}
    resumed = None
    if cfg.resume:
        resumed, opt_tensors, resume_state = checkpoint.load_resume_state(cfg.resume)
        settings = resume_state["settings"]
        # The run's identity (data order, model, statistics) comes from the checkpoint; only
        # how long to train may change.
        cfg = replace(cfg, seed=settings["seed"], batch_size=settings["batch_size"],
                      data_shards=settings["data_shards"], val_fraction=settings["val_fraction"],
                      cameras=tuple(resumed.spec["cameras"]),
                      state_keys=tuple(resumed.spec["state_features"]),
                      include_failures=settings["include_failures"],
                      best_metric=settings.get("best_metric", cfg.best_metric),
                      augmentation=Augmentation(**settings["augmentation"]),
                      weighting=Weighting(**settings.get("weighting", {})))
    start_from = None
    if cfg.init and not cfg.resume:
        start_from = checkpoint.load(cfg.init)
        cfg = replace(cfg, cameras=tuple(start_from.spec["cameras"]),
                      state_keys=tuple(start_from.spec["state_features"]))
    if not cfg.resume and any((run_dir / n).exists() for n in (checkpoint.LAST, checkpoint.BEST)):
        raise TrainingDataError(f"{run_dir} already holds a training run; continue it with "
                                f"--resume {run_dir / checkpoint.LAST} or give another --out")
    if cfg.best_metric not in BEST_METRICS:
        raise ValueError(f"best metric {cfg.best_metric!r} is not one of {', '.join(BEST_METRICS)}")
    shards = cfg.data_shards or ctx.world
    if shards % ctx.world:
        raise TrainingDataError(f"{shards} data shards cannot be spread evenly over {ctx.world} ranks")
    scan = scan_datasets(cfg.datasets, cameras=cfg.cameras or None, state_keys=cfg.state_keys or None,
                         include_failures=cfg.include_failures)
    train_idx, val_idx = split_episodes(len(scan.episodes), cfg.val_fraction, cfg.seed)
    train_eps = [scan.episodes[i] for i in train_idx]
    val_eps = [scan.episodes[i] for i in val_idx]
    if len(train_eps) < shards:
        raise TrainingDataError(f"{len(train_eps)} training episode(s) cannot fill {shards} data "
                                "shards: record more episodes or use fewer ranks")
    cameras = tuple(cfg.cameras or scan.cameras)
    if resumed is not None or start_from is not None:
        base = resumed if resumed is not None else start_from
        model_cfg, tokenizer, bins, stats = base.model, base.tokenizer, base.actions, base.state
    else:
        tokenizer = WordTokenizer.build((t for ep in scan.episodes for t in ep.instructions),
                                        cfg.model.max_tokens)
        bins = ActionBins.fit(np.concatenate([ep.actions for ep in train_eps]), cfg.model.bins)
        stats = StateStats.from_flat(scan.state_keys, scan.state_shapes,
                                     np.concatenate([ep.state for ep in train_eps]))
        model_cfg = replace(cfg.model, num_cameras=len(cameras), state_dim=stats.dim,
                            action_dim=bins.dim, vocab_size=tokenizer.size,
                            goal_yaw=cfg.model.goal_head and
                            _state_columns(scan, "ee_quat", 4) is not None)
    spec = spec_json(scan, cameras, model_cfg)
    for base in (resumed, start_from):
        if base is not None and base.spec != spec:
            raise checkpoint.CheckpointError(f"{base.path}: its spec does not match the "
                                             "datasets (cameras, state, actions or rate differ)")
    log.info("%d training / %d validation episodes (%d left out) from %s; cameras %s",
             len(train_eps), len(val_eps), len(scan.skipped), ", ".join(cfg.datasets),
             ", ".join(cameras))
    data = _Data(cfg, ctx, scan, train_eps, val_eps, cameras, model_cfg, tokenizer, bins, stats,
                 shards, report)
    order = ShardedBatchOrder(data.plan.sizes, cfg.batch_size, cfg.seed)
    total_steps = order.steps_per_epoch * cfg.epochs

    torch.manual_seed(cfg.seed)
    net = VLANet(model_cfg)
    if resumed is not None:
        checkpoint.check_weights(resumed.path, net.state_dict(), resumed.weights)
        net.load_state_dict(resumed.weights)
    elif start_from is not None:
        checkpoint.check_weights(start_from.path, net.state_dict(), start_from.weights)
        net.load_state_dict(start_from.weights)
    net.to(ctx.device)
    model: torch.nn.Module = net
    if ctx.distributed:
        model = DistributedDataParallel(net, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
    decay = [p for n, p in net.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in net.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    if resumed is not None:
        opt.load_state_dict(checkpoint.unflatten_optimizer(opt_tensors, resume_state["optimizer"]))
    step = int(resume_state.get("step", 0))
    start_epoch = int(resume_state.get("epoch", 0))
    start_in_epoch = int(resume_state.get("epoch_step", 0))
    best_val = float(resume_state.get("best_value", math.inf))
    history: list[dict] = list(resume_state.get("history", []))
    settings = {"seed": cfg.seed, "batch_size": cfg.batch_size, "data_shards": shards,
                "val_fraction": cfg.val_fraction, "include_failures": cfg.include_failures,
                "best_metric": cfg.best_metric, "augmentation": asdict(cfg.augmentation),
                "weighting": cfg.weighting.as_dict(), "init": str(cfg.init)}
    params = count_parameters(net)
    if ctx.is_main:
        _prepare_run_dir(run_dir, resumed is not None, step)
        log.info("model: %d parameters; %d steps per epoch of %d samples; %d thread(s) per rank "
                 "on %s, %d rank(s)", params, order.steps_per_epoch, cfg.batch_size, threads,
                 ctx.device, ctx.world)

    losses: list[float] = []
    t_start = time.monotonic()
    t_report, n_report, loss_report = t_start, 0, 0.0
    stopped_by = "epochs"
    deadline = t_start + cfg.max_minutes * 60.0 if cfg.max_minutes > 0 else math.inf
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        epoch_loss, epoch_n = 0.0, 0
        first = start_in_epoch if epoch == start_epoch else 0
        s = first - 1
        for s in range(first, order.steps_per_epoch):
            batch = _batch(data, order, epoch, s, cfg.augmentation, ctx.device)
            lr = lr_at(step, total_steps, cfg.lr, cfg.warmup)
            for group in opt.param_groups:
                group["lr"] = lr
            if model_cfg.goal_head:
                logits, goal = model(batch["images"], batch["state"], batch["ids"],
                                     with_goal=True)
                goal_sum, _ = goal_loss_sum(goal, batch["goal"], batch["goal_valid"])
                # Divided by the global batch, like the chunk loss (DDP = one process).
                goal_loss = goal_sum / (batch["valid"].shape[0] * ctx.world)
                loss = chunk_loss(logits, batch["tokens"], batch["valid"]) + \
                    cfg.goal_weight * goal_loss
            else:
                logits = model(batch["images"], batch["state"], batch["ids"])
                loss = chunk_loss(logits, batch["tokens"], batch["valid"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            out_of_time = time.monotonic() > deadline
            total, stop_votes = distributed.all_sum(ctx, [float(loss.detach()), float(out_of_time)])
            global_loss = total / ctx.world
            losses.append(global_loss)
            epoch_loss += global_loss
            epoch_n += 1
            loss_report += global_loss
            n_report += 1
            if ctx.is_main:
                _append_metrics(run_dir, {"step": step, "epoch": epoch + 1, "loss": global_loss, "lr": lr})
            if n_report >= cfg.log_every or s == order.steps_per_epoch - 1:
                now = time.monotonic()
                report(Progress("train", epoch + 1, cfg.epochs, step, total_steps,
                                loss_report / n_report,
                                samples_per_s=n_report * cfg.batch_size / max(now - t_report, 1e-9),
                                lr=lr, elapsed_s=now - t_start))
                t_report, n_report, loss_report = now, 0, 0.0
            if stop_votes > 0:
                stopped_by = "time"
                break
            if cfg.max_steps and step >= cfg.max_steps:
                stopped_by = "max_steps"
                break
        val = evaluate(net, data.val_images, data.val, data.val_rows, bins, cfg.batch_size,
                       ctx) if data.val is not None or ctx.distributed else {}
        train_loss = epoch_loss / max(1, epoch_n)
        metrics = {"epoch": epoch + 1, "step": step, "train_loss": train_loss, **val,
                   "elapsed_s": time.monotonic() - t_start}
        history.append(metrics)
        val_loss = val.get("val_loss", math.nan)
        value = val.get(cfg.best_metric, math.nan)
        # Without validation data the latest weights are the best guess.
        improved = value < best_val if math.isfinite(value) else True
        if improved and math.isfinite(value):
            best_val = value
        complete = stopped_by == "epochs"
        done_in_epoch = s + 1
        if ctx.is_main:
            _append_metrics(run_dir, metrics)
            training = {"datasets": list(cfg.datasets), "epochs_done": epoch + (1 if complete else 0),
                        "steps": step, "train_episodes": len(train_eps), "val_episodes": len(val_eps),
                        "metrics": metrics, "software_version": __version__, "seed": cfg.seed,
                        "weighting": cfg.weighting.as_dict(), "init": str(cfg.init),
                        "samples": data.plan.counts}
            common = dict(model=model_cfg, weights=net.state_dict(), spec=spec, tokenizer=tokenizer,
                          actions=bins, state=stats, training=training)
            tensors, rest = checkpoint.flatten_optimizer(opt.state_dict())
            trainer_state = {"epoch": epoch + 1 if complete else epoch,
                             "epoch_step": 0 if complete else done_in_epoch, "step": step,
                             "best_value": best_val, "settings": settings,
                             "optimizer": rest, "history": history}
            checkpoint.save(run_dir / checkpoint.LAST, optimizer=tensors,
                            trainer_state=trainer_state, **common)
            if improved:
                checkpoint.save(run_dir / checkpoint.BEST, **common)
        distributed.barrier(ctx)
        report(Progress("epoch", epoch + 1, cfg.epochs, step, total_steps, train_loss,
                        val_loss=val_loss, elapsed_s=time.monotonic() - t_start, metrics=metrics))
        if stopped_by != "epochs":
            break
    elapsed = time.monotonic() - t_start
    return TrainResult(run_dir, run_dir / checkpoint.BEST, step, losses, history, params,
                       len(losses) * cfg.batch_size / max(elapsed, 1e-9), stopped_by)


def _batch(data: _Data, order: ShardedBatchOrder, epoch: int, s: int, aug: Augmentation,
           device: torch.device) -> dict[str, torch.Tensor]:
    """This rank's part of the global batch: the sub-batches of its shards, concatenated."""
    parts = []
    for shard in data.my_shards:
        rows = data.plan.shard_rows[shard][order.rows(epoch, s, shard)] + data.shard_start[shard]
        parts.append(gather(data.train_images, data.train, rows, order.rng(epoch, s, shard), aug))
    batch = {k: torch.cat([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in parts[0]}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _prepare_run_dir(run_dir: Path, resuming: bool, step: int) -> None:
    """Create the run directory; on resume, drop the records past the checkpoint (steps a
    crashed run took after its last save), so the metrics read as one continuous run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    records = read_metrics(run_dir) if resuming else []
    kept = [r for r in records if r.get("step", 0) <= step]
    with open(run_dir / METRICS, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)


def _append_metrics(run_dir: Path, record: dict) -> None:
    with open(run_dir / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every record of a run's ``metrics.jsonl`` (step records and epoch records)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
