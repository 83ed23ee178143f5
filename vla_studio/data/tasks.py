"""Task lists and the sampler that proposes the next task after each saved episode.

A task file is plain text (one task per line; ``|`` separates paraphrases; ``#`` comments) or
TOML / JSON for weights and sampling modes::

    mode = "weighted"            # sequence (default) | weighted | balanced
    seed = 0

    [[tasks]]
    instruction = "pick up the red cube"
    paraphrases = ["grab the red block", "lift the red cube"]
    task = "pick_red"            # optional id (default: made from the instruction)
    weight = 2.0

* ``sequence`` cycles through the tasks in file order.
* ``weighted`` draws at random in proportion to ``weight``.
* ``balanced`` proposes the task with the fewest saved episodes relative to its weight (counts
  start from the dataset's existing episodes), so a session fills the dataset evenly.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from vla_studio.core.config import ConfigError, build, option
from vla_studio.data.labels import clean_instruction

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MODES = ("sequence", "weighted", "balanced")


def task_id_for(instruction: str) -> str:
    """A stable id made from an instruction: ``"pick up the red cube"`` -> ``pick_up_the_red_cube``."""
    slug = re.sub(r"[^a-z0-9]+", "_", clean_instruction(instruction).lower()).strip("_")
    return slug[:64] or "task"


@dataclass(frozen=True)
class TaskSpec:
    """One task of a task file."""

    instruction: str = option(help="the primary language instruction")
    paraphrases: tuple[str, ...] = option((), help="other ways to say it")
    task: str = option("", help="task id (default: made from the instruction)")
    weight: float = option(1.0, min=0.0, help="relative frequency for weighted/balanced modes")

    def __post_init__(self) -> None:
        if not clean_instruction(self.instruction):
            raise ValueError("instruction must not be empty")
        if not self.task:
            object.__setattr__(self, "task", task_id_for(self.instruction))


@dataclass(frozen=True)
class TaskFile:
    """A parsed task file."""

    tasks: tuple[TaskSpec, ...] = option(help="the tasks ([[tasks]] tables)")
    mode: Literal["sequence", "weighted", "balanced"] = option("sequence", choices=MODES,
                                                               help="how the next task is chosen")
    seed: int | None = option(None, help="random seed of the weighted mode")

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("the file lists no tasks")
        if self.mode != "sequence" and not any(t.weight > 0 for t in self.tasks):
            raise ValueError(f"mode {self.mode!r} needs at least one task with weight > 0")


def load_task_file(path: str | Path) -> TaskFile:
    """Read a task file (``.txt``, ``.toml`` or ``.json``).

    Raises:
        ConfigError: missing file, syntax error, or an invalid entry (file, key and fix named).
    """
    path = Path(path).expanduser()
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "(file)", source, "the task file does not exist") from None
    except OSError as exc:
        raise ConfigError(source, "(file)", source, f"cannot be read: {exc.strerror}") from None
    if path.suffix.lower() in (".toml", ".json"):
        try:
            data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(source, "(syntax)", None, f"not valid {path.suffix[1:].upper()}: {exc}") from None
        return parse_task_table(data, source)
    tasks = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [clean_instruction(p) for p in line.split("|")]
        if not parts[0]:
            raise ConfigError(source, f"line {number}", line, "the instruction before '|' is empty")
        tasks.append(TaskSpec(parts[0], tuple(p for p in parts[1:] if p)))
    if not tasks:
        raise ConfigError(source, "(file)", None, "the file lists no tasks (one instruction per "
                          "line; '|' separates paraphrases)")
    return TaskFile(tuple(tasks))


def parse_task_table(data: Mapping[str, Any], source: str) -> TaskFile:
    """Validate an already-parsed TOML/JSON task table."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, "(top level)", data, "expected a table with a 'tasks' list")
    return build(TaskFile, data, source=source)


class TaskSampler:
    """Proposes tasks from a :class:`TaskFile`. Thread-safe.

    Args:
        task_file: the tasks and the mode.
        done: episodes already saved per task id (balanced mode starts from these).
    """

    def __init__(self, task_file: TaskFile, done: Mapping[str, int] | None = None) -> None:
        self.task_file = task_file
        self._rng = random.Random(task_file.seed)
        self._done = {t.task: int((done or {}).get(t.task, 0)) for t in task_file.tasks}
        self._next_index = 0
        self._lock = threading.Lock()

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return self.task_file.tasks

    def done_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._done)

    def next(self) -> TaskSpec:
        """The next task to record."""
        tasks = self.task_file.tasks
        with self._lock:
            mode = self.task_file.mode
            if mode == "sequence":
                task = tasks[self._next_index % len(tasks)]
                self._next_index += 1
                return task
            weighted = [t for t in tasks if t.weight > 0]
            if mode == "weighted":
                return self._rng.choices(weighted, weights=[t.weight for t in weighted])[0]
            return min(weighted, key=lambda t: (self._done.get(t.task, 0) / t.weight,
                                                tasks.index(t)))

    def mark_done(self, task: str) -> None:
        """One more episode of ``task`` was saved (balanced mode)."""
        with self._lock:
            if task in self._done:
                self._done[task] += 1

    def mark_undone(self, task: str) -> None:
        """An episode counted by :meth:`mark_done` was discarded or could not be saved."""
        with self._lock:
            if self._done.get(task, 0) > 0:
                self._done[task] -= 1


def single_task(instruction: str, paraphrases: tuple[str, ...] = ()) -> TaskFile:
    """A task file with one task (``--task "..."``)."""
    return TaskFile((TaskSpec(instruction, tuple(paraphrases)),))

