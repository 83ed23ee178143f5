"""Finding and recovering episodes whose recording was interrupted (SIGKILL, crash, power cut).

An interrupted episode is a ``.h5.recording`` file whose lock nobody holds. Recovery:

1. takes the episode's lock (a file still being written by a live process is left alone);
2. repairs the superblock a dead writer left: clears the open-for-write flags, and reconciles
   the recorded end of file with the bytes on disk (a writer that hit a full disk leaves either
   mismatch; see :mod:`vla_studio.data.hdf5_superblock`);
3. keeps the steps the journal says were committed, cut to the longest prefix whose data is
   consistent (every dataset long enough, tick times increasing, image rows inside the image
   buffer); when the journal itself is unreadable that prefix alone decides;
4. restores the committed verdict (success and who judged it) and the dropped-step records,
   marks the first and last steps, recomputes the counts from the data;
5. marks the file ``recovered`` (flag ``recovered``) and renames it to ``.h5``.

A file that had already been saved but not yet renamed (crash in between) is only renamed. A
disk too full to seal on is no reason to give up: the file stays and is recovered at a later
start. A file that cannot be repaired is *quarantined* once: moved to ``<dataset>/damaged/``
with a ``<name>.reason.txt`` beside it, reported, and never retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from vla_studio.core.safety import SafetyFlag
from vla_studio.data.dataset import Dataset, describe_error, is_storage_error
from vla_studio.data.episode_file import (IMAGE, JOURNAL, SOURCE_LABELS, STATUS_COMPLETE,
                                          STATUS_RECOVERED, STEPS, TIMING, decode_attrs)
from vla_studio.data.episode_journal import JournalState, read_journal
from vla_studio.data.episode_writer import fsync_path, seal_episode
from vla_studio.data.file_space import bytes_beyond_end
from vla_studio.data.hdf5_superblock import (SuperblockError, clear_write_flags,
                                             extend_to_stored_eof, raise_stored_eof_to_file_size)

log = logging.getLogger(__name__)

DAMAGED_DIR = "damaged"
SEAL_ROOM_BYTES = 1 << 20  # sealing writes a few KiB; never start it with less than this


@dataclass(frozen=True)
class RecoveryResult:
    """What happened to one interrupted episode.

    Attributes:
        source: the ``.h5.recording`` file found.
        path: the recovered ``.h5`` file, or where a quarantined file went (None otherwise).
        outcome: ``recovered``, ``renamed`` (it had been saved already), ``empty`` (no committed
            step: deleted), ``in_use`` (a live process is writing it), ``no_space`` (the disk
            is too full to seal it now: retried at the next start), ``quarantined`` (it cannot
            be repaired: moved to ``damaged/``) or ``failed`` (e.g. no permission: retried).
        num_steps: steps kept.
        duration_s: time span of the kept steps.
        message: one line for the operator.
        reason: why a file was quarantined or not recovered.
    """

    source: Path
    path: Path | None
    outcome: str
    num_steps: int = 0
    duration_s: float = 0.0
    message: str = ""
    reason: str = ""


class _Unrepairable(Exception):
    """The file's content cannot be turned into an episode (quarantine it)."""


def damaged_dir(dataset: Dataset) -> Path:
    """Where files recovery could not repair are kept (never read by the app again)."""
    return dataset.root / DAMAGED_DIR


def recover_dataset(dataset: Dataset) -> list[RecoveryResult]:
    """Recover every interrupted episode of ``dataset`` (in-use ones are skipped), and remove
    what an interrupted transcode left (its episode is intact beside it)."""
    from vla_studio.data.transcode import remove_stale_temporaries

    for temp in remove_stale_temporaries(dataset.episodes_dir):
        log.info("removed %s, left by an interrupted transcode", temp.name)
    return [recover_episode(dataset, p) for p in dataset.recording_files()]


def recover_episode(dataset: Dataset, path: Path) -> RecoveryResult:
    """Recover one ``.h5.recording`` file (see the module docstring). Never raises."""
    lock = dataset.lock_for(path)
    try:
        if not lock.acquire():
            return RecoveryResult(path, None, "in_use", message=f"{path.name} is being recorded "
                                  "by a running process; left alone")
    except OSError as exc:
        return RecoveryResult(path, None, "failed", message=f"cannot lock {path.name}: "
                              f"{describe_error(exc)}", reason=describe_error(exc))
    try:
        return _recover_locked(dataset, path)
    except Exception as exc:  # a damaged file must not stop the others or the app
        reason = describe_error(exc)
        if is_storage_error(exc) or isinstance(exc, PermissionError):
            log.warning("could not recover %s now: %s", path, reason)
            log.debug("recovery of %s", path, exc_info=True)
            outcome = "no_space" if is_storage_error(exc) else "failed"
            return RecoveryResult(path, None, outcome, reason=reason, message=(
                f"could not recover {path.name} now ({reason}). The file is kept; it is "
                "recovered at the next start once the problem is fixed (free disk space)."))
        log.debug("recovery of %s", path, exc_info=True)
        return _quarantine(dataset, path, reason)
    finally:
        lock.release(remove=not path.exists())


def _recover_locked(dataset: Dataset, path: Path) -> RecoveryResult:
    for repair in (clear_write_flags, extend_to_stored_eof, raise_stored_eof_to_file_size):
        try:
            if repair(path) and repair is not clear_write_flags:
                log.warning("%s: end of file did not match its superblock (a write failed); "
                            "repaired", path)
        except SuperblockError as exc:
            log.warning("%s", exc)  # try to open it anyway: it may need no repair
    final = dataset.final_path(dataset.stem_of(path))
    try:
        with h5py.File(path, "r") as f:
            status = str(decode_attrs(f.attrs, ["status"]).get("status", ""))
            if status in (STATUS_COMPLETE, STATUS_RECOVERED):
                steps = int(f.attrs.get("num_steps", 0))
                duration = float(f.attrs.get("duration_s", 0.0))
                kept = None
            else:
                journal = read_journal(f)
                kept = _consistent_steps(f, journal.committed_steps)
                steps = kept
                attrs = _recomputed_attrs(f, kept, journal)
                duration = 0.0
    except Exception as exc:
        if is_storage_error(exc) or isinstance(exc, PermissionError):
            raise
        raise _Unrepairable(f"not a readable episode file: {describe_error(exc)}") from exc
    if kept is not None:
        if kept == 0:
            if journal.committed_steps is None:
                return _quarantine(dataset, path, "its journal is unreadable and no step is "
                                   "complete")
            path.unlink()
            return RecoveryResult(path, None, "empty", message=f"{path.name} had no committed "
                                  "step; removed")
        room = bytes_beyond_end(path) + shutil.disk_usage(path.parent).free
        if journal.damaged:  # a damaged object cannot even be unlinked: copy the rest out
            room -= path.stat().st_size
        if room < SEAL_ROOM_BYTES:
            return RecoveryResult(path, None, "no_space", reason="the disk is full", message=(
                f"cannot recover {path.name} now: the disk is too full. Free disk space; it is "
                "recovered at the next start."))
        try:
            if journal.damaged:
                _rebuild_without_journal(path)
            seal_episode(path, kept, attrs, journal.success)
            with h5py.File(path, "r") as f:
                duration = float(f.attrs["duration_s"])
        except Exception as exc:
            if is_storage_error(exc) or isinstance(exc, PermissionError):
                raise
            raise _Unrepairable(f"sealing failed: {describe_error(exc)}") from exc
    os.replace(path, final)
    fsync_path(final.parent)
    outcome = "recovered" if kept is not None else "renamed"
    msg = (f"recovered interrupted episode {final.name}: {steps} steps, {duration:.1f} s kept"
           if kept is not None else f"finished saving {final.name}")
    log.info("%s", msg)
    return RecoveryResult(path, final, outcome, steps, duration, msg)


def _quarantine(dataset: Dataset, path: Path, reason: str) -> RecoveryResult:
    """Move a file recovery cannot repair out of the episodes folder, with the reason beside it."""
    folder = damaged_dir(dataset)
    target = folder / path.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        n = 1
        while target.exists():
            target = folder / f"{path.name}.{n}"
            n += 1
        os.replace(path, target)
    except OSError as exc:
        log.warning("cannot move %s to %s: %s", path, folder, describe_error(exc))
        return RecoveryResult(path, None, "failed", reason=reason, message=(
            f"could not recover {path.name} ({reason}) nor move it aside "
            f"({describe_error(exc)}); it is retried at the next start"))
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        target.with_name(f"{target.name}.reason.txt").write_text(
            f"{path.name} could not be recovered ({when}): {reason}\n"
            f"It was moved here from {path.parent} so that it is not retried; its data is "
            "unchanged. Delete it, or keep it for a manual rescue.\n", encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the reason for %s: %s", target, describe_error(exc))
    fsync_path(folder)
    msg = (f"{path.name} could not be recovered ({reason}); moved to {target} so it is not "
           "retried")
    log.warning("%s", msg)
    return RecoveryResult(path, target, "quarantined", message=msg, reason=reason)


def _rebuild_without_journal(path: Path) -> None:
    """Replace ``path`` by a copy of everything but its journal (HDF5 cannot unlink an object
    whose header is damaged, and a sealed file must not keep one)."""
    tmp = path.with_name(f"{path.name}.rebuild")
    try:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w", libver="latest") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in src:
                if name != JOURNAL:
                    src.copy(src[name], dst, name=name)
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _consistent_steps(f: h5py.File, committed: int | None) -> int:
    """Steps whose data is complete: the journal's count (when readable), cut to the longest
    prefix every dataset holds with increasing tick times and image rows inside their buffer."""
    lengths = []
    f[STEPS].visititems(lambda name, obj: lengths.append(obj.shape[0])
                        if isinstance(obj, h5py.Dataset) and not name.endswith("/data") else None)
    t = min(lengths) if lengths else 0
    if committed is not None:
        t = min(t, committed)
    if t:
        ts = f[f"{STEPS}/timestamp"][:t]
        ok = np.isfinite(ts) & (ts > 0)  # unwritten rows read as the fill value 0
        ok[1:] &= np.diff(ts) > 0
        if not ok.all():
            t = int(np.argmin(ok))
    images = f.get(IMAGE)
    if images is not None and t:
        for g in images.values():
            idx = g["index"][:t]
            ok = (idx[:, 0] >= 0) & (idx[:, 1] >= 0) & ((idx[:, 0] + idx[:, 1]) <= g["data"].shape[0])
            if not ok.all():
                t = int(np.argmin(ok))
    return t


def _recomputed_attrs(f: h5py.File, t: int, journal: JournalState) -> dict:
    """Counts that are normally written when an episode is saved, recomputed from its data, and
    the verdict the journal holds."""
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
    drops = journal.drops
    if len(drops) and (drops[:, 0] <= t).any() and "steps_dropped" not in flags:
        flags.append("steps_dropped")
    if journal.committed_steps is None and "journal_damaged" not in flags:
        flags.append("journal_damaged")  # kept: the longest consistent prefix of the data
    return {"status": STATUS_RECOVERED, "flags": flags, "safety_counts": dict(safety),
            "success_source": journal.success_source if journal.success >= 0 else "",
            "source_counts": {label: int(n) for label, n in zip(SOURCE_LABELS, sources)},
            "camera_stats": camera_stats}
