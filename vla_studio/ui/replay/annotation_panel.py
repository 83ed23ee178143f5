"""The annotation panel beside the replay: instructions, outcome, quality, tags, notes, trim,
subtask segments and the episode's edit log, each with the key that changes it.

A view of the episode's annotations (:mod:`vla_studio.data.annotations`, as merged by
:class:`~vla_studio.data.replay_episode.ReplayEpisode`); every button only asks the replay view
to make the edit, which goes onto the undo stack.
"""

from __future__ import annotations

import datetime as dt
import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QFrame, QGroupBox, QHBoxLayout,
                               QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton,
                               QScrollArea, QVBoxLayout, QWidget)

from vla_studio.data.replay_episode import ReplayEpisode
from vla_studio.ui.replay.style import SEGMENT_COLOURS

OUTCOMES = ((True, "✓ Success", "S"), (False, "✗ Failure", "F"), (None, "? Unknown", "U"))


def _group(title: str) -> tuple[QGroupBox, QVBoxLayout]:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(8, 6, 8, 6)
    layout.setSpacing(4)
    return box, layout


class AnnotationPanel(QScrollArea):
    """What has been decided about the episode shown, and buttons to change it.

    Signals:
        outcome_chosen(object): True / False / None.
        quality_chosen(int): 1..5.
        notes_saved(str): the notes as typed.
        instructions_requested(), tags_requested(), clear_trim_requested(): open the editor.
        segment_clicked(int): go to segment ``i``.
    """

    outcome_chosen = Signal(object)
    quality_chosen = Signal(int)
    notes_saved = Signal(str)
    instructions_requested = Signal()
    tags_requested = Signal()
    clear_trim_requested = Signal()
    segment_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("annotationPanel")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMinimumWidth(310)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 0, 4, 4)
        layout.setSpacing(6)

        box, inner = _group("Instructions")
        self.instructions = QLabel("—")
        self.instructions.setWordWrap(True)
        self.instructions.setTextFormat(Qt.TextFormat.RichText)
        edit = QPushButton("Edit…  (I)")
        edit.clicked.connect(self.instructions_requested)
        inner.addWidget(self.instructions)
        inner.addWidget(edit, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(box)

        box, inner = _group("Outcome")
        row = QHBoxLayout()
        self.outcome_buttons: dict[object, QPushButton] = {}
        group = QButtonGroup(self)
        for value, text, key in OUTCOMES:
            button = QPushButton(text)
            button.setCheckable(True)
            button.setToolTip(f"Key {key}")
            button.clicked.connect(lambda _=False, v=value: self.outcome_chosen.emit(v))
            group.addButton(button)
            row.addWidget(button)
            self.outcome_buttons[value] = button
        self.outcome_source = QLabel()
        self.outcome_source.setObjectName("mutedText")
        inner.addLayout(row)
        inner.addWidget(self.outcome_source)
        layout.addWidget(box)

        box, inner = _group("Quality  (keys 1–5)")
        row = QHBoxLayout()
        self.quality_buttons: list[QPushButton] = []
        for q in range(1, 6):
            button = QPushButton(str(q))
            button.setCheckable(True)
            button.setFixedWidth(40)
            button.clicked.connect(lambda _=False, q=q: self.quality_chosen.emit(q))
            row.addWidget(button)
            self.quality_buttons.append(button)
        row.addStretch(1)
        inner.addLayout(row)
        layout.addWidget(box)

        box, inner = _group("Tags")
        self.tags = QLabel("none")
        self.tags.setWordWrap(True)
        edit_tags = QPushButton("Edit…  (T)")
        edit_tags.clicked.connect(self.tags_requested)
        inner.addWidget(self.tags)
        inner.addWidget(edit_tags, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(box)

        box, inner = _group("Trim  ([ and ])")
        self.trim = QLabel("whole episode")
        self.trim.setWordWrap(True)
        self.clear_trim = QPushButton("Keep the whole episode")
        self.clear_trim.clicked.connect(self.clear_trim_requested)
        inner.addWidget(self.trim)
        inner.addWidget(self.clear_trim, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(box)

        box, inner = _group("Subtask segments  (drag on the timeline, B, Enter, Delete)")
        self.segments = QListWidget()
        self.segments.setObjectName("segmentList")
        self.segments.setFixedHeight(96)
        self.segments.itemClicked.connect(
            lambda item: self.segment_clicked.emit(self.segments.row(item)))
        inner.addWidget(self.segments)
        layout.addWidget(box)

        box, inner = _group("Notes")
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("what a reviewer should know")
        self.notes.setFixedHeight(56)
        self.notes.textChanged.connect(lambda: self.save_notes.setEnabled(
            self.notes.toPlainText() != self._notes))
        self.save_notes = QPushButton("Save notes")
        self.save_notes.setEnabled(False)
        self.save_notes.clicked.connect(lambda: self.notes_saved.emit(self.notes.toPlainText()))
        inner.addWidget(self.notes)
        inner.addWidget(self.save_notes, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(box)

        box, inner = _group("Edit log  (Ctrl+Z undoes, Ctrl+Shift+Z redoes)")
        self.history = QLabel("no edits")
        self.history.setObjectName("mutedText")
        self.history.setWordWrap(True)
        inner.addWidget(self.history)
        layout.addWidget(box)
        layout.addStretch(1)
        self.setWidget(body)
        self._notes = ""

    def show_episode(self, episode: ReplayEpisode | None) -> None:
        """Show ``episode``'s annotations (None: nothing open)."""
        self.setEnabled(episode is not None)
        if episode is None:
            return
        ann = episode.annotations
        texts = episode.instructions()
        edited = "instructions" in ann
        lines = [f"<b>{html.escape(texts[0])}</b>" if texts else "<i>no instruction</i>"]
        lines += [html.escape(t) for t in texts[1:]]
        if edited:
            lines.append(f"<span style='color:#9aa3ad'>edited · recorded: "
                         f"{html.escape(episode.recorded_instructions[0])}</span>")
        self.instructions.setText("<br>".join(lines))
        success = episode.success()
        for value, button in self.outcome_buttons.items():
            button.setChecked(value is success)
        who = episode.success_source()
        self.outcome_source.setText(f"decided by the {who}" if who else "not decided yet")
        quality = ann.get("quality")
        for q, button in enumerate(self.quality_buttons, 1):
            button.setChecked(q == quality)
        self.tags.setText(", ".join(ann.get("tags") or []) or "none")
        trim = episode.trim()
        if trim is None:
            self.trim.setText("whole episode")
        else:
            a, b = trim
            self.trim.setText(f"keep {episode.time_of(a):.2f} s – {episode.time_of(b - 1):.2f} s "
                              f"(steps {a}–{b - 1} of {episode.num_steps})")
        self.clear_trim.setEnabled(trim is not None)
        self.segments.clear()
        for i, s in enumerate(episode.segments()):
            item = QListWidgetItem(f"{s['label'] or '(unlabelled)'}   "
                                   f"{episode.time_of(s['start']):.2f}–"
                                   f"{episode.time_of(s['end'] - 1):.2f} s")
            item.setForeground(Qt.GlobalColor.white)
            item.setBackground(_dim(SEGMENT_COLOURS[i % len(SEGMENT_COLOURS)]))
            self.segments.addItem(item)
        self._notes = str(ann.get("notes", episode.attrs.get("notes", "")) or "")
        if self.notes.toPlainText() != self._notes:
            self.notes.blockSignals(True)
            self.notes.setPlainText(self._notes)
            self.notes.blockSignals(False)
        self.save_notes.setEnabled(False)
        self.history.setText(_history_text(episode.annotation_state.history))


def _dim(colour: str):
    from PySide6.QtGui import QColor

    c = QColor(colour)
    c.setAlpha(150)
    return c


def _history_text(history: list[dict]) -> str:
    if not history:
        return "no edits: everything shown is as recorded"
    lines = []
    for entry in history[-4:][::-1]:
        when = dt.datetime.fromtimestamp(float(entry.get("t", 0))).strftime("%H:%M:%S")
        keys = ", ".join(k for k in entry.get("changes", {}) if k != "success_source")
        lines.append(f"{when} · {entry.get('source', '')} · {keys}")
    more = len(history) - 4
    return "\n".join(lines) + (f"\n… {more} earlier" if more > 0 else "")
