"""The on-disk cache behind the dataset index: ``index.sqlite``, and what happens when it is bad.

The index is only a cache of the episode files, so no state of ``index.sqlite`` may stop a
listing, ``dataset show`` or a recording. :class:`IndexStore` runs each operation on the file;
when SQLite (or the file system) refuses — garbage bytes, a malformed page, text that is not
UTF-8, a folder in its place, a read-only file or folder, a lock held too long — it logs one line
and

* replaces a damaged regular file with a fresh, empty one (the caller then re-reads the episode
  files: the index is rebuilt), or
* when the file cannot be replaced (a folder, no write permission, locked by another process),
  keeps the index in memory for the life of the object (the listing works, nothing is cached).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Callable, Iterator, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
SCHEMA_VERSION = 5  # 4: summaries carry the teleop device; 5: a policy run's confidence
# What a broken cache raises: SQLite's errors, undecodable text, and the OS's (a folder in the
# file's place, permissions). Anything else is a bug and propagates.
CACHE_ERRORS = (sqlite3.Error, UnicodeDecodeError, OSError)
# Index files already reported as unusable by this process: every DatasetIndex of one dataset
# (the recorder's, the command's) meets the same folder in the file's place, and one line says it.
_REPORTED: set[Path] = set()
_CREATE = ("CREATE TABLE IF NOT EXISTS episodes (file TEXT PRIMARY KEY, mtime_ns INTEGER, "
           "size INTEGER, sidecar_mtime_ns INTEGER, sidecar_size INTEGER, summary TEXT)")


class IndexStore:
    """``index.sqlite`` with a fallback (see the module docstring). Not thread-safe by itself:
    the dataset index serialises calls.

    Args:
        path: the cache file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._memory: sqlite3.Connection | None = None
        self.on_reset: Callable[[], None] = lambda: None  # the caller forgets its mirror

    @property
    def in_memory(self) -> bool:
        """Whether the cache file was given up on (the index lives in memory only)."""
        return self._memory is not None

    def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation`` on a connection (it commits what it writes). A broken cache file
        is replaced, or given up for memory, and ``operation`` run once more from scratch."""
        try:
            with self._connection() as db:
                return operation(db)
        except CACHE_ERRORS as exc:
            if self._memory is not None:
                raise  # an in-memory database does not fail: this is not the cache's fault
            self._recover(exc)
        self.on_reset()
        with self._connection() as db:
            return operation(db)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._memory is not None:
            yield self._memory
            return
        db = sqlite3.connect(self.path, timeout=10.0)
        try:
            _prepare(db)
            yield db
        finally:
            db.close()

    def _recover(self, exc: BaseException) -> None:
        reason = _describe(exc)
        locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower()
        if not locked and not self.path.is_dir():
            try:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                db = sqlite3.connect(self.path, timeout=10.0)
                try:
                    _prepare(db)
                finally:
                    db.close()
                log.warning("episode index %s was unusable (%s); rebuilt from the episode files",
                            self.path, reason)
                return
            except CACHE_ERRORS as again:
                reason = f"{reason}; replacing it failed: {_describe(again)}"
        elif self.path.is_dir():
            reason = "it is a folder"
        if self.path not in _REPORTED:
            _REPORTED.add(self.path)
            log.warning("episode index %s is unusable (%s); working from the episode files "
                        "without it (listing is slower until it can be written)", self.path, reason)
        memory = sqlite3.connect(":memory:", check_same_thread=False)
        _prepare(memory)
        self._memory = memory


def _prepare(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is None or row[0] != str(SCHEMA_VERSION):
        db.execute("DROP TABLE IF EXISTS episodes")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    db.execute(_CREATE)
    db.commit()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__

