"""Finding and recovering episodes whose recording was interrupted (SIGKILL, crash, power cut).

An interrupted episode is a ``.h5.recording`` file whose lock nobody holds. Recovery:

1. takes the episode's lock (a file still being written by a live process is left alone);
2. clears the superblock's open-for-write flags the dead writer left (see
   :mod:`vla_studio.data.hdf5_superblock`);
3. keeps the steps the journal says were committed (every step dataset and image buffer is cut
   to them), marks the first and last steps, recomputes the counts from the data;
4. marks the file ``recovered`` (success unknown, flag ``recovered``) and renames it to ``.h5``.

A file that had already been saved but not yet renamed (crash in between) is only renamed.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from vla_studio.core.safety import SafetyFlag
from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import (COMMITTED, IMAGE, SOURCE_LABELS, STATUS_COMPLETE,
                                          STATUS_RECOVERED, STEPS, SUCCESS_UNKNOWN, TIMING,
                                          decode_attrs)
from vla_studio.data.episode_writer import fsync_path, seal_episode
from vla_studio.data.hdf5_superblock import (SuperblockError, clear_write_flags,
                                             extend_to_stored_eof)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryResult:
    """What happened to one interrupted episode.

    Attributes:
        source: the ``.h5.recording`` file found.
        path: the recovered ``.h5`` file (None when nothing was kept).
        outcome: ``recovered``, ``renamed`` (it had been saved already), ``empty`` (no committed
            step: deleted), ``in_use`` (a live process is writing it) or ``failed``.
        num_steps: steps kept.
        duration_s: time span of the kept steps.
        message: one line for the operator.
    """

    source: Path
    path: Path | None
    outcome: str
    num_steps: int = 0
    duration_s: float = 0.0
    message: str = ""


def recover_dataset(dataset: Dataset) -> list[RecoveryResult]:
    """Recover every interrupted episode of ``dataset`` (in-use ones are skipped)."""
    return [recover_episode(dataset, p) for p in dataset.recording_files()]


def recover_episode(dataset: Dataset, path: Path) -> RecoveryResult:
    """Recover one ``.h5.recording`` file (see the module docstring). Never raises."""
    lock = dataset.lock_for(path)
    try:
        if not lock.acquire():
            return RecoveryResult(path, None, "in_use", message=f"{path.name} is being recorded "
                                  "by a running process; left alone")
    except OSError as exc:
        return RecoveryResult(path, None, "failed", message=f"cannot lock {path.name}: {exc}")
    try:
        return _recover_locked(dataset, path)
    except Exception as exc:  # a damaged file must not stop the others or the app
        log.exception("recovering %s failed", path)
        return RecoveryResult(path, None, "failed", message=f"could not recover {path.name}: "
                              f"{exc}. The file is kept; it is retried on the next start.")
    finally:
        lock.release(remove=not path.exists())


def _recover_locked(dataset: Dataset, path: Path) -> RecoveryResult:
    try:
        clear_write_flags(path)
        if extend_to_stored_eof(path):
            log.warning("%s was shorter than its superblock says (a write failed); padded", path)
    except SuperblockError as exc:
        log.warning("%s", exc)  # try to open it anyway: the flags may not be set
    final = dataset.final_path(dataset.stem_of(path))
    with h5py.File(path, "r") as f:
        status = str(decode_attrs(f.attrs).get("status", ""))
        if status in (STATUS_COMPLETE, STATUS_RECOVERED):
            steps = int(f.attrs.get("num_steps", 0))
            duration = float(f.attrs.get("duration_s", 0.0))
            kept = None
        else:
            kept = _committed_steps(f)
            steps = kept
            attrs = _recomputed_attrs(f, kept)
            duration = 0.0
    if kept is not None:
        if kept == 0:
            path.unlink()
            return RecoveryResult(path, None, "empty", message=f"{path.name} had no committed "
                                  "step; removed")
        seal_episode(path, kept, attrs, SUCCESS_UNKNOWN)
        with h5py.File(path, "r") as f:
            duration = float(f.attrs["duration_s"])
    os.replace(path, final)
    fsync_path(final.parent)
    outcome = "renamed" if kept is None else "recovered"
    msg = (f"recovered interrupted episode {final.name}: {steps} steps, {duration:.1f} s kept"
           if kept is not None else f"finished saving {final.name}")
    log.info("%s", msg)
    return RecoveryResult(path, final, outcome, steps, duration, msg)


def _committed_steps(f: h5py.File) -> int:
    """Steps whose data is complete: the journal's count, cut to what every dataset holds."""
    lengths = []
    f[STEPS].visititems(lambda name, obj: lengths.append(obj.shape[0])
                        if isinstance(obj, h5py.Dataset) and not name.endswith("/data") else None)
    t = min(lengths) if lengths else 0
    if COMMITTED in f:
        t = min(t, int(f[COMMITTED][0]))
    images = f.get(IMAGE)
    if images is not None and t:
        for g in images.values():
            idx = g["index"][:t]
            ok = (idx[:, 0] + idx[:, 1]) <= g["data"].shape[0]
            if not ok.all():
                t = int(np.argmin(ok))
    return t


def _recomputed_attrs(f: h5py.File, t: int) -> dict:
    """Counts that are normally written when an episode is saved, recomputed from its data."""
    attrs = decode_attrs(f.attrs)
    steps = f[STEPS]
    flags_col = steps["safety_flags"][:t]
    safety: Counter[str] = Counter()
    for flag in SafetyFlag:
        if flag:
            n = int(np.count_nonzero(flags_col & int(flag)))
            if n:
                safety[flag.name.lower()] = n
    sources = np.bincount(steps["action_source"][:t], minlength=len(SOURCE_LABELS))
    camera_stats = {}
    for group_path in (IMAGE, TIMING):
        group = f.get(group_path)
        if group is None:
            continue
        for name, g in group.items():
            fi = g["frame_index"][:t]
            valid = fi[fi >= 0]
            camera_stats[name] = {"frames": int(np.unique(valid).size),
                                  "duplicates": int(valid.size - np.unique(valid).size),
                                  "gaps": int(np.count_nonzero(fi < 0)),
                                  "drops": None, "late": None}
    flags = [x for x in (attrs.get("flags") or []) if isinstance(x, str)]
    if "recovered" not in flags:
        flags.append("recovered")
    if any(s["gaps"] for s in camera_stats.values()) and "camera_gap" not in flags:
        flags.append("camera_gap")
    return {"status": STATUS_RECOVERED, "flags": flags, "safety_counts": dict(safety),
            "source_counts": {label: int(n) for label, n in zip(SOURCE_LABELS, sources)},
            "camera_stats": camera_stats}
