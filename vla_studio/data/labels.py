"""Language labels of an episode, and the instruction history the recorder completes from.

Every episode carries its own :class:`EpisodeLabels`: a primary instruction, paraphrases (more
ways to say the same task, all stored with the episode), the task id, the operator, notes, the
scene and the teleop device that drove it. :class:`InstructionHistory` remembers instructions used in a dataset, most used and most
recent first, for completion in the recorder dock and for ``vla-studio record``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)
MAX_INSTRUCTION_CHARS = 500


class LabelError(ValueError):
    """Labels that cannot be recorded; the message says what to change."""


def clean_instruction(text: str) -> str:
    """Collapse whitespace; instructions are compared and stored in this form."""
    return " ".join(str(text).split())


@dataclass(frozen=True)
class EpisodeLabels:
    """What an episode is about and who recorded it.

    Attributes:
        instruction: the primary language instruction.
        paraphrases: other phrasings of the same instruction (stored after the primary).
        task: a task id (from a task file) grouping episodes of the same task.
        operator: who recorded it.
        notes: free text about this episode.
        scene_id: identifies the physical (or simulated) scene / station set-up.
        device: the station's teleop device that drove the episode (``keyboard``, ``gamepad``,
            ``expert``...: the profile's name for it); the recorder fills it in at start.
        dagger_round: the DAgger round a correction session belongs to (1, 2, ...); None for
            episodes outside any round (demonstrations, evaluations).
    """

    instruction: str = ""
    paraphrases: tuple[str, ...] = ()
    task: str = ""
    operator: str = ""
    notes: str = ""
    scene_id: str = ""
    device: str = ""
    dagger_round: int | None = None

    @property
    def instructions(self) -> list[str]:
        """Primary first, then the paraphrases, without duplicates."""
        out: list[str] = []
        for text in (self.instruction, *self.paraphrases):
            text = clean_instruction(text)
            if text and text not in out:
                out.append(text)
        return out

    def validated(self) -> "EpisodeLabels":
        """These labels cleaned up, or LabelError when they cannot be recorded."""
        instruction = clean_instruction(self.instruction)
        if not instruction:
            raise LabelError("an episode needs a language instruction: type one (e.g. \"pick up "
                             "the red cube\") or load a task file")
        for text in (instruction, *self.paraphrases):
            if len(text) > MAX_INSTRUCTION_CHARS:
                raise LabelError(f"instruction longer than {MAX_INSTRUCTION_CHARS} characters: "
                                 f"{text[:60]!r}...")
        paraphrases = tuple(p for p in (clean_instruction(p) for p in self.paraphrases)
                            if p and p != instruction)
        return replace(self, instruction=instruction, paraphrases=paraphrases)


@dataclass
class _Entry:
    text: str
    count: int = 0
    last_used: float = field(default_factory=time.time)


class InstructionHistory:
    """Instructions used in a dataset, persisted as JSON (written atomically).

    Args:
        path: the JSON file (created on the first :meth:`add`).
        limit: how many distinct instructions to keep (least recently used are dropped).
    """

    def __init__(self, path: str | Path | None, limit: int = 1000) -> None:
        self.path = Path(path) if path is not None else None
        self.limit = limit
        self._entries: dict[str, _Entry] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, _Entry]:
        if self._entries is None:
            entries: dict[str, _Entry] = {}
            if self.path is not None and self.path.exists():
                try:
                    for item in json.loads(self.path.read_text(encoding="utf-8")):
                        e = _Entry(str(item["text"]), int(item["count"]), float(item["last_used"]))
                        entries[e.text] = e
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.warning("instruction history %s is unreadable (%s); starting afresh",
                                self.path, exc)
            self._entries = entries
        return self._entries

    def add(self, text: str) -> None:
        """Count one more use of ``text`` (and save)."""
        text = clean_instruction(text)
        if not text:
            return
        with self._lock:
            entries = self._load()
            e = entries.setdefault(text, _Entry(text))
            e.count += 1
            e.last_used = time.time()
            if len(entries) > self.limit:
                for old in sorted(entries.values(), key=lambda x: x.last_used)[: len(entries) - self.limit]:
                    del entries[old.text]
            self._save(entries)

    def recent(self, limit: int = 20) -> list[str]:
        """Most recently used first."""
        with self._lock:
            items = sorted(self._load().values(), key=lambda e: -e.last_used)
        return [e.text for e in items[:limit]]

    def complete(self, prefix: str, limit: int = 10) -> list[str]:
        """Instructions starting with ``prefix`` (case-insensitive) first, then those containing
        it; each group by use count, then recency."""
        p = clean_instruction(prefix).lower()
        with self._lock:
            items = list(self._load().values())
        starts = [e for e in items if e.text.lower().startswith(p)]
        contains = [e for e in items if p and p in e.text.lower() and e not in starts]
        key = (lambda e: (-e.count, -e.last_used))
        return [e.text for e in sorted(starts, key=key) + sorted(contains, key=key)][:limit]

    def count(self, text: str) -> int:
        with self._lock:
            e = self._load().get(clean_instruction(text))
            return e.count if e else 0

    def _save(self, entries: dict[str, _Entry]) -> None:
        if self.path is None:
            return
        data = [{"text": e.text, "count": e.count, "last_used": e.last_used}
                for e in sorted(entries.values(), key=lambda x: -x.last_used)]
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("cannot save the instruction history to %s: %s", self.path, exc)
