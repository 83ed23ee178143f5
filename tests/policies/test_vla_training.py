"""Training the reference VLA on the micro-dataset: learning, determinism, resume, DDP, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from safetensors.torch import load_file

from vla_studio.cli import main as cli_main
from vla_studio.policies.vla import checkpoint
from vla_studio.policies.vla.episodes import TrainingDataError
from vla_studio.policies.vla.train import read_metrics, train

# The same small run through the command line, for the single-process / torchrun comparison.
CLI_RUN = ["--epochs", "2", "--batch-size", "8", "--image-size", "32", "32", "--width", "32",
           "--depth", "1", "--chunk", "4", "--threads", "1", "--device", "cpu", "--seed", "5"]


def _losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


def test_training_loss_decreases_on_the_micro_dataset(tiny_config):
    result = train(tiny_config(epochs=6))
    assert result.steps == len(result.losses) >= 30
    first, last = np.mean(result.losses[:3]), np.mean(result.losses[-3:])
    assert last < 0.7 * first, (first, last)
    val = [e["val_loss"] for e in result.epochs]
    assert len(val) == 6 and val[-1] < val[0]
    # RUN/best holds the epoch whose decoded actions were closest to the demonstrations.
    errors = [e["val_action_l1"] for e in result.epochs]
    best = checkpoint.load(result.best)
    assert best.training["metrics"]["epoch"] == int(np.argmin(errors)) + 1
    assert (result.best / checkpoint.CONFIG).is_file() and (result.run_dir / "last" / "optimizer.safetensors").is_file()


def test_training_is_deterministic_for_a_seed(tiny_config, tmp_path):
    a = train(tiny_config(out=str(tmp_path / "a"), max_steps=6))
    b = train(tiny_config(out=str(tmp_path / "b"), max_steps=6))
    c = train(tiny_config(out=str(tmp_path / "c"), max_steps=6, seed=1))
    assert a.losses == b.losses and a.losses != c.losses
    wa = load_file(str(a.best / checkpoint.WEIGHTS))
    wb = load_file(str(b.best / checkpoint.WEIGHTS))
    assert all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)


def test_resume_continues_the_run_exactly(tiny_config, tmp_path):
    whole = train(tiny_config(out=str(tmp_path / "whole"), epochs=2))
    part = train(tiny_config(out=str(tmp_path / "part"), epochs=2, max_steps=5))
    assert part.stopped_by == "max_steps" and part.steps == 5
    rest = train(tiny_config(out=str(tmp_path / "part"), epochs=2,
                             resume=str(tmp_path / "part" / "last")))
    assert rest.steps == whole.steps
    np.testing.assert_allclose(part.losses + rest.losses, whole.losses, rtol=1e-6)
    assert _losses(tmp_path / "part") == pytest.approx(whole.losses, rel=1e-6)


def test_a_new_run_refuses_to_overwrite_an_old_one(tiny_config):
    train(tiny_config(max_steps=1))
    with pytest.raises(TrainingDataError, match="already holds a training run"):
        train(tiny_config(max_steps=1))


def test_two_ddp_ranks_follow_the_single_process_loss_curve(micro_dataset, tmp_path):
    """torchrun with 2 gloo ranks (each reading half the episodes) against one process with
    the same global batch (the batch order over 2 data shards)."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert cli_main(["train", "--dataset", str(micro_dataset), "--out", str(single),
                     "--data-shards", "2", *CLI_RUN]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", "-m", "vla_studio", "train",
                           "--dataset", str(micro_dataset), "--out", str(ddp), *CLI_RUN],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0/2 joined (gloo on cpu)" in proc.stderr
    a, b = _losses(single), _losses(ddp)
    assert len(a) == len(b) >= 10
    np.testing.assert_allclose(b, a, rtol=1e-4)
    assert a[-1] < a[0]
    val_a = [r["val_loss"] for r in read_metrics(single) if "val_loss" in r]
    val_b = [r["val_loss"] for r in read_metrics(ddp) if "val_loss" in r]
    np.testing.assert_allclose(val_b, val_a, rtol=1e-4)


def test_train_command_prints_progress_and_a_summary(micro_dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["train", "--dataset", str(micro_dataset), "--out", str(out), "--json",
                     *CLI_RUN]) == 0
    captured = capsys.readouterr()
    assert "samples/s" in captured.err and "epoch 2/2 done" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["best"] == str(out / "best") and summary["parameters"] > 0
    assert len(summary["epochs"]) == 2 and "val_loss" in summary["epochs"][-1]
    assert checkpoint.load(out).path == out / "best"


def test_train_command_explains_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    assert cli_main(["train", "--dataset", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a VLA Studio dataset" in err[0]


def test_keypoint_model_with_goal_head_and_colour_swap_trains_and_reloads(tiny_config):
    from vla_studio.policies.vla.batches import Augmentation

    cfg = tiny_config(epochs=2, model=replace(tiny_config().model, keypoints=8, grid_tokens=False,
                                              goal_head=True, coord_channels=True),
                      augmentation=Augmentation(shift=2, state_noise=0.2, colour_swap=0.5))
    result = train(cfg)
    assert all(np.isfinite(result.losses)) and np.mean(result.losses[-3:]) < result.losses[0]
    assert result.epochs[-1]["val_goal_cm"] > 0  # the goal head is validated
    best = checkpoint.load(result.best)
    assert best.model.goal_head and best.model.keypoints == 8 and not best.model.grid_tokens
