"""Colour-swap augmentation: permute the RGB channels of a sample's images and rename the colour
words of its instruction to match.

A red cube seen through the channel permutation that sends red to green *is* a green cube, so a
demonstration of "pick up the red cube" becomes a demonstration of "pick up the green cube" with
the same motion: the target keeps its place, its colour and the instruction change together. The
policy sees each layout with several colour assignments, which makes "go where the named colour
is" a better explanation of the data than remembering layouts. Everything else in the scene
changes hue too (a greenish table for a while): the policy learns to ignore it.

Only instructions whose colour words are all primaries (red, green, blue) are swapped; one that
names another colour ("the yellow cube") keeps its images and words (a permutation does not
map yellow onto a colour the instruction could name). A permutation whose renamed words are
not all in the vocabulary is not used for that instruction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from vla_studio.policies.vla.tokenizer import WordTokenizer

PRIMARIES = ("red", "green", "blue")  # channel 0, 1, 2
# Colour words a channel permutation does not turn into a primary's name.
OTHER_COLOURS = frozenset({"yellow", "orange", "purple", "violet", "cyan", "magenta", "pink",
                           "brown", "teal", "turquoise", "gold", "lime"})
# Every non-identity permutation of the three channels; new channel c = old channel perm[c].
PERMUTATIONS = tuple(p for p in itertools.permutations(range(3)) if p != (0, 1, 2))


@dataclass(frozen=True)
class ColourSwap:
    """Token remapping for each permutation.

    Attributes:
        remap: ``[P, V]`` the new token id of every token id under permutation ``p``.
        allowed: ``[K, P]`` whether instruction ``k`` may use permutation ``p``.
    """

    remap: np.ndarray
    allowed: np.ndarray

    @classmethod
    def build(cls, tokenizer: WordTokenizer, instruction_ids: np.ndarray) -> "ColourSwap":
        vocab = {w: i for i, w in enumerate(tokenizer.vocab)}
        size = tokenizer.size
        remap = np.tile(np.arange(size, dtype=np.int64), (len(PERMUTATIONS), 1))
        usable = np.zeros(len(PERMUTATIONS), bool)  # every primary's new name is a known word
        for p, perm in enumerate(PERMUTATIONS):
            usable[p] = True
            for old, name in enumerate(PRIMARIES):
                new = PRIMARIES[perm.index(old)]  # where the old channel's content now shows
                if name in vocab:
                    if new not in vocab:
                        usable[p] = False
                    else:
                        remap[p, vocab[name]] = vocab[new]
        primary_ids = [vocab[w] for w in PRIMARIES if w in vocab]
        other_ids = [vocab[w] for w in OTHER_COLOURS if w in vocab]
        ids = np.asarray(instruction_ids)
        names_primary = np.isin(ids, primary_ids).any(axis=1)
        names_other = np.isin(ids, other_ids).any(axis=1)
        ok = names_primary & ~names_other
        return cls(remap, ok[:, None] & usable[None, :])

    def apply(self, images: torch.Tensor, ids: torch.Tensor, which: np.ndarray,
              rng: np.random.Generator, probability: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Swap the colours of some samples.

        Args:
            images: ``[B, C, 3, h, w]``, permuted in place where chosen.
            ids: ``[B, L]`` the samples' instruction ids.
            which: ``[B]`` each sample's instruction index (row of ``allowed``).
            rng: the batch's augmentation stream (two draws per sample).
            probability: chance that a sample is swapped (when its instruction allows it).
        """
        b = len(which)
        draw = rng.random(b) < probability
        choice = rng.integers(0, len(PERMUTATIONS), size=b)
        chosen = draw & self.allowed[which, choice]
        if not chosen.any():
            return images, ids
        ids = ids.clone()
        for p, perm in enumerate(PERMUTATIONS):
            rows = np.flatnonzero(chosen & (choice == p))
            if rows.size == 0:
                continue
            r = torch.from_numpy(rows)
            images[r] = images[r][:, :, list(perm)]
            ids[r] = torch.from_numpy(self.remap[p][ids[r].numpy()])
        return images, ids
