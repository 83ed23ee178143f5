"""The files a transcode works with beside an episode: ``<episode>.h5.compacting`` (the video
version being written and verified) and ``<episode>.h5.compacting.lock`` (held while a
transcode owns it), and tidying what an interrupted transcode left."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Iterator

from vla_studio.data.episode_file import EPISODE_SUFFIX

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".compacting"


def temp_path_for(path: Path) -> Path:
    return path.with_name(path.name + TEMP_SUFFIX)


def file_signature(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


class TranscodeBusy(Exception):
    """Another process is transcoding this episode right now."""


@contextlib.contextmanager
def temp_lock(temp: Path) -> Iterator[None]:
    """Hold ``<temp>.lock`` (an ``flock``, released when the process dies): the temporary file
    belongs to a transcode that is still running, and nobody else may touch it.

    Raises:
        TranscodeBusy: another process holds it.
    """
    lock = temp.with_name(temp.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TranscodeBusy(f"{temp.name} is being written by another process") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def discard_temporary(episode: Path) -> None:
    """Remove an episode's unfinished temporary file and its lock (a worker was stopped);
    left alone while another process holds it."""
    temp = temp_path_for(episode)
    try:
        with temp_lock(temp):
            temp.unlink(missing_ok=True)
    except (TranscodeBusy, OSError):
        pass


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete ``*.h5.compacting`` files left by an interrupted transcode (their episode is
    intact beside them), and their lock files. One that a running transcode holds is left
    alone; one without its episode is kept and logged (never deleted blindly). Returns the
    files removed."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    suffix = EPISODE_SUFFIX + TEMP_SUFFIX
    for entry in entries:
        if entry.name.endswith(suffix + ".lock") and \
                not entry.with_name(entry.name[:-len(".lock")]).exists():
            try:
                with temp_lock(entry.with_name(entry.name[:-len(".lock")])):
                    pass  # a lock file nobody holds: removed on the way out
            except (TranscodeBusy, OSError):
                pass
        if not entry.name.endswith(suffix):
            continue
        episode = entry.with_name(entry.name[: -len(TEMP_SUFFIX)])
        if not episode.exists():
            log.warning("%s has no episode %s beside it; left in place", entry, episode.name)
            continue
        try:
            with temp_lock(entry):
                entry.unlink(missing_ok=True)
                removed.append(entry)
        except TranscodeBusy:
            continue
    return removed
