"""A dataset is a folder of episode files; this module knows its layout and its disk.

```
<dataset>/
  dataset.json                       marker: format, version, created
  episodes/<YYYYMMDD-HHMMSS>_<id8>.h5              saved episodes (never edited once sealed)
  episodes/<YYYYMMDD-HHMMSS>_<id8>.annotations.json  their labels and edit log (see
                                                   vla_studio.data.annotations)
  episodes/<YYYYMMDD-HHMMSS>_<id8>.h5.recording    being recorded (or interrupted: recovered
  episodes/<YYYYMMDD-HHMMSS>_<id8>.lock             on the next start unless its lock is held)
  trash/                             deleted episodes with their annotations, restorable
  index.sqlite                       summary cache (see vla_studio.data.dataset_index)
  instructions.json                  instruction history (see vla_studio.data.labels)
  .space-reserve                     a few MiB given back when the disk fills, so an episode
                                     can still be closed cleanly
```
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from vla_studio.data.annotations import (episode_name_of_sidecar, folder_lock, fsync_folder,
                                         sidecar_path)
from vla_studio.data.episode_file import EPISODE_SUFFIX, RECORDING_SUFFIX

log = logging.getLogger(__name__)

MARKER = "dataset.json"
DATASET_FORMAT = "vla-studio-dataset"
RESERVE_BYTES = 4 << 20
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


class DatasetError(RuntimeError):
    """A dataset folder that cannot be used; the message says why and what to do."""


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the disk refused a write (full, quota, file too large, I/O)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return True
        text = str(exc).lower()
        if any(s in text for s in ("no space left", "file too large", "disk quota",
                                   "errno = 28", "errno = 27", "write failed")):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def describe_error(exc: BaseException) -> str:
    """A short reason for an I/O error (HDF5 errors carry it deep inside a long message, which
    h5py also puts in ``strerror``)."""
    match = re.search(r"error message = '([^']+)'", str(exc))
    if match:
        return match.group(1)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class EpisodeLock:
    """An exclusive lock on one in-progress episode, held while it is being written.

    ``flock`` locks die with the process, so a file whose lock can be taken belongs to nobody
    (its writer crashed) and may be recovered.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process (or handle) holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self, remove: bool = True) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if remove:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        os.close(fd)


@dataclass(frozen=True)
class Preflight:
    """How much recording the free disk allows.

    Attributes:
        free_bytes: free space where episodes are written.
        bytes_per_second: expected recording rate.
        rate_source: ``"measured"`` (recent episodes of this station) or ``"estimated"``.
        minutes_available: free space / rate, minus the safety reserve.
        writable: whether a file can be created in the episodes folder.
        message: one line for the operator.
    """

    free_bytes: int
    bytes_per_second: float
    rate_source: str
    minutes_available: float
    writable: bool
    message: str


class Dataset:
    """One dataset folder (see the module docstring). Creating the object does no I/O.

    Args:
        root: the dataset folder (``~`` is expanded).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.episodes_dir = self.root / "episodes"
        self.trash_dir = self.root / "trash"
        self.index_path = self.root / "index.sqlite"
        self.history_path = self.root / "instructions.json"
        self.reserve_path = self.root / ".space-reserve"

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r})"

    def ensure(self) -> None:
        """Create the folder layout (idempotent).

        Raises:
            DatasetError: the folder cannot be created or written to.
        """
        try:
            self.episodes_dir.mkdir(parents=True, exist_ok=True)
            self.trash_dir.mkdir(exist_ok=True)
            marker = self.root / MARKER
            if not marker.exists():
                marker.write_text(json.dumps({
                    "format": DATASET_FORMAT, "version": 1,
                    "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                }, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise DatasetError(f"cannot use {self.root} as a dataset folder: {exc.strerror or exc}. "
                               "Choose a folder you can write to (--dataset DIR or the profile's "
                               "[recording] dataset_dir).") from None

    # ----- names -----------------------------------------------------------------------------
    @staticmethod
    def episode_stem(created: dt.datetime, episode_id: str) -> str:
        """``YYYYMMDD-HHMMSS_<first 8 characters of the id>`` (sorts by time)."""
        return f"{created.strftime('%Y%m%d-%H%M%S')}_{episode_id.replace('-', '')[:8]}"

    def recording_path(self, stem: str) -> Path:
        return self.episodes_dir / f"{stem}{RECORDING_SUFFIX}"

    def final_path(self, stem: str) -> Path:
        return self.episodes_dir / f"{stem}{EPISODE_SUFFIX}"

    @staticmethod
    def stem_of(path: Path) -> str:
        name = path.name
        for suffix in (RECORDING_SUFFIX, EPISODE_SUFFIX, ".lock"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return path.stem

    def lock_for(self, path: Path) -> EpisodeLock:
        return EpisodeLock(path.parent / f"{self.stem_of(path)}.lock")

    # ----- listing ---------------------------------------------------------------------------
    def episode_files(self, trashed: bool = False) -> list[Path]:
        """Saved episode files, by name (that is by start time, to the second)."""
        folder = self.trash_dir if trashed else self.episodes_dir
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.name.endswith(EPISODE_SUFFIX))

    def recording_files(self) -> list[Path]:
        """In-progress (or interrupted) episode files."""
        if not self.episodes_dir.is_dir():
            return []
        return sorted(p for p in self.episodes_dir.iterdir() if p.name.endswith(RECORDING_SUFFIX))

    # ----- trash -----------------------------------------------------------------------------
    # An episode moves with its annotations sidecar, the episode first: a crash in between
    # leaves the sidecar behind, and adopt_sidecar() (run by the index when it sees one) puts it
    # back beside its episode.
    def trash(self, path: Path) -> Path:
        """Move a saved episode (and its annotations) to the trash (restorable). Returns its
        new path."""
        path = Path(path)
        if path.parent == self.trash_dir:
            return path
        self.trash_dir.mkdir(parents=True, exist_ok=True)
        target = self.trash_dir / path.name
        with folder_lock(path.parent):
            os.replace(path, target)
            self._move_sidecar(path, target)
        return target

    def restore(self, path: Path) -> Path:
        """Move a trashed episode (and its annotations) back. Raises DatasetError if a file of
        that name exists."""
        path = Path(path)
        target = self.episodes_dir / path.name
        if target.exists():
            raise DatasetError(f"cannot restore {path.name}: {target} already exists")
        with folder_lock(path.parent):
            os.replace(path, target)
            self._move_sidecar(path, target)
        return target

    def empty_trash(self) -> int:
        """Delete trashed episodes (and their annotations) for good. Returns how many were
        deleted."""
        files = self.episode_files(trashed=True)
        for p in files:
            p.unlink(missing_ok=True)
            sidecar_path(p).unlink(missing_ok=True)
        return len(files)

    def adopt_sidecar(self, sidecar: Path) -> Path | None:
        """Move an annotations sidecar left behind by an interrupted trash/restore to the folder
        its episode is in (when that folder has none). Returns its new path, or None when it
        stays (its episode is nowhere, or already has a sidecar)."""
        name = episode_name_of_sidecar(sidecar)
        for folder in (self.episodes_dir, self.trash_dir):
            if folder == sidecar.parent or not (folder / name).exists():
                continue
            target = folder / sidecar.name
            if target.exists():
                return None
            with folder_lock(sidecar.parent):
                if sidecar.exists() and not (sidecar.parent / name).exists():
                    os.replace(sidecar, target)
                    fsync_folder(folder)
                    log.warning("annotations %s were left behind by an interrupted move; put "
                                "back beside %s", sidecar.name, folder / name)
                    return target
            return None
        return None

    @staticmethod
    def _move_sidecar(source: Path, target: Path) -> None:
        sidecar = sidecar_path(source)
        if sidecar.exists():
            os.replace(sidecar, sidecar_path(target))
        fsync_folder(target.parent)
        fsync_folder(source.parent)

    # ----- disk ------------------------------------------------------------------------------
    def free_bytes(self) -> int:
        """Free bytes on the dataset's filesystem (of its nearest existing parent)."""
        probe = self.root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return shutil.disk_usage(probe).free

    def make_reserve(self, size: int = RESERVE_BYTES) -> bool:
        """Keep ``size`` bytes allocated so they can be given back when the disk fills."""
        if self.reserve_path.exists():
            return True
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
            return True
        except OSError as exc:
            self.reserve_path.unlink(missing_ok=True)
            log.info("no space reserve in %s: %s", self.root, exc)
            return False

    def release_reserve(self) -> bool:
        """Give the reserve's space back (disk full). Returns whether there was one."""
        try:
            self.reserve_path.unlink()
            return True
        except FileNotFoundError:
            return False

    def is_writable(self) -> bool:
        """Whether episodes can be written here (a folder that does not exist yet counts when
        it can be created; nothing is created by asking)."""
        if not self.episodes_dir.is_dir():
            probe = self.root
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
        path = self.episodes_dir / f".write-probe-{os.getpid()}"
        try:
            path.write_bytes(b"")
            path.unlink()
            return True
        except OSError:
            return False

    def preflight(self, bytes_per_second: float, rate_source: str = "estimated",
                  reserve_bytes: int = 0) -> Preflight:
        """How many minutes of recording at ``bytes_per_second`` the free disk allows."""
        free = self.free_bytes()
        usable = max(0, free - reserve_bytes)
        minutes = usable / bytes_per_second / 60.0 if bytes_per_second > 0 else float("inf")
        writable = self.is_writable()
        if not writable:
            message = f"cannot write to {self.episodes_dir}: check the folder's permissions"
        else:
            message = (f"{free / 1e9:.1f} GB free in {self.root}: about {minutes:.0f} min of "
                       f"recording at {bytes_per_second / 1e6:.2f} MB/s ({rate_source})")
        return Preflight(free, bytes_per_second, rate_source, minutes, writable, message)


def estimate_bytes_per_second(cameras: list[tuple[int, int, float, bool, bool]], rate_hz: float,
                              image_format: str, jpeg_quality: int, action_dim: int = 7,
                              state_floats: int = 16) -> float:
    """Rough recording rate for cameras ``(width, height, fps, color, depth)`` at ``rate_hz``.

    Conservative figures measured on camera-like images: JPEG q90 ~0.14 byte/pixel, PNG ~1.5,
    depth (shuffle + deflate) ~1.0 byte/pixel. Only distinct frames are stored, so a camera
    contributes ``min(fps, rate_hz)`` frames per second (depth is stored every step).
    """
    if image_format == "png":
        color_bpp = 1.5
    else:
        color_bpp = 0.05 if jpeg_quality <= 50 else 0.08 if jpeg_quality <= 75 else \
            0.14 if jpeg_quality <= 90 else 0.2 if jpeg_quality <= 95 else 0.35
    total = rate_hz * (4 * (3 * action_dim + state_floats) + 64)
    for width, height, fps, color, depth in cameras:
        px = width * height
        if color:
            total += min(fps, rate_hz) * px * color_bpp
        if depth:
            total += rate_hz * px * 1.0
    return total
