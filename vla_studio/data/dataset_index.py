"""A fast index of a dataset's episodes: one row per file, cached in ``index.sqlite``.

Reading an episode's attributes costs a few milliseconds, so listing thousands of files by
opening each would take seconds. The index keeps a summary per file keyed by its relative path,
size and modification time; :meth:`DatasetIndex.refresh` stats the folders (cheap), re-reads only
files that are new or changed, and drops rows of files that are gone. A file moved to or from the
trash keeps its row. The recorder updates the index as it saves, so the cache is warm.

The cache is disposable: a missing, corrupt or older-schema ``index.sqlite`` is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import h5py

from vla_studio.data.annotations import read_annotations
from vla_studio.data.dataset import Dataset, Preflight, estimate_bytes_per_second
from vla_studio.data.episode_file import EPISODE_SUFFIX, decode_attrs, success_to_bool

log = logging.getLogger(__name__)
SCHEMA_VERSION = 3
# Only these root attributes are read (reading all of them, the profile text included, doubles
# the cost of indexing a file).
SUMMARY_ATTRS = ("episode_id", "created", "language_instruction", "language_instructions", "task",
                 "success", "status", "operator", "notes", "scene_id", "station_name",
                 "duration_s", "num_steps", "flags", "source_counts", "cameras", "teleop_device")


@dataclass(frozen=True)
class EpisodeSummary:
    """What the dataset browser shows for one episode (annotations already applied).

    Attributes:
        file: path relative to the dataset folder (``episodes/...h5`` or ``trash/...h5``).
        source: ``"teleop"``, ``"policy"``, ``"dagger"`` (policy with interventions) or
            ``"hold"`` (nothing moved the robot).
        device: the teleop device that drove (``keyboard``, ``gamepad``, ``expert``...).
        flags: notable conditions: ``recovered``, ``camera_gap``, ``steps_dropped``,
            ``safety_clamps``, ``write_failed``, ``unreadable`` ...
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
            ann = read_annotations(f["annotations"]) if "annotations" in f else {}
    except (OSError, KeyError, ValueError) as exc:
        log.warning("index: cannot read %s: %s", path, exc)
        return EpisodeSummary(file=rel, status="unreadable", flags=("unreadable",),
                              size_bytes=size, trashed=trashed)
    instructions = ann.get("instructions") or attrs.get("language_instructions") or \
        ([attrs["language_instruction"]] if attrs.get("language_instruction") else [])
    success = ann["success"] if "success" in ann else attrs.get("success", -1)
    flags = attrs.get("flags") if isinstance(attrs.get("flags"), list) else []
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
        trashed=trashed, cameras=tuple(cams),
    )


class DatasetIndex:
    """The summary cache of one dataset: rows in ``index.sqlite`` (shared with other processes)
    mirrored in memory, so listing after the first refresh only stats the folders.
    Thread-safe.

    Args:
        dataset: the dataset to index.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[tuple[int, int], EpisodeSummary]] | None = None

    # ----- public ----------------------------------------------------------------------------
    def refresh(self, include_trashed: bool = False) -> list[EpisodeSummary]:
        """Bring the cache up to date with the folders and list the episodes, oldest first.
        A dataset folder that does not exist yet lists nothing (and is not created)."""
        if not self.dataset.root.is_dir():
            return []
        with self._lock, self._connect() as db:
            rows = self._load(db)
            seen = self._scan()
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
            return self._sorted(include_trashed)

    def list(self, include_trashed: bool = False) -> list[EpisodeSummary]:
        """The cached summaries without looking at the folders."""
        if not self.dataset.root.is_dir():
            return []
        with self._lock:
            if self._rows is None:
                with self._connect() as db:
                    self._load(db)
            return self._sorted(include_trashed)

    def update(self, path: Path) -> EpisodeSummary | None:
        """Re-read one episode file now (after saving or editing it); None if it is gone."""
        path = Path(path)
        rel = self._rel(path)
        with self._lock, self._connect() as db:
            self._load(db)
            try:
                st = path.stat()
            except FileNotFoundError:
                self._delete(db, [rel])
                db.commit()
                return None
            summary = read_summary(path, rel, st.st_size, rel.startswith("trash/"))
            self._put(db, summary, (st.st_mtime_ns, st.st_size))
            db.commit()
            return summary

    def forget(self, paths: Iterable[Path]) -> None:
        with self._lock, self._connect() as db:
            self._load(db)
            self._delete(db, [self._rel(p) for p in paths])
            db.commit()

    # ----- internals -------------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        return f"{path.parent.name}/{path.name}"

    def _scan(self) -> dict[str, tuple[int, int]]:
        seen: dict[str, tuple[int, int]] = {}
        for folder in (self.dataset.episodes_dir, self.dataset.trash_dir):
            try:
                entries = os.scandir(folder)
            except FileNotFoundError:
                continue
            with entries:
                for entry in entries:
                    if entry.name.endswith(EPISODE_SUFFIX):
                        try:
                            st = entry.stat()
                        except FileNotFoundError:
                            continue  # deleted while we looked
                        seen[f"{folder.name}/{entry.name}"] = (st.st_mtime_ns, st.st_size)
        return seen

    def _connect(self) -> sqlite3.Connection:
        path = self.dataset.index_path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._open(path)
        except sqlite3.DatabaseError as exc:
            log.warning("episode index %s is unusable (%s); rebuilding it", path, exc)
            path.unlink(missing_ok=True)
            db = self._open(path)
        return db

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=10.0)
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            db.execute("DROP TABLE IF EXISTS episodes")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.execute("CREATE TABLE IF NOT EXISTS episodes (file TEXT PRIMARY KEY, "
                   "mtime_ns INTEGER, size INTEGER, summary TEXT)")
        db.commit()
        return db

    def _load(self, db: sqlite3.Connection) -> dict[str, tuple[tuple[int, int], EpisodeSummary]]:
        if self._rows is None:
            rows = {}
            for rel, mtime, size, text in db.execute("SELECT file, mtime_ns, size, summary FROM episodes"):
                try:
                    data: dict[str, Any] = json.loads(text)
                    for key in ("instructions", "flags", "cameras"):
                        data[key] = tuple(data.get(key) or ())
                    rows[rel] = ((mtime, size), EpisodeSummary(**data))
                except (TypeError, ValueError) as exc:  # a row of another version: re-read
                    log.debug("index row %s dropped: %s", rel, exc)
            self._rows = rows
        return self._rows

    def _put(self, db: sqlite3.Connection, summary: EpisodeSummary, sig: tuple[int, int]) -> None:
        db.execute("INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?)",
                   (summary.file, sig[0], sig[1], json.dumps(asdict(summary))))
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
