"""The reference VLA's speed: batch-1 CPU inference latency and training throughput.

Figures: ``parameters``; ``latency_p50_ms`` / ``latency_p99_ms`` of ``Policy.infer`` at batch 1
on the CPU with the app's thread setting (one torch thread, see PLATFORM.md), observations shaped
like the default station's cameras (resizing included); ``train_samples_per_s``, optimisation
steps (augmentation, forward, backward, AdamW) on a synthetic batch with the trainer's default
threads. Targets (2-core machine): latency p99 <= 30 ms.

The policy is the untrained reference architecture unless ``--policy DIR`` names a checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HELP = "reference VLA: inference latency (batch 1, CPU) and training samples/s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", metavar="DIR", default=None,
                        help="a checkpoint (default: the untrained reference architecture)")
    parser.add_argument("--iterations", type=int, default=300, help="timed inference calls")
    parser.add_argument("--train-steps", type=int, default=20, help="timed optimisation steps")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch")
    parser.add_argument("--train-threads", type=int, default=0,
                        help="torch threads for the training figure (default: every core)")


def run(args: argparse.Namespace) -> dict:
    import torch

    from vla_studio.policies.vla.policy import INFERENCE_THREADS, VLAPolicy, VLAPolicyConfig, \
        untrained_policy

    if args.policy:
        policy = VLAPolicy(VLAPolicyConfig(checkpoint=args.policy, threads=INFERENCE_THREADS))
        policy.load()
    else:
        policy = untrained_policy()
    torch.set_num_threads(INFERENCE_THREADS)
    ckpt = policy.checkpoint
    policy.reset("pick up the red cube")
    obs = _observation(policy)
    print(f"timing {args.iterations} inferences (batch 1, {INFERENCE_THREADS} thread) ...",
          file=sys.stderr)
    for _ in range(10):
        policy.infer(obs)
    times = []
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        policy.infer(obs)
        times.append((time.perf_counter() - t0) * 1000.0)
    train_threads = args.train_threads or os.cpu_count() or 1
    print(f"timing {args.train_steps} training steps (batch {args.batch_size}, {train_threads} "
          "threads) ...", file=sys.stderr)
    samples_per_s = _train_rate(ckpt.model, args.batch_size, args.train_steps, train_threads)
    torch.set_num_threads(INFERENCE_THREADS)
    return {
        "parameters": sum(t.numel() for t in ckpt.weights.values()),
        "latency_p50_ms": round(float(np.percentile(times, 50)), 3),
        "latency_p99_ms": round(float(np.percentile(times, 99)), 3),
        "latency_max_ms": round(float(np.max(times)), 3),
        "inference_threads": INFERENCE_THREADS,
        "train_samples_per_s": round(samples_per_s, 1),
        "train_batch_size": args.batch_size,
        "train_threads": train_threads,
        "image_size": list(ckpt.model.image_size),
        "cameras": len(policy.spec.cameras),
        "chunk_size": ckpt.model.chunk_size,
    }


def _observation(policy):
    """Random frames at the default station's camera sizes, a plausible state."""
    from vla_studio.core.types import Frame, Observation

    rng = np.random.default_rng(0)
    sizes = {"front": (240, 320), "wrist": (224, 224)}
    t = time.monotonic()
    frames = {cam: Frame(cam, 0, t, rng.integers(0, 255, (*sizes.get(cam, (224, 224)), 3), np.uint8))
              for cam in policy.spec.cameras}
    state = {k: np.zeros(f.shape, np.float32) for k, f in policy.spec.state_features.items()}
    return Observation(0, t, state, frames)


def _train_rate(model_cfg, batch_size: int, steps: int, threads: int) -> float:
    """Samples per second of full optimisation steps on a synthetic batch."""
    import torch

    from vla_studio.policies.vla.batches import Augmentation, augment
    from vla_studio.policies.vla.model import VLANet, chunk_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = VLANet(model_cfg).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    h, w = model_cfg.image_size
    images = rng.integers(0, 255, (batch_size, model_cfg.num_cameras, 3, h, w), np.uint8)
    state = torch.randn(batch_size, model_cfg.state_dim)
    ids = torch.randint(1, model_cfg.vocab_size, (batch_size, model_cfg.max_tokens))
    tokens = torch.randint(0, model_cfg.bins, (batch_size, model_cfg.chunk_size, model_cfg.action_dim))
    valid = torch.ones(batch_size, model_cfg.chunk_size, dtype=torch.bool)
    aug = Augmentation()

    def one_step() -> None:
        x = augment(torch.from_numpy(images).float().div_(255.0), rng, aug)
        loss = chunk_loss(net(x, state, ids), tokens, valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()

    for _ in range(2):
        one_step()
    t0 = time.perf_counter()
    for _ in range(steps):
        one_step()
    return steps * batch_size / (time.perf_counter() - t0)
