"""The instruction tokenizer of the reference VLA: words the project owns, no downloads.

Instructions are short imperative phrases ("pick up the red cube"); a word-level vocabulary built
from the training instructions covers them exactly and keeps the language sequence short (a few
tokens), which matters for CPU latency. Words never seen in training map to ``<unk>`` instead of
failing, so a paraphrase still runs (and the policy's confidence shows whether it understood).

The vocabulary is stored in the checkpoint as ``tokenizer.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

PAD, UNK, BOS = "<pad>", "<unk>", "<bos>"
SPECIALS = (PAD, UNK, BOS)
PAD_ID, UNK_ID, BOS_ID = 0, 1, 2
TOKENIZER_FORMAT = "vla-studio-word-tokenizer"

_WORD = re.compile(r"[a-z0-9]+")
# "block" and "cube" name the same objects in the simulated station's task grammar.
_SYNONYMS = {"block": "cube", "blocks": "cubes"}


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (punctuation dropped, a few synonyms folded)."""
    return [_SYNONYMS.get(w, w) for w in _WORD.findall(text.lower())]


@dataclass(frozen=True)
class WordTokenizer:
    """Maps an instruction to a fixed-length array of token ids.

    Attributes:
        vocab: every token, specials first; a token's id is its position.
        max_tokens: sequence length including ``<bos>`` (longer instructions are cut).
    """

    vocab: tuple[str, ...]
    max_tokens: int = 16

    def __post_init__(self) -> None:
        if tuple(self.vocab[:len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}, got {self.vocab[:3]}")
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("the vocabulary has duplicate tokens")
        if self.max_tokens < 2:
            raise ValueError("max_tokens must be >= 2 (<bos> and one word)")
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.vocab)})

    @classmethod
    def build(cls, instructions: Iterable[str], max_tokens: int = 16) -> "WordTokenizer":
        """A vocabulary of every word in ``instructions`` (sorted, so it does not depend on the
        order episodes were found in)."""
        seen = sorted({w for text in instructions for w in words(text)})
        return cls(SPECIALS + tuple(seen), max_tokens)

    @property
    def size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """``[max_tokens]`` int64 ids: ``<bos>``, the words, then ``<pad>``."""
        ids = [BOS_ID] + [self._ids.get(w, UNK_ID) for w in words(text)]  # type: ignore[attr-defined]
        ids = ids[: self.max_tokens]
        out = np.full(self.max_tokens, PAD_ID, dtype=np.int64)
        out[: len(ids)] = ids
        return out

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the vocabulary does not have (shown to the user, not an error)."""
        return [w for w in words(text) if w not in self._ids]  # type: ignore[attr-defined]

    def to_json(self) -> dict:
        return {"format": TOKENIZER_FORMAT, "max_tokens": self.max_tokens, "vocab": list(self.vocab)}

    @classmethod
    def from_json(cls, data: dict) -> "WordTokenizer":
        """Raises ValueError when ``data`` is not a tokenizer written by :meth:`to_json`."""
        if not isinstance(data, dict) or data.get("format") != TOKENIZER_FORMAT:
            raise ValueError(f"not a {TOKENIZER_FORMAT} (format is "
                             f"{data.get('format') if isinstance(data, dict) else None!r})")
        vocab = data.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
            raise ValueError("'vocab' must be a list of strings")
        return cls(tuple(vocab), int(data.get("max_tokens", 16)))

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)
