"""Where an export is written: the checks before it starts, the staging folder, the final rename.

An export is built in a hidden staging folder beside its destination and renamed into place
when complete, so a reader never sees half an export. The staging folder is made with a plain
``mkdir`` (not ``tempfile.mkdtemp``, whose folders are private, mode 0700): the finished
``<name>/<version>`` folder must have the permissions any folder the user creates gets (the
umask decides), or another user or a container reading the dataset fails with tfds's
``DatasetNotFoundError``. Folders the export had to create are removed again if it fails.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path

from vla_studio.data.rlds.errors import ExportError


def check_destination(out: Path, final: Path, overwrite: bool) -> None:
    """Fail early, with one line, when ``final`` (inside ``out``) cannot be written.

    Raises:
        ExportError: a path component is a file, the destination exists and ``overwrite`` is
            off, or the nearest existing folder cannot be written to.
    """
    existing = _nearest_existing(final)
    if existing is None:
        raise ExportError(f"cannot write the export to {out}: no part of that path exists")
    if not existing.is_dir():
        where = "it is" if existing == out else f"{existing} is"
        raise ExportError(f"cannot write the export to {out}: {where} a file, not a folder "
                          "(choose a folder for OUT)")
    if existing == final and not overwrite:
        raise ExportError(f"{final} already exists; pass --overwrite to replace it or choose "
                          "another --name")
    if existing != final and not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write the export to {out}: permission denied on {existing} "
                          "(choose a folder you can write to)")


class Staging:
    """The hidden folder an export is written into, then renamed to its destination.

    Args:
        out: the folder the user named (for messages).
        final: the destination ``<out>/<name>/<version>``.
    """

    def __init__(self, out: Path, final: Path) -> None:
        self.out, self.final = out, final
        self.path: Path | None = None
        self._created: list[Path] = []  # folders made for the export, outermost first

    def create(self) -> Path:
        """Make the missing folders up to ``final``'s parent and the staging folder in it.

        Raises:
            ExportError: a folder cannot be created (one line naming it and why); anything
                this call created is removed again.
        """
        missing = []
        folder = self.final.parent
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self._created.append(folder)
            self.path = self._make_unique(self.final.parent, f".{self.final.name}.incomplete-")
        except OSError as exc:
            self.discard()
            raise ExportError(f"cannot write the export to {self.out}: {_reason(exc)}") from None
        return self.path

    def commit(self) -> None:
        """Rename the staging folder to ``final``, replacing an existing export only once the
        new one is complete."""
        assert self.path is not None, "create() first"
        if not self.final.exists():
            self.path.rename(self.final)
        else:
            old = self._make_unique(self.final.parent, f".{self.final.name}.replaced-")
            old.rmdir()  # only the unique name is needed
            self.final.rename(old)  # keep the previous export until the new one is in place
            self.path.rename(self.final)
            shutil.rmtree(old, ignore_errors=True)
        self.path = None
        self._created.clear()

    def discard(self) -> None:
        """Remove the staging folder and every folder :meth:`create` made (if still empty)."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:
                break  # something else was put there meanwhile: leave it
        self._created.clear()

    @staticmethod
    def _make_unique(parent: Path, prefix: str) -> Path:
        # mkdir with the default mode: the umask applies, as for any folder the user creates.
        for _ in range(100):
            candidate = parent / f"{prefix}{secrets.token_hex(4)}"
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
        raise FileExistsError(errno.EEXIST, "no unused staging folder name", str(parent))


def _nearest_existing(path: Path) -> Path | None:
    """``path`` or its nearest ancestor that exists (a file or a folder)."""
    for candidate in (path, *path.parents):
        try:
            os.stat(candidate)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            continue  # an ancestor is a file; the loop reaches it
        except OSError:
            return candidate  # unreadable: let the write attempt report it
        return candidate
    return None


def _reason(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if isinstance(exc, PermissionError) or exc.errno in (errno.EPERM, errno.EROFS):
        return f"{exc.strerror or 'permission denied'}{where} (choose a folder you can write to)"
    if isinstance(exc, NotADirectoryError):
        return f"a part of the path is a file, not a folder{where}"
    return f"{exc.strerror or exc}{where}"
