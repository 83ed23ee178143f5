"""Offline validation of the reference VLA: loss and action accuracy on held-out episodes.

(Closed-loop evaluation in the simulator is ``vla-studio eval``; this is the per-epoch check on
recorded steps that training reports.)
"""

from __future__ import annotations

import numpy as np
import torch

from vla_studio.policies.vla import distributed
from vla_studio.policies.vla.batches import GOAL_SCALE_M, NO_AUGMENTATION, SampleTable, gather
from vla_studio.policies.vla.model import chunk_loss_sum
from vla_studio.policies.vla.normalization import ActionBins


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: np.ndarray, table: SampleTable | None,
             rows: np.ndarray, bins: ActionBins, batch_size: int,
             ctx: distributed.DistContext) -> dict[str, float]:
    """Validation figures over ``rows`` of ``table``, summed over every rank.

    Returns ``val_loss`` (cross-entropy per valid chunk step), ``val_token_acc`` (fraction of
    bins predicted exactly), ``val_within_4_bins`` (within +-4 bins, i.e. +-3 % of the
    q01..q99 range) and ``val_action_l1`` (mean absolute error of the decoded first action of
    the chunk, in normalised [-1, 1] units) and ``val_gripper_acc`` (whether the first action
    opens/closes the gripper right); with a goal head ``val_goal_cm``, the mean horizontal
    error of the grasp-goal prediction in cm (and ``val_goal_yaw_deg``, the error of the turn
    to make, when it is predicted). Empty when no rank has validation data.
    """
    was_training = model.training
    model.eval()
    device = ctx.device
    loss_sum = valid_n = exact = near = token_n = l1_sum = first_n = grip_ok = 0.0
    goal_cm = goal_n = goal_deg = 0.0
    with_goal = bool(getattr(getattr(model, "cfg", None), "goal_head", False))
    if table is not None:
        for start in range(0, len(rows), batch_size):
            b = gather(images, table, rows[start:start + batch_size], None, NO_AUGMENTATION)
            b = {k: v.to(device) for k, v in b.items()}
            if with_goal and "goal" in b:
                logits, goal = model(b["images"], b["state"], b["ids"], with_goal=True)
                err = (goal - b["goal"])[:, :2].norm(dim=-1) * (GOAL_SCALE_M * 100.0)
                goal_cm += float((err * b["goal_valid"]).sum())
                goal_n += float(b["goal_valid"].sum())
                if goal.shape[-1] == 4:
                    turn = (goal[:, 3] - b["goal"][:, 3]).abs() * (180.0 / np.pi)
                    goal_deg += float((turn * b["goal_valid"]).sum())
            else:
                logits = model(b["images"], b["state"], b["ids"])
            total, n = chunk_loss_sum(logits, b["tokens"], b["valid"])
            loss_sum += float(total)
            valid_n += float(n)
            pred = logits.argmax(-1)
            mask = b["valid"].unsqueeze(-1).expand_as(pred)
            diff = (pred - b["tokens"]).abs()
            exact += float(((diff == 0) & mask).sum())
            near += float(((diff <= 4) & mask).sum())
            token_n += float(mask.sum())
            first_pred = bins.normalize(bins.from_tokens(pred[:, 0].cpu().numpy()))
            first_true = bins.normalize(bins.from_tokens(b["tokens"][:, 0].cpu().numpy()))
            l1_sum += float(np.abs(first_pred - first_true).mean(axis=1).sum())
            # The gripper (always the last action element) as open/closed, as a robot acts on it.
            grip_ok += float(((first_pred[:, -1] > 0) == (first_true[:, -1] > 0)).sum())
            first_n += float(pred.shape[0])
    (loss_sum, valid_n, exact, near, token_n, l1_sum, first_n, grip_ok, goal_cm, goal_n,
     goal_deg) = distributed.all_sum(ctx, [loss_sum, valid_n, exact, near, token_n, l1_sum,
                                           first_n, grip_ok, goal_cm, goal_n, goal_deg])
    model.train(was_training)
    if valid_n == 0:
        return {}
    figures = {"val_loss": loss_sum / valid_n, "val_token_acc": exact / token_n,
               "val_within_4_bins": near / token_n, "val_action_l1": l1_sum / max(first_n, 1.0),
               "val_gripper_acc": grip_ok / max(first_n, 1.0)}
    if goal_n:
        figures["val_goal_cm"] = goal_cm / goal_n
        if goal_deg:
            figures["val_goal_yaw_deg"] = goal_deg / goal_n
    return figures
