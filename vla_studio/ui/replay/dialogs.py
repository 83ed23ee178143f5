"""Small keyboard-first dialogs of the replay view: instructions, a segment's label, tags.

They are dialogs (not fields in the view) for a reason beyond focus: Esc in the main window
latches the e-stop, except while a dialog is open, where it only closes the dialog. Enter
accepts; the text to replace is selected when the dialog opens.
"""

from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QVBoxLayout, QWidget)


class InstructionsDialog(QDialog):
    """Edit the primary instruction (selected, Enter accepts) and its paraphrases (one per
    line)."""

    def __init__(self, instructions: list[str], recorded: list[str],
                 parent: QWidget | None = None, count: int = 1) -> None:
        super().__init__(parent)
        self.setObjectName("instructionsDialog")
        self.setWindowTitle("Instructions" + (f" of {count} episodes" if count > 1 else ""))
        self.primary = QLineEdit(instructions[0] if instructions else "")
        self.primary.selectAll()
        self.paraphrases = QPlainTextEdit("\n".join(instructions[1:]))
        self.paraphrases.setPlaceholderText("other phrasings of the task, one per line")
        self.paraphrases.setTabChangesFocus(True)
        self.paraphrases.setFixedHeight(90)
        note = QLabel("Recorded: " + " · ".join(recorded) if recorded else "")
        note.setObjectName("mutedText")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.primary.returnPressed.connect(self.accept)
        form = QFormLayout()
        form.addRow("Instruction", self.primary)
        form.addRow("Paraphrases", self.paraphrases)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def instructions(self) -> list[str]:
        lines = [self.primary.text().strip()]
        lines += [line.strip() for line in self.paraphrases.toPlainText().splitlines()]
        return [line for line in dict.fromkeys(lines) if line]


class LineDialog(QDialog):
    """One line of text (a segment's label, tags separated by commas)."""

    def __init__(self, title: str, label: str, text: str, hint: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lineDialog")
        self.setWindowTitle(title)
        self.field = QLineEdit(text)
        self.field.selectAll()
        self.field.setPlaceholderText(hint)
        self.field.returnPressed.connect(self.accept)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow(label, self.field)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(440, self.sizeHint().height())

    def text(self) -> str:
        return self.field.text().strip()


def split_tags(text: str) -> list[str]:
    """``"wobbly grasp, review"`` -> ``["wobbly grasp", "review"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]
