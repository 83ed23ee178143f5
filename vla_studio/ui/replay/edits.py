"""Annotation edits on a QUndoStack over the annotation model's own history.

Every edit (in the replay view or a batch edit in the Episodes list) is written at once with
:func:`vla_studio.data.annotations.edit_annotations`, which appends an entry with an id to the
episode's edit log; the QUndoCommand remembers those ids. Undo reverts exactly that entry
(:func:`~vla_studio.data.annotations.undo_annotation` with ``expect``), so an edit made
meanwhile elsewhere (another window, ``vla-studio dataset label``) is never undone by mistake:
the stack is then cleared and says why. Redo writes the same changes again (a new entry).

An edit is validated by writing it *before* it is pushed: a refused value never reaches the
stack, and the view says why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from vla_studio.data.annotations import (AnnotationConflict, AnnotationError, edit_annotations,
                                         undo_annotation)

log = logging.getLogger(__name__)


class AnnotationCommand(QUndoCommand):
    """One undoable edit of one or more episodes (a batch edit is one command)."""

    def __init__(self, editor: "AnnotationEditor", changes: dict[Path, dict[str, Any]],
                 entry_ids: dict[Path, str], text: str) -> None:
        super().__init__(text)
        self.editor, self.changes, self.entry_ids = editor, changes, entry_ids
        self._first = True  # already written when pushed

    def redo(self) -> None:
        if self._first:
            self._first = False
            return
        failed = []
        for path, changes in self.changes.items():
            try:
                self.entry_ids[path] = edit_annotations(path, changes).entry_id
            except (AnnotationError, OSError) as exc:
                failed.append(f"{path.name}: {exc}")
        self.editor.finished(list(self.changes), failed, f"Redid: {self.text()}")

    def undo(self) -> None:
        failed, conflict = [], False
        for path in reversed(list(self.changes)):
            try:
                undo_annotation(path, expect=self.entry_ids.get(path))
            except AnnotationConflict as exc:
                conflict = True
                failed.append(str(exc))
            except (AnnotationError, OSError) as exc:
                failed.append(f"{path.name}: {exc}")
        self.editor.finished(list(self.changes), failed, f"Undid: {self.text()}",
                             conflict=conflict)


class AnnotationEditor(QObject):
    """Writes annotation edits and keeps them undoable.

    Signals:
        changed(object): the episodes (list of Paths) whose annotations changed.
        message(str, bool): what happened, and whether it is an error.
    """

    changed = Signal(object)
    message = Signal(str, bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stack = QUndoStack(self)
        self.stack.setUndoLimit(500)

    def apply(self, paths: list[Path] | Path, changes: Mapping[str, Any], text: str,
              per_path: Mapping[Path, Mapping[str, Any]] | None = None) -> bool:
        """Write ``changes`` to every episode of ``paths`` (``per_path`` overrides them for
        some) as one undoable edit. Returns whether at least one episode was changed."""
        paths = [paths] if isinstance(paths, Path) else list(paths)
        written: dict[Path, dict[str, Any]] = {}
        ids: dict[Path, str] = {}
        failed = []
        for path in paths:
            wanted = dict((per_path or {}).get(path, changes))
            try:
                edit = edit_annotations(path, wanted)
            except (AnnotationError, OSError) as exc:
                failed.append(f"{path.name}: {exc}" if len(paths) > 1 else str(exc))
                continue
            written[path], ids[path] = wanted, edit.entry_id
        if written:
            label = text if len(paths) == 1 else f"{text} ({len(written)} episodes)"
            self.stack.push(AnnotationCommand(self, written, ids, label))
        self.finished(list(written), failed, text if written else "")
        return bool(written)

    def finished(self, paths: list[Path], failed: list[str], done: str,
                 conflict: bool = False) -> None:
        if paths:
            self.changed.emit(paths)
        if failed:
            self.message.emit("; ".join(failed[:3]) + (" ..." if len(failed) > 3 else ""), True)
        elif done:
            self.message.emit(done, False)
        if conflict:  # the log moved on elsewhere: this stack no longer describes it
            QTimer.singleShot(0, self.stack, self.stack.clear)

    def undo(self) -> None:
        if self.stack.canUndo():
            self.stack.undo()
        else:
            self.message.emit("Nothing to undo.", False)

    def redo(self) -> None:
        if self.stack.canRedo():
            self.stack.redo()
        else:
            self.message.emit("Nothing to redo.", False)
