"""A fast index of a dataset's episodes: one row per file, cached in ``index.sqlite``.

Reading an episode's attributes costs a few milliseconds, so listing thousands of files by
opening each would take seconds. The index keeps a summary per file keyed by its relative path,
size and modification time and those of its annotations sidecar; :meth:`DatasetIndex.refresh`
stats the folders (cheap), re-reads only episodes whose file or sidecar is new or changed, and
drops rows of files that are gone. A file moved to or from the trash keeps its row. The recorder
updates the index as it saves, so the cache is warm.

The cache is disposable: a missing, corrupt, older-schema or unwritable ``index.sqlite`` is
rebuilt, or the index works from the files in memory (see :mod:`vla_studio.data.index_store`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import h5py

from vla_studio.data.annotations import (SIDECAR_SUFFIX, episode_name_of_sidecar,
                                         load_annotations, sidecar_path)
from vla_studio.data.dataset import Dataset, Preflight, estimate_bytes_per_second
from vla_studio.data.episode_file import EPISODE_SUFFIX, decode_attrs, success_to_bool
from vla_studio.data.index_store import IndexStore
from vla_studio.data.integrity import structural_problem

log = logging.getLogger(__name__)
# (mtime_ns, size) of an episode file, then of its sidecar ((0, -1) without one): a row is
# re-read when any of them changes.
Signature = tuple[int, int, int, int]
NO_SIDECAR = (0, -1)
# Only these root attributes are read (reading all of them, the profile text included, doubles
# the cost of indexing a file).
SUMMARY_ATTRS = ("episode_id", "created", "language_instruction", "language_instructions", "task",
                 "success", "status", "operator", "notes", "scene_id", "station_name",
                 "duration_s", "num_steps", "flags", "source_counts", "cameras", "teleop_device",
                 "confidence_mean", "confidence_method")


@dataclass(frozen=True)
class EpisodeSummary:
    """What the dataset browser shows for one episode (annotations already applied).

    Attributes:
        file: path relative to the dataset folder (``episodes/...h5`` or ``trash/...h5``).
        source: ``"teleop"``, ``"policy"``, ``"dagger"`` (policy with interventions) or
            ``"hold"`` (nothing moved the robot).
        device: the teleop device that drove (``keyboard``, ``gamepad``, ``expert``...).
        flags: notable conditions: ``recovered``, ``camera_gap``, ``steps_dropped``,
            ``safety_clamps``, ``write_failed``, ``unreadable``, ``damaged``,
            ``annotations_unreadable`` ...
        damaged: why the file cannot be trusted ('' when nothing is known to be wrong): found
            by a structural check when indexed, or by ``vla-studio dataset verify``.
        confidence: a policy run's mean confidence over the steps the policy drove (None:
            not a policy run, or the policy's confidence was unknown).
        confidence_method: how that confidence was obtained (``token_probability``...).
    """

    file: str
    episode_id: str = ""
    created: str = ""
    instruction: str = ""
    instructions: tuple[str, ...] = ()
    task: str = ""
    success: bool | None = None
    status: str = ""
    operator: str = ""
    notes: str = ""
    scene_id: str = ""
    station_name: str = ""
    duration_s: float = 0.0
    num_steps: int = 0
    source: str = ""
    device: str = ""
    flags: tuple[str, ...] = ()
    quality: int | None = None
    size_bytes: int = 0
    trashed: bool = False
    cameras: tuple[str, ...] = field(default=())
    damaged: str = ""
    confidence: float | None = None
    confidence_method: str = ""

    @property
    def name(self) -> str:
        return self.file.rsplit("/", 1)[-1]

    def matches(self, text: str) -> bool:
        """Whether every word of ``text`` occurs (case-insensitive) in the instructions,
        operator, task, file, scene, notes or flags (the browser's and the CLI's filter)."""
        words = text.lower().split()
        if not words:
            return True
        haystack = " ".join((*self.instructions, self.operator, self.task, self.file,
                             self.scene_id, self.notes, self.device, *self.flags)).lower()
        return all(word in haystack for word in words)


def source_label(counts: dict[str, int]) -> str:
    """Summarise per-step source counts as one word."""
    if counts.get("policy", 0) and counts.get("intervention", 0):
        return "dagger"
    for kind in ("policy", "teleop", "intervention"):
        if counts.get(kind, 0):
            return kind
    return "hold"


def read_summary(path: Path, rel: str, size: int, trashed: bool) -> EpisodeSummary:
    """Summarise one episode file (annotations override recorded labels)."""
    try:
        with h5py.File(path, "r") as f:
            attrs = decode_attrs(f.attrs, SUMMARY_ATTRS)
            state = load_annotations(path, f)
            damaged = structural_problem(f)  # cheap; the full checksums: `dataset verify`
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        log.info("index: cannot read %s: %s", path, exc)  # the summary says it: damaged
        return EpisodeSummary(file=rel, status="unreadable", flags=("unreadable", "damaged"),
                              size_bytes=size, trashed=trashed,
                              damaged=f"not a readable HDF5 file ({_first_line(exc)})")
    ann = state.annotations
    instructions = ann.get("instructions") or attrs.get("language_instructions") or \
        ([attrs["language_instruction"]] if attrs.get("language_instruction") else [])
    success = ann["success"] if "success" in ann else attrs.get("success", -1)
    flags = [str(x) for x in attrs.get("flags")] if isinstance(attrs.get("flags"), list) else []
    if state.problem:
        flags.append("annotations_unreadable")
    if damaged:
        log.info("index: %s is damaged: %s", path, damaged)
        flags.append("damaged")
    counts = attrs.get("source_counts") if isinstance(attrs.get("source_counts"), dict) else {}
    cams = attrs.get("cameras") if isinstance(attrs.get("cameras"), dict) else {}
    return EpisodeSummary(
        file=rel, episode_id=str(attrs.get("episode_id", "")), created=str(attrs.get("created", "")),
        instruction=str(instructions[0]) if instructions else "",
        instructions=tuple(str(s) for s in instructions), task=str(attrs.get("task", "")),
        success=success_to_bool(success), status=str(attrs.get("status", "")),
        operator=str(attrs.get("operator", "")),
        notes=str(ann.get("notes", attrs.get("notes", ""))), scene_id=str(attrs.get("scene_id", "")),
        station_name=str(attrs.get("station_name", "")),
        duration_s=float(attrs.get("duration_s", 0.0) or 0.0),
        num_steps=int(attrs.get("num_steps", 0) or 0), source=source_label(counts),
        device=str(attrs.get("teleop_device", "")),
        flags=tuple(str(x) for x in flags), quality=ann.get("quality"), size_bytes=size,
        trashed=trashed, cameras=tuple(cams), damaged=damaged,
        confidence=_finite_or_none(attrs.get("confidence_mean")),
        confidence_method=str(attrs.get("confidence_method", "") or ""),
    )


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class DatasetIndex:
    """The summary cache of one dataset: rows in ``index.sqlite`` (shared with other processes)
    mirrored in memory, so listing after the first refresh only stats the folders.
    Thread-safe. No state of ``index.sqlite`` makes it fail (see
    :mod:`vla_studio.data.index_store`).

    Args:
        dataset: the dataset to index.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[Signature, EpisodeSummary]] | None = None
        self._store = IndexStore(dataset.index_path)
        self._store.on_reset = self._forget_mirror

    # ----- public ----------------------------------------------------------------------------
    def refresh(self, include_trashed: bool = False) -> list[EpisodeSummary]:
        """Bring the cache up to date with the folders and list the episodes, oldest first.
        A dataset folder that does not exist yet lists nothing (and is not created)."""
        if not self.dataset.root.is_dir():
            return []
        with self._lock:
            seen = self._scan()
            self._store.run(lambda db: self._refresh(db, seen))
            return self._sorted(include_trashed)

    def _refresh(self, db: sqlite3.Connection, seen: dict[str, Signature]) -> None:
        rows = self._load(db)
        gone = {rel for rel in rows if rel not in seen}
        # A file moved between episodes/ and trash/ keeps its row.
        by_name_sig = {(rel.rsplit("/", 1)[-1], rows[rel][0]): rel for rel in gone}
        for rel, sig in seen.items():
            if rel in rows and rows[rel][0] == sig:
                continue
            old = by_name_sig.pop((rel.rsplit("/", 1)[-1], sig), None)
            if old is not None:
                summary = replace(rows[old][1], file=rel, trashed=rel.startswith("trash/"))
                self._delete(db, [old])
                gone.discard(old)
            else:
                summary = read_summary(self.dataset.root / rel, rel, sig[1],
                                       rel.startswith("trash/"))
            self._put(db, summary, sig)
        self._delete(db, gone)
        db.commit()

    def list(self, include_trashed: bool = False) -> list[EpisodeSummary]:
        """The cached summaries without looking at the folders."""
        if not self.dataset.root.is_dir():
            return []
        with self._lock:
            if self._rows is None:
                self._store.run(self._load)
            return self._sorted(include_trashed)

    def update(self, path: Path) -> EpisodeSummary | None:
        """Re-read one episode file now (after saving or editing it); None if it is gone."""
        path = Path(path)
        rel = self._rel(path)
        with self._lock:
            return self._store.run(lambda db: self._update(db, path, rel))

    def _update(self, db: sqlite3.Connection, path: Path, rel: str) -> EpisodeSummary | None:
        self._load(db)
        sig = _signature(path)
        if sig is None:
            self._delete(db, [rel])
            db.commit()
            return None
        summary = read_summary(path, rel, sig[1], rel.startswith("trash/"))
        self._put(db, summary, sig)
        db.commit()
        return summary

    def mark_damaged(self, path: Path, reason: str) -> EpisodeSummary | None:
        """Record the verdict of a full verification of ``path`` (``reason`` why it is damaged,
        '' when it is sound); it stays until the file or its sidecar changes. Returns the
        updated summary (None when the file is gone)."""
        path = Path(path)
        rel = self._rel(path)

        def mark(db: sqlite3.Connection) -> EpisodeSummary | None:
            rows = self._load(db)
            sig = _signature(path)
            if sig is None:
                return None
            summary = rows[rel][1] if rel in rows and rows[rel][0] == sig else \
                read_summary(path, rel, sig[1], rel.startswith("trash/"))
            flags = tuple(f for f in summary.flags if f != "damaged") + \
                (("damaged",) if reason else ())
            summary = replace(summary, damaged=reason, flags=flags)
            self._put(db, summary, sig)
            db.commit()
            return summary

        with self._lock:
            return self._store.run(mark)

    def forget(self, paths: Iterable[Path]) -> None:
        rels = [self._rel(p) for p in paths]
        with self._lock:
            def forget(db: sqlite3.Connection) -> None:
                self._load(db)
                self._delete(db, rels)
                db.commit()
            self._store.run(forget)

    # ----- internals -------------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        return f"{path.parent.name}/{path.name}"

    def _forget_mirror(self) -> None:
        self._rows = None

    def _scan(self) -> dict[str, Signature]:
        """Signatures of every saved episode; sidecars left behind by an interrupted move are
        put back beside their episodes on the way."""
        episodes: dict[str, tuple[int, int]] = {}
        sidecars: dict[str, tuple[int, int]] = {}
        orphans: list[Path] = []
        for folder in (self.dataset.episodes_dir, self.dataset.trash_dir):
            try:
                entries = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with entries:
                for entry in entries:
                    if entry.name.endswith(EPISODE_SUFFIX):
                        target, name = episodes, entry.name
                    elif entry.name.endswith(SIDECAR_SUFFIX) and not entry.name.startswith("."):
                        target, name = sidecars, episode_name_of_sidecar(entry.name)
                    else:
                        continue
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue  # deleted while we looked
                    target[f"{folder.name}/{name}"] = (st.st_mtime_ns, st.st_size)
        for rel in sidecars:
            if rel not in episodes:
                orphans.append(sidecar_path(self.dataset.root / rel))
        for orphan in orphans:
            try:
                moved = self.dataset.adopt_sidecar(orphan)
                if moved is not None:
                    st = moved.stat()
                    sidecars[f"{moved.parent.name}/{episode_name_of_sidecar(moved.name)}"] = \
                        (st.st_mtime_ns, st.st_size)
            except OSError as exc:
                log.warning("cannot put back annotations %s: %s", orphan, exc)
        return {rel: sig + sidecars.get(rel, NO_SIDECAR) for rel, sig in episodes.items()}

    def _load(self, db: sqlite3.Connection) -> dict[str, tuple[Signature, EpisodeSummary]]:
        if self._rows is None:
            rows = {}
            for rel, mtime, size, side_mtime, side_size, text in db.execute(
                    "SELECT file, mtime_ns, size, sidecar_mtime_ns, sidecar_size, summary "
                    "FROM episodes"):
                try:
                    data: dict[str, Any] = json.loads(text)
                    for key in ("instructions", "flags", "cameras"):
                        data[key] = tuple(data.get(key) or ())
                    rows[rel] = ((mtime, size, side_mtime, side_size), EpisodeSummary(**data))
                except (TypeError, ValueError) as exc:  # a row of another version: re-read
                    log.debug("index row %s dropped: %s", rel, exc)
            self._rows = rows
        return self._rows

    def _put(self, db: sqlite3.Connection, summary: EpisodeSummary, sig: Signature) -> None:
        db.execute("INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?)",
                   (summary.file, *sig, json.dumps(asdict(summary))))
        assert self._rows is not None
        self._rows[summary.file] = (sig, summary)

    def _delete(self, db: sqlite3.Connection, rels: Iterable[str]) -> None:
        rels = list(rels)
        db.executemany("DELETE FROM episodes WHERE file = ?", [(rel,) for rel in rels])
        for rel in rels:
            if self._rows is not None:
                self._rows.pop(rel, None)

    def _sorted(self, include_trashed: bool) -> list[EpisodeSummary]:
        assert self._rows is not None
        out = [summary for _, summary in self._rows.values()
               if include_trashed or not summary.trashed]
        # File names carry the start time to the second; ``created`` has milliseconds.
        out.sort(key=lambda s: (s.created, s.file))
        return out


def _signature(path: Path) -> Signature | None:
    """The signature of an episode file and its sidecar; None when the episode is gone."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    try:
        side = sidecar_path(path).stat()
        side_sig = (side.st_mtime_ns, side.st_size)
    except FileNotFoundError:
        side_sig = NO_SIDECAR
    return (st.st_mtime_ns, st.st_size, *side_sig)


def station_preflight(station, dataset: Dataset, index: DatasetIndex, reserve_bytes: int) -> Preflight:
    """Minutes of recording the free disk allows for ``station``: the rate is measured from its
    recent episodes in the index when there are some, else estimated from its cameras."""
    profile = station.profile
    recent = [s for s in index.list() if s.station_name == profile.name and s.duration_s > 1.0][-10:]
    if recent:
        rate = sum(s.size_bytes for s in recent) / sum(s.duration_s for s in recent)
        return dataset.preflight(rate, "measured", reserve_bytes)
    cams = [(c.config.width, c.config.height, c.config.fps, c.config.color, c.config.depth)
            for c in station.cameras.values()]
    rate = estimate_bytes_per_second(cams, profile.control_rate_hz, profile.recording.image_format,
                                     profile.recording.jpeg_quality, station.robot.action_space.dim)
    return dataset.preflight(rate, "estimated", reserve_bytes)
