"""The journal of an episode file being recorded: what a crash must not lose besides the steps.

```
_journal/committed_steps  int64 [1]       steps whose data is complete (written after the data
                                          it covers was flushed; recovery trusts it)
_journal/success          int8 [2]        the verdict so far: success (-1/0/1), who judged it
                                          (0 nobody, 1 operator, 2 robot)
_journal/dropped          float64 [N, 4]  steps the recorder never got (the loop's queue was
                                          full, or the writer shed them to stay within its
                                          backlog bound): before_step, count, t_from, t_to
```
Every journal dataset is created, and its storage written, *before* SWMR starts: a contiguous
dataset first written under SWMR gets its storage allocated by that write, and a kill before
the next flush leaves an object that points past the end HDF5 recorded ("invalid dataset size"),
which made the whole file unrecoverable. ``dropped`` is chunked, so it may grow under SWMR.

When the episode is sealed the journal is removed; the drops move to the root dataset ``drops``
(same columns; ``before_step`` = T means after the last step) and their total to the
``dropped_steps`` attribute.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import h5py
import numpy as np

from vla_studio.data.episode_file import COMMITTED, JOURNAL, SUCCESS_UNKNOWN

log = logging.getLogger(__name__)

SUCCESS = f"{JOURNAL}/success"
DROPPED = f"{JOURNAL}/dropped"
DROPS = "drops"  # the sealed file's table of dropped steps
DROP_COLUMNS = ("before_step", "count", "t_from", "t_to")
SUCCESS_SOURCES = ("", "operator", "robot")


@dataclass(frozen=True)
class JournalState:
    """What recovery reads back from the journal of an interrupted file.

    Attributes:
        committed_steps: the committed count, or None when the journal is missing or unreadable.
        success: -1/0/1 as last committed.
        success_source: ``""``, ``"operator"`` or ``"robot"``.
        drops: ``[N, 4]`` rows (see the module docstring); empty when none or unreadable.
        damaged: names of journal datasets that could not be read.
    """

    committed_steps: int | None
    success: int = SUCCESS_UNKNOWN
    success_source: str = ""
    drops: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    damaged: tuple[str, ...] = ()


def create_journal(f: h5py.File) -> tuple[h5py.Dataset, h5py.Dataset, h5py.Dataset]:
    """Create the journal in a file not yet in SWMR mode. Returns (committed, success, dropped)."""
    journal = f.create_group(JOURNAL)
    committed = journal.create_dataset("committed_steps", data=np.zeros(1, np.int64))
    success = journal.create_dataset("success", data=np.array([SUCCESS_UNKNOWN, 0], np.int8))
    dropped = journal.create_dataset("dropped", (0, 4), "f8", maxshape=(None, 4), chunks=(64, 4))
    dropped.attrs["columns"] = list(DROP_COLUMNS)
    return committed, success, dropped


def source_code(source: str) -> int:
    """Index of ``source`` in :data:`SUCCESS_SOURCES` (unknown sources count as the operator)."""
    return SUCCESS_SOURCES.index(source) if source in SUCCESS_SOURCES else 1


def read_journal(f: h5py.File) -> JournalState:
    """The journal of an interrupted file; each part that cannot be read is reported, not raised."""
    damaged: list[str] = []
    committed: int | None = None
    success, source = SUCCESS_UNKNOWN, ""
    drops = np.zeros((0, 4))
    if JOURNAL not in f:
        return JournalState(None)
    try:
        committed = int(f[COMMITTED][0])
    except Exception as exc:  # any damage: recovery falls back to the data itself
        log.warning("%s: committed step count unreadable (%s)", f.filename, exc)
        damaged.append("committed_steps")
    try:
        if SUCCESS in f:
            code, who = (int(v) for v in f[SUCCESS][:2])
            if code in (-1, 0, 1):
                success = code
                source = SUCCESS_SOURCES[who] if 0 <= who < len(SUCCESS_SOURCES) else ""
    except Exception as exc:
        log.warning("%s: committed verdict unreadable (%s)", f.filename, exc)
        damaged.append("success")
    try:
        if DROPPED in f:
            rows = np.asarray(f[DROPPED][:], np.float64)
            if rows.ndim == 2 and rows.shape[1] == 4:
                drops = rows[np.isfinite(rows).all(axis=1) & (rows[:, 1] > 0)]
    except Exception as exc:
        log.warning("%s: dropped-step records unreadable (%s)", f.filename, exc)
        damaged.append("dropped")
    return JournalState(committed, success, source, drops, tuple(damaged))


def seal_journal(f: h5py.File, num_steps: int) -> int:
    """Replace the journal of a file being sealed by the ``drops`` table; returns the number of
    dropped steps within the kept ``num_steps`` (drops after them were never part of it)."""
    rows = np.zeros((0, 4))
    if JOURNAL in f:
        try:
            if DROPPED in f:
                rows = np.asarray(f[DROPPED][:], np.float64).reshape(-1, 4)
        except Exception as exc:  # the steps matter more than the drop records
            log.warning("%s: dropped-step records unreadable (%s)", f.filename, exc)
        del f[JOURNAL]
    rows = rows[np.isfinite(rows).all(axis=1) & (rows[:, 1] > 0) & (rows[:, 0] <= num_steps)]
    if DROPS in f:
        del f[DROPS]
    table = f.create_dataset(DROPS, data=rows.astype(np.float64).reshape(-1, 4))
    table.attrs["columns"] = list(DROP_COLUMNS)
    return int(rows[:, 1].sum()) if len(rows) else 0
