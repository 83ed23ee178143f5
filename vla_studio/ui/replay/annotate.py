"""The replay view's annotation actions (S/F/U, 1-5, [ ], B, Enter, Delete, I, T, notes).

Each builds the change from the episode shown and the playhead, and hands it to the view's
:class:`~vla_studio.ui.replay.edits.AnnotationEditor` as one undoable edit; the view re-reads
the annotations when the editor reports the change. Kept apart from the view's playback code
(:mod:`vla_studio.ui.replay.view`), which it is mixed into.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QDialog

from vla_studio.data import segments as seg
from vla_studio.ui.replay.dialogs import InstructionsDialog, LineDialog, split_tags

if TYPE_CHECKING:
    from vla_studio.data.replay_episode import ReplayEpisode
    from vla_studio.ui.replay.edits import AnnotationEditor

OUTCOME_WORDS = {True: "success", False: "failure", None: "outcome unknown"}


class AnnotationActions:
    """Mixed into :class:`~vla_studio.ui.replay.view.ReplayView` (which provides the
    attributes below)."""

    episode: "ReplayEpisode | None"
    editor: "AnnotationEditor"
    target: int  # the playhead's step (the frames may still be decoding)

    def say(self, text: str, error: bool = False) -> None: ...  # provided by the view

    def _opened(self) -> bool:
        """Whether an episode is open (else says how to open one)."""
        if self.episode is None:
            self.say("Open an episode first: double-click it in the Episodes list.", True)
            return False
        return True

    def _edit(self, changes: dict[str, Any], text: str) -> bool:
        if not self._opened():
            return False
        return self.editor.apply(self.episode.path, changes, text)

    # ----- outcome and quality ----------------------------------------------------------
    def set_outcome(self, success: bool | None) -> None:
        self._edit({"success": success}, f"Mark {OUTCOME_WORDS[success]}")

    def mark_success(self) -> None:
        self.set_outcome(True)

    def mark_failure(self) -> None:
        self.set_outcome(False)

    def mark_unknown(self) -> None:
        self.set_outcome(None)

    def set_quality(self, quality: int) -> None:
        self._edit({"quality": quality}, f"Quality {quality}")

    def quality_1(self) -> None:
        self.set_quality(1)

    def quality_2(self) -> None:
        self.set_quality(2)

    def quality_3(self) -> None:
        self.set_quality(3)

    def quality_4(self) -> None:
        self.set_quality(4)

    def quality_5(self) -> None:
        self.set_quality(5)

    def save_notes(self, text: str) -> None:
        self._edit({"notes": text}, "Edit notes")

    # ----- trim ---------------------------------------------------------------------------
    def trim_in(self) -> None:
        """``[``: keep the episode from the playhead on."""
        if not self._opened():
            return
        end = (self.episode.trim() or (0, self.episode.num_steps))[1]
        if self.target >= end:
            self.say(f"Trim in must come before trim out (step {end}); press ] later first.",
                     True)
            return
        self._edit({"trim": [self.target, end]}, f"Trim in at step {self.target}")

    def trim_out(self) -> None:
        """``]``: keep the episode up to and including the playhead's step."""
        if not self._opened():
            return
        start = (self.episode.trim() or (0, self.episode.num_steps))[0]
        if self.target < start:
            self.say(f"Trim out must come after trim in (step {start}); press [ earlier first.",
                     True)
            return
        self._edit({"trim": [start, self.target + 1]}, f"Trim out after step {self.target}")

    def clear_trim(self) -> None:
        if self.episode is not None and self.episode.trim() is not None:
            self._edit({"trim": None}, "Clear the trim")

    # ----- segments -----------------------------------------------------------------------
    def edit_segments(self, segments: list[dict[str, Any]], text: str) -> None:
        self._edit({"segments": segments or None}, text)

    def split_segment(self) -> None:
        """``B``: a segment boundary at the playhead."""
        if not self._opened():
            return
        new, index = seg.split_at(self.episode.segments(), self.target, self.episode.num_steps)
        if index is None:
            self.say("A segment already starts here.", False)
            return
        self.edit_segments(new, f"Segment boundary at step {self.target}")

    def _segment_here(self) -> int | None:
        if not self._opened():
            return None
        index = seg.segment_at(self.episode.segments(), self.target)
        if index is None:
            self.say("No subtask segment under the playhead: press B to start one, or drag on "
                     "the timeline's subtask lane.", True)
        return index

    def label_segment(self, index: int | None = None) -> None:
        """Enter: name the segment under the playhead (or segment ``index``)."""
        index = self._segment_here() if index is None else index
        if index is None:
            return
        segments = self.episode.segments()
        s = segments[index]
        dialog = LineDialog("Subtask label", "Label", s["label"],
                            "what the robot does in this segment, e.g. 'grasp the cube'",
                            parent=self)  # type: ignore[arg-type]
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.edit_segments(seg.relabel_segment(segments, index, dialog.text()),
                               f"Label segment '{dialog.text()}'")

    def delete_segment(self) -> None:
        index = self._segment_here()
        if index is not None:
            self.edit_segments(seg.delete_segment(self.episode.segments(), index),
                               "Delete subtask segment")

    # ----- instructions and tags ----------------------------------------------------------
    def edit_instructions(self) -> None:
        if not self._opened():
            return
        dialog = InstructionsDialog(self.episode.instructions(),
                                    self.episode.recorded_instructions,
                                    parent=self)  # type: ignore[arg-type]
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        texts = dialog.instructions()
        if not texts:
            self.say("An instruction cannot be empty (Ctrl+Z restores an earlier one).", True)
        elif texts != self.episode.instructions():
            self._edit({"instructions": texts}, "Edit instructions")

    def edit_tags(self) -> None:
        if not self._opened():
            return
        current = ", ".join(self.episode.annotations.get("tags") or [])
        dialog = LineDialog("Tags", "Tags", current, "comma separated, e.g. wobbly grasp, review",
                            parent=self)  # type: ignore[arg-type]
        if dialog.exec() == QDialog.DialogCode.Accepted:
            tags = split_tags(dialog.text())
            self._edit({"tags": tags or None}, "Edit tags")
