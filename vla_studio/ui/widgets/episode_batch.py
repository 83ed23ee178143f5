"""Batch edits of the episodes selected in the Episodes list: instruction, outcome, tags,
quality. Each is one undoable edit over all of them (the replay view's undo stack, see
:class:`~vla_studio.ui.replay.edits.AnnotationEditor`), written to every episode's annotations
sidecar; the recordings are never touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from PySide6.QtWidgets import QDialog, QMenu, QWidget

from vla_studio.data.annotations import AnnotationError, load_annotations
from vla_studio.ui.replay.dialogs import InstructionsDialog, LineDialog, split_tags

if TYPE_CHECKING:
    from vla_studio.data.dataset_index import EpisodeSummary
    from vla_studio.ui.replay.edits import AnnotationEditor


class BatchEdits:
    """Builds the "Edit selected" menu and applies its edits.

    Args:
        parent: the browser (dialogs are its children).
        selected: the selected summaries, in table order.
        path_of: summary -> episode file.
        say: shows a one-line message.

    Attributes:
        editor: where edits go, set by the Replay view that follows the list (None: batch
            edits are unavailable, and say so).
    """

    def __init__(self, parent: QWidget, selected: Callable[[], list["EpisodeSummary"]],
                 path_of: Callable[["EpisodeSummary"], Path],
                 say: Callable[[str], None]) -> None:
        self.parent, self.selected, self.path_of, self.say = parent, selected, path_of, say
        self.editor: "AnnotationEditor | None" = None

    def menu(self) -> QMenu:
        menu = QMenu("Edit selected", self.parent)
        menu.addAction("Set instruction…", self.set_instruction)
        menu.addSeparator()
        menu.addAction("Mark success", lambda: self.set_outcome(True))
        menu.addAction("Mark failure", lambda: self.set_outcome(False))
        menu.addAction("Mark outcome unknown", lambda: self.set_outcome(None))
        quality = menu.addMenu("Quality")
        for q in range(1, 6):
            quality.addAction(f"{q}  " + "★" * q, lambda q=q: self.set_quality(q))
        quality.addAction("not rated", lambda: self.set_quality(None))
        menu.addSeparator()
        menu.addAction("Add tag…", self.add_tag)
        menu.addAction("Remove tag…", self.remove_tag)
        return menu

    def _targets(self) -> list[Path] | None:
        chosen = [s for s in self.selected() if not s.trashed]
        if self.editor is None:
            self.say("Batch edits need the Replay view (it keeps them undoable).")
            return None
        if not chosen:
            self.say("Select the episodes to edit first (Shift/Ctrl+click, Ctrl+A).")
            return None
        return [self.path_of(s) for s in chosen]

    def set_outcome(self, success: bool | None) -> None:
        paths = self._targets()
        if paths:
            word = {True: "success", False: "failure", None: "outcome unknown"}[success]
            self.editor.apply(paths, {"success": success}, f"Mark {word}")

    def set_quality(self, quality: int | None) -> None:
        paths = self._targets()
        if paths:
            self.editor.apply(paths, {"quality": quality},
                              f"Quality {quality}" if quality else "Clear the quality")

    def set_instruction(self) -> None:
        paths = self._targets()
        if not paths:
            return
        first = self.selected()[0]
        dialog = InstructionsDialog(list(first.instructions), [], self.parent, count=len(paths))
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        texts = dialog.instructions()
        if not texts:
            self.say("An instruction cannot be empty.")
            return
        self.editor.apply(paths, {"instructions": texts}, "Set instruction")

    def _tags_of(self, paths: list[Path]) -> dict[Path, list[str]] | None:
        try:
            return {p: list(load_annotations(p).annotations.get("tags") or []) for p in paths}
        except (AnnotationError, OSError) as exc:
            self.say(f"Cannot read the tags: {exc}")
            return None

    def add_tag(self) -> None:
        self._change_tags("Add tag", "Tag to add", lambda tags, new: tags + new)

    def remove_tag(self) -> None:
        self._change_tags("Remove tag", "Tag to remove",
                          lambda tags, gone: [t for t in tags if t not in gone])

    def _change_tags(self, title: str, label: str,
                     combine: Callable[[list[str], list[str]], list[str]]) -> None:
        paths = self._targets()
        if not paths:
            return
        dialog = LineDialog(title, label, "", "comma separated", self.parent)
        if dialog.exec() != QDialog.DialogCode.Accepted or not split_tags(dialog.text()):
            return
        current = self._tags_of(paths)
        if current is None:
            return
        words = split_tags(dialog.text())
        per_path = {p: {"tags": combine(tags, words) or None} for p, tags in current.items()}
        self.editor.apply(paths, {}, f"{title} '{', '.join(words)}'", per_path=per_path)
