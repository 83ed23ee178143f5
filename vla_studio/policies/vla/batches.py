"""Training samples, the sharded batch order, and image augmentation.

A *sample* is one step of an episode: its camera frames, its normalised state, an instruction,
and the next H actions as bins (steps past the episode's end are marked invalid).

The batch order is defined over *data shards*, not processes: the training episodes are dealt
round-robin into S shards, and every global batch is ``B / S`` samples from each shard, drawn
from a per-(seed, epoch, shard) permutation, augmented with a per-(seed, epoch, step, shard)
random stream. A process holds some shards and concatenates their sub-batches. One process
holding all S shards and S data-parallel ranks holding one each therefore see exactly the same
global batches with the same augmentation, which is what makes a DDP run reproduce the single
process's loss curve (and lets a run resume bit-for-bit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from vla_studio.policies.vla.colour_swap import ColourSwap
from vla_studio.policies.vla.episodes import EpisodeMeta
from vla_studio.policies.vla.normalization import ActionBins, StateStats
from vla_studio.policies.vla.tokenizer import WordTokenizer


@dataclass(frozen=True)
class Augmentation:
    """Image augmentation applied to training batches (never to validation or inference).

    Attributes:
        shift: random translation of up to this many pixels (replicate padding, as DrQ).
        brightness: additive brightness jitter, +- this (images in 0..1).
        contrast: multiplicative contrast jitter, 1 +- this.
        paraphrases: draw the instruction among the episode's paraphrases (else the primary).
        state_noise: Gaussian noise of this standard deviation added to the normalised state
            (0: none). A policy that sees its exact pose can learn to continue the motion it
            has begun instead of looking where the cube is (the "copycat" shortcut of
            behaviour cloning); blurring the pose makes the cameras the reliable evidence.
        colour_swap: probability that a sample's RGB channels are permuted and the colour
            words of its instruction renamed to match (see
            :mod:`~vla_studio.policies.vla.colour_swap`); 0: never.

    Hue and saturation are left alone on purpose: the instructions name colours.
    """

    shift: int = 6
    brightness: float = 0.1
    contrast: float = 0.15
    paraphrases: bool = True
    state_noise: float = 0.0
    colour_swap: float = 0.0

    def __post_init__(self) -> None:
        if min(self.shift, self.brightness, self.contrast, self.state_noise) < 0:
            raise ValueError("augmentation amounts must be >= 0")
        if not 0.0 <= self.colour_swap <= 1.0:
            raise ValueError("colour_swap is a probability (0..1)")


NO_AUGMENTATION = Augmentation(shift=0, brightness=0.0, contrast=0.0, paraphrases=False)


@dataclass
class SampleTable:
    """Per-step targets of some episodes, row-aligned with their :class:`FrameStore`.

    Attributes:
        state: ``[N, S]`` float32 normalised state.
        tokens: ``[N, H, D]`` int64 action bins of the chunk starting at each step.
        valid: ``[N, H]`` bool, False where the chunk runs past the episode's end.
        episode: ``[N]`` index (into the held episodes) of each row's episode.
        instruction_ids: ``[K, L]`` token ids of every instruction of every held episode.
        instruction_first: ``[E]`` first row of each episode's instructions in ``instruction_ids``.
        instruction_count: ``[E]`` instructions per episode.
        colour_swap: token remapping of the colour-swap augmentation.
        goal: ``[N, 3 or 4]`` float32, where the gripper next closes relative to the TCP now
            (units of :data:`GOAL_SCALE_M`) and the turn to it (radians), the grasp-goal
            auxiliary target.
        goal_valid: ``[N]`` bool, True on the steps before a grasp (gripper commanded open
            and a closing step later in the episode).
    """

    state: np.ndarray
    tokens: np.ndarray
    valid: np.ndarray
    episode: np.ndarray
    instruction_ids: np.ndarray
    instruction_first: np.ndarray
    instruction_count: np.ndarray
    colour_swap: ColourSwap | None = None
    goal: np.ndarray | None = None
    goal_valid: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.state.shape[0])


GOAL_SCALE_M = 0.05


def quat_yaw(quat: np.ndarray) -> np.ndarray:
    """Heading (radians) of the x axis of ``(w, x, y, z)`` quaternions ``[T, 4]``."""
    w, x, y, z = (quat[:, i] for i in range(4))
    return np.arctan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (y * y + z * z))


def grasp_goals(actions: np.ndarray, tcp: np.ndarray, closed_below: float,
                quat: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where the gripper next closes, relative to the TCP, for every step of one episode.

    Args:
        actions: ``[T, D]`` actions, the gripper command last.
        tcp: ``[T, 3]`` TCP positions.
        closed_below: gripper commands below this close the gripper.
        quat: ``[T, 4]`` TCP orientations ``(w, x, y, z)``: adds the turn still to make (the
            heading at the closing step minus the heading now, radians) as a 4th value.

    Returns:
        ``goal [T, 3 or 4]`` (position in units of :data:`GOAL_SCALE_M`) and ``valid [T]`` (the
        steps commanded open with a closing step after them).
    """
    closed = actions[:, -1] < closed_below
    yaw = quat_yaw(quat) if quat is not None else None
    goal = np.zeros((len(actions), 3 if yaw is None else 4), np.float32)
    valid = np.zeros(len(actions), bool)
    nxt = -1
    for t in range(len(actions) - 1, -1, -1):  # walk back, remembering the next close
        if closed[t] and (t == 0 or not closed[t - 1]):
            nxt = t
        if not closed[t] and nxt > t:
            goal[t, :3] = (tcp[nxt] - tcp[t]) / GOAL_SCALE_M
            if yaw is not None:
                goal[t, 3] = np.arctan2(np.sin(yaw[nxt] - yaw[t]), np.cos(yaw[nxt] - yaw[t]))
            valid[t] = True
    return goal, valid


def build_samples(episodes: Sequence[EpisodeMeta], bins: ActionBins, stats: StateStats,
                  tokenizer: WordTokenizer, chunk: int,
                  tcp_columns: slice | None = None,
                  quat_columns: slice | None = None) -> SampleTable:
    """The samples of ``episodes`` (in order, every used step). ``tcp_columns``,
    ``quat_columns``: where the TCP position and orientation are in the episodes' state (for
    the grasp-goal targets; None: no targets, no turn target)."""
    states, tokens, valid, episode, ids, first, count = [], [], [], [], [], [], []
    goals, goal_valid = [], []
    closed_below = float(bins.q01[-1] + bins.q99[-1]) / 2.0
    for e, ep in enumerate(episodes):
        t = ep.num_steps
        ep_tokens = bins.to_tokens(ep.actions)  # [T, D]
        # Row i holds the bins of steps i .. i+H-1; past the end the last bins repeat but the
        # step is invalid (excluded from the loss).
        idx = np.arange(t)[:, None] + np.arange(chunk)[None, :]
        valid.append(idx < t)
        tokens.append(ep_tokens[np.minimum(idx, t - 1)])
        states.append(stats.normalize(ep.state).astype(np.float32))
        episode.append(np.full(t, e, np.int64))
        first.append(len(ids))
        count.append(len(ep.instructions))
        ids.extend(tokenizer.encode(text) for text in ep.instructions)
        if tcp_columns is not None:
            quat = ep.state[:, quat_columns] if quat_columns is not None else None
            g, v = grasp_goals(ep.actions, ep.state[:, tcp_columns], closed_below, quat)
            goals.append(g)
            goal_valid.append(v)
    all_ids = np.stack(ids)
    return SampleTable(np.concatenate(states), np.concatenate(tokens).astype(np.int64),
                       np.concatenate(valid), np.concatenate(episode),
                       all_ids, np.asarray(first, np.int64), np.asarray(count, np.int64),
                       ColourSwap.build(tokenizer, all_ids),
                       np.concatenate(goals) if goals else None,
                       np.concatenate(goal_valid) if goal_valid else None)


def deal_shards(num_episodes: int, shards: int) -> list[list[int]]:
    """Training episode indices dealt round-robin into ``shards`` lists."""
    return [list(range(s, num_episodes, shards)) for s in range(shards)]


class ShardedBatchOrder:
    """Which rows of each shard form each step's sub-batch.

    Args:
        shard_sizes: samples in each shard (known to every rank from the metadata scan).
        global_batch: samples per optimisation step over all shards; a multiple of the shards.
        seed: the run's seed.
    """

    def __init__(self, shard_sizes: Sequence[int], global_batch: int, seed: int) -> None:
        if global_batch % len(shard_sizes):
            raise ValueError(f"the batch size {global_batch} must be a multiple of the "
                             f"{len(shard_sizes)} data shards (one per rank by default)")
        self.shard_sizes = [int(n) for n in shard_sizes]
        self.per_shard = global_batch // len(shard_sizes)
        self.seed = int(seed)
        if self.per_shard < 1 or min(self.shard_sizes) < self.per_shard:
            raise ValueError(f"a shard holds {min(self.shard_sizes)} samples, fewer than the "
                             f"{self.per_shard} it must give every batch: use a smaller "
                             "--batch-size or more data")
        # Every shard runs the same number of steps (DDP ranks must step together).
        self.steps_per_epoch = min(n // self.per_shard for n in self.shard_sizes)
        self._cache: tuple[int, int, np.ndarray] | None = None

    def rows(self, epoch: int, step: int, shard: int) -> np.ndarray:
        """Row indices (within the shard) of the sub-batch of ``shard`` at ``step`` of ``epoch``."""
        if self._cache is None or self._cache[:2] != (epoch, shard):
            rng = np.random.default_rng([self.seed, epoch, shard])
            self._cache = (epoch, shard, rng.permutation(self.shard_sizes[shard]))
        start = step * self.per_shard
        return self._cache[2][start:start + self.per_shard]

    def rng(self, epoch: int, step: int, shard: int) -> np.random.Generator:
        """The augmentation stream of one sub-batch."""
        return np.random.default_rng([self.seed, epoch, step, shard, 1])


def gather(images: np.ndarray, table: SampleTable, rows: np.ndarray,
           rng: np.random.Generator | None, aug: Augmentation) -> dict[str, torch.Tensor]:
    """A batch of ``rows`` as tensors: ``images`` ``[B, C, 3, h, w]`` float 0..1, ``state``,
    ``ids``, ``tokens``, ``valid``. ``rng`` None means no augmentation (validation)."""
    x = torch.from_numpy(images[rows]).float().div_(255.0)
    episode = table.episode[rows]
    pick = table.instruction_first[episode]
    if rng is not None and aug.paraphrases:
        pick = pick + (rng.random(len(rows)) * table.instruction_count[episode]).astype(np.int64)
    state = torch.from_numpy(table.state[rows])
    ids = torch.from_numpy(table.instruction_ids[pick])
    if rng is not None:
        x = augment(x, rng, aug)
        if aug.state_noise > 0:
            noise = rng.normal(0.0, aug.state_noise, size=tuple(state.shape))
            state = state + torch.from_numpy(noise).float()
        if aug.colour_swap > 0 and table.colour_swap is not None:
            x, ids = table.colour_swap.apply(x, ids, pick, rng, aug.colour_swap)
    out = {"images": x,
           "state": state,
           "ids": ids,
           "tokens": torch.from_numpy(table.tokens[rows]),
           "valid": torch.from_numpy(table.valid[rows])}
    if table.goal is not None and table.goal_valid is not None:
        out["goal"] = torch.from_numpy(table.goal[rows])
        out["goal_valid"] = torch.from_numpy(table.goal_valid[rows])
    return out


def augment(x: torch.Tensor, rng: np.random.Generator, aug: Augmentation) -> torch.Tensor:
    """Random shift and brightness/contrast jitter of ``x`` ``[B, C, 3, h, w]``, each image its
    own draw from ``rng``."""
    b, c, _, h, w = x.shape
    if aug.shift > 0:
        s = aug.shift
        padded = F.pad(x.flatten(0, 1), (s, s, s, s), mode="replicate")
        offsets = rng.integers(0, 2 * s + 1, size=(b * c, 2))
        x = torch.stack([padded[i, :, dy:dy + h, dx:dx + w]
                         for i, (dy, dx) in enumerate(offsets.tolist())]).view(b, c, 3, h, w)
    if aug.contrast > 0 or aug.brightness > 0:
        gain = 1.0 + rng.uniform(-aug.contrast, aug.contrast, size=(b, c, 1, 1, 1))
        bias = rng.uniform(-aug.brightness, aug.brightness, size=(b, c, 1, 1, 1))
        mean = x.mean(dim=(2, 3, 4), keepdim=True)
        x = ((x - mean) * torch.from_numpy(gain).float() + mean
             + torch.from_numpy(bias).float()).clamp_(0.0, 1.0)
    return x
