"""RLDS export dialog: the same export as `vla-studio export rlds`, with a progress bar.

The annotation options are the command line's: outcomes to keep (``--outcomes``, with "Only
episodes marked successful" as ``--success-only``), a minimum quality (``--min-quality``) and
the subtask segments as a per-step language field (``--subtasks``); trims and edited
instructions are always applied.

The export runs on a worker thread owned by the dialog; the exporter reports progress through a
callback that only stores the latest :class:`ExportProgress`, and a QTimer on the GUI thread shows
it. Cancelling sets a flag the exporter polls between episodes; a cancelled or failed export
leaves nothing at the destination. The exporter's messages are written for the command line
("pass --overwrite"); :func:`dialog_wording` turns them into the dialog's own controls ("tick
'Replace an existing export of the same name'").
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from vla_studio.data.rlds import (ExportCancelled, ExportError, ExportOptions, ExportProgress,
                                  ExportReport, RldsExporter, parse_image_size, snake_case)
from vla_studio.data.rlds.selection import OUTCOMES, describe_left_out

log = logging.getLogger(__name__)
ORIGINAL_SIZE = "recorded size (JPEG pass-through)"
# `vla-studio export rlds` options -> (the dialog's label for them, is it a check box).
CONTROLS: dict[str, tuple[str, bool]] = {
    "--name": ("Dataset name", False),
    "--image-size": ("Image size", False),
    "--val-fraction": ("Validation share", False),
    "--success-only": ("Only episodes marked successful", True),
    "--outcomes": ("Outcomes", False),
    "--min-quality": ("Minimum quality", False),
    "--subtasks": ("Write subtask segments (language_subtask)", True),
    "--depth": ("Include depth streams (16-bit PNG)", True),
    "--overwrite": ("Replace an existing export of the same name", True),
}
_TURN_ON = re.compile(r"\b(?:pass|use|add|give|set|with)\s+(--[a-z][a-z0-9-]*)")
_TURN_OFF = re.compile(r"\b(?:drop|remove|omit|without)\s+(--[a-z][a-z0-9-]*)")
_ANY_FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def dialog_wording(message: str) -> str:
    """An exporter message with its command-line options named as this dialog's controls.

    "pass --overwrite" becomes "tick 'Replace an existing export of the same name'", "drop
    --success-only" becomes "untick 'Only episodes marked successful'", "pass --image-size"
    becomes "set 'Image size'"; an option the dialog does not have is named as the command
    line's ("--camera-map (command line only: vla-studio export rlds)").
    """
    def label(flag: str) -> str | None:
        control = CONTROLS.get(flag)
        return f"'{control[0]}'" if control else None

    def turn_on(m: re.Match) -> str:
        control = CONTROLS.get(m.group(1))
        if control is None:
            return m.group(0)
        return f"{'tick' if control[1] else 'set'} '{control[0]}'"

    def turn_off(m: re.Match) -> str:
        control = CONTROLS.get(m.group(1))
        if control is None:
            return m.group(0)
        return f"{'untick' if control[1] else 'clear'} '{control[0]}'"

    text = _TURN_ON.sub(turn_on, message)
    text = _TURN_OFF.sub(turn_off, text)
    return _ANY_FLAG.sub(lambda m: label(m.group(0)) or
                         f"{m.group(0)} (command line only: vla-studio export rlds)", text)


def _path_row(line: QLineEdit, caption: str, parent: QWidget) -> QWidget:
    row = QWidget(parent)
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    browse = QPushButton("Browse...")

    def pick() -> None:
        chosen = QFileDialog.getExistingDirectory(parent, caption, line.text())
        if chosen:
            line.setText(chosen)

    browse.clicked.connect(pick)
    layout.addWidget(line, 1)
    layout.addWidget(browse)
    return row


def summarize_report(report: ExportReport, options: ExportOptions, out: Path) -> str:
    """The operator-facing summary of a finished export (what the CLI prints, as text)."""
    splits = ", ".join(f"{n} {s}" for s, n in report.episodes.items())
    lines = [f"Exported {splits} episode(s): {report.steps} steps, "
             f"{report.bytes_written / 1e6:.1f} MB in {report.seconds:.1f} s",
             f"  {report.dataset_dir}"]
    filled = sum(report.filled_frames.values())
    if filled:
        lines.append(f"  {filled} step(s) without a new camera frame repeat the previous one")
    for reason, count in report.left_out.items():
        lines.append(f"  {count} episode(s) left out: {describe_left_out(reason)}")
    edited = _edited_episodes(report)
    if edited:
        lines.append(f"  annotations applied to {edited} episode(s) (see metadata.json)")
    if report.skipped:
        lines.append(f"  {len(report.skipped)} episode(s) skipped:")
        lines += [f"    {path.name}: {reason}" for path, reason in report.skipped]
    lines += [f"  warning: {dialog_wording(w)}" for w in report.warnings]
    lines.append(f"  load it: tfds.builder({options.name!r}, data_dir={str(out)!r})")
    return "\n".join(lines)


def _edited_episodes(report: ExportReport) -> int:
    """How many exported episodes carried annotation edits (from metadata.json)."""
    try:
        meta = json.loads((report.dataset_dir / "metadata.json").read_text(encoding="utf-8"))
        return int(meta["annotations"]["episodes_with_edits"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class ExportDialog(QDialog):
    """Choose a dataset folder, a destination and options; export to RLDS with progress.

    Args:
        dataset_dir: the dataset folder proposed first (the station's recording folder).
    """

    def __init__(self, dataset_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export RLDS dataset")
        self.setMinimumWidth(640)
        self.dataset = QLineEdit(str(dataset_dir))
        self.out = QLineEdit(str(Path(dataset_dir).parent / "rlds"))
        self.name = QLineEdit(snake_case(Path(dataset_dir).name) or "vla_dataset")
        self.image_size = QComboBox()
        self.image_size.setEditable(True)
        self.image_size.addItems([ORIGINAL_SIZE, "224", "256", "320x240"])
        self.image_size.setToolTip("Resize every colour camera (e.g. 224 or 256x256); the "
                                   "recorded size copies the JPEG frames without re-encoding")
        self.success_only = QCheckBox("Only episodes marked successful")
        self.outcome_boxes = {o: QCheckBox(o) for o in OUTCOMES}
        for box in self.outcome_boxes.values():
            box.setChecked(True)
        self.success_only.toggled.connect(self._success_only_toggled)
        self.min_quality = QComboBox()
        self.min_quality.addItems(["any (rated or not)", "2", "3", "4", "5"])
        self.min_quality.setToolTip("Leave out episodes rated below this quality; unrated "
                                    "episodes are kept")
        self.subtasks = QCheckBox("Write subtask segments (language_subtask)")
        self.subtasks.setToolTip("Per step: the label of its subtask segment (language_subtask), "
                                 "the segment's index and is_subtask_first")
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.5)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.05)
        self.depth = QCheckBox("Include depth streams (16-bit PNG)")
        self.overwrite = QCheckBox("Replace an existing export of the same name")

        form = QFormLayout()
        form.addRow("Dataset folder", _path_row(self.dataset, "Dataset folder", self))
        form.addRow("Export into", _path_row(self.out, "TFDS data folder", self))
        form.addRow("Dataset name", self.name)
        form.addRow("Image size", self.image_size)
        form.addRow("Validation share", self.val_fraction)
        outcomes = QWidget()
        row = QHBoxLayout(outcomes)
        row.setContentsMargins(0, 0, 0, 0)
        for box in self.outcome_boxes.values():
            row.addWidget(box)
        row.addStretch(1)
        form.addRow("Outcomes", outcomes)
        form.addRow("", self.success_only)
        form.addRow("Minimum quality", self.min_quality)
        form.addRow("", self.subtasks)
        form.addRow("", self.depth)
        form.addRow("", self.overwrite)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setMinimumHeight(120)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel export", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.cancel_button.setEnabled(False)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.buttons)

        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._latest: ExportProgress | None = None
        self._outcome: tuple[str, object] | None = None
        self._options: ExportOptions | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._poll)

    def _success_only_toggled(self, on: bool) -> None:
        for name, box in self.outcome_boxes.items():
            box.setEnabled(not on)
            if on:
                box.setChecked(name == "success")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def options(self) -> ExportOptions:
        """The options as entered. Raises ExportError for a bad size or name."""
        size_text = self.image_size.currentText().strip()
        size = None if size_text in ("", ORIGINAL_SIZE) else parse_image_size(size_text)
        outcomes = tuple(o for o, box in self.outcome_boxes.items() if box.isChecked())
        quality = self.min_quality.currentIndex() + 1
        options = ExportOptions(name=self.name.text().strip(), image_size=size,
                                success_only=self.success_only.isChecked(),
                                outcomes=None if len(outcomes) == len(OUTCOMES) else outcomes,
                                min_quality=quality if quality > 1 else None,
                                subtasks=self.subtasks.isChecked(),
                                val_fraction=round(self.val_fraction.value(), 4),
                                include_depth=self.depth.isChecked(),
                                overwrite=self.overwrite.isChecked())
        options.validate()
        return options

    def start(self) -> None:
        """Validate the form and start the export on the worker thread."""
        if self.running:
            return
        try:
            options = self.options()
        except (ExportError, ValueError) as exc:
            self._show_error(str(exc))
            return
        dataset, out = Path(self.dataset.text()).expanduser(), Path(self.out.text()).expanduser()
        self._options, self._out = options, out
        self._cancel.clear()
        self._latest, self._outcome = None, None
        exporter = RldsExporter(dataset, out, options, progress=self._on_progress,
                                should_cancel=self._cancel.is_set)
        self._thread = threading.Thread(target=self._work, args=(exporter,), name="rlds-export",
                                         daemon=True)
        self.summary.clear()
        self.status.setText("Scanning episodes...")
        self.progress.setRange(0, 0)  # busy until the first progress report
        self._set_running(True)
        self._thread.start()
        self._timer.start()

    def cancel(self) -> None:
        if self.running:
            self._cancel.set()
            self.status.setText("Cancelling after the current episode...")

    def wait(self, timeout_s: float = 60.0) -> None:
        """Join the worker (tests, closing)."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._poll()

    # ----- worker thread ---------------------------------------------------------------------
    def _on_progress(self, progress: ExportProgress) -> None:
        self._latest = progress  # one reference store; the GUI timer reads it

    def _work(self, exporter: RldsExporter) -> None:
        try:
            self._outcome = ("done", exporter.run())
        except ExportCancelled:
            self._outcome = ("cancelled", None)
        except ExportError as exc:
            self._outcome = ("error", str(exc))
        except Exception as exc:  # never lose the dialog to an unexpected failure
            log.exception("RLDS export failed")
            self._outcome = ("error", f"unexpected error: {exc}")

    # ----- GUI thread ------------------------------------------------------------------------
    def _poll(self) -> None:
        p = self._latest
        if p is not None and p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
            text = f"{p.phase.capitalize()}: {p.done}/{p.total} episodes"
            if p.phase == "writing":
                text += f", {p.bytes_written / 1e6:.1f} MB"
            if p.skipped:
                text += f", {p.skipped} skipped"
            self.status.setText(text)
        if self.running or self._outcome is None:
            return
        self._timer.stop()
        self._set_running(False)
        kind, value = self._outcome
        self._outcome, self._latest = None, None
        if kind == "done":
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            self.status.setText("Export finished.")
            self.summary.setPlainText(summarize_report(value, self._options, self._out))
        elif kind == "cancelled":
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.status.setText("Export cancelled; nothing was written to the destination.")
        else:
            self._show_error(str(value))

    def _show_error(self, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        message = dialog_wording(message)
        self.status.setText(f"<span style='color:#ff8a80'>Export failed: {html.escape(message, quote=False)}</span>")

    def _set_running(self, running: bool) -> None:
        self.export_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.close_button.setEnabled(not running)

    def reject(self) -> None:
        if self.running:  # closing the window cancels and waits: nothing half-written remains
            self.cancel()
            self.wait()
        super().reject()
