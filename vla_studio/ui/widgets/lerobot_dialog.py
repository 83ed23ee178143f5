"""LeRobot export dialog: the same export as `vla-studio export lerobot`, with a progress bar.

The export runs on a worker thread owned by the dialog; the exporter's progress callback only
stores the latest :class:`~vla_studio.data.lerobot.LeRobotProgress`, which a QTimer on the GUI
thread shows. Cancelling sets a flag the exporter polls between frames; a cancelled or failed
export leaves nothing at the destination.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QProgressBar,
                               QSpinBox, QVBoxLayout, QWidget)

from vla_studio.data.lerobot import LeRobotExporter, LeRobotOptions, LeRobotProgress, LeRobotReport
from vla_studio.data.rlds import ExportError
from vla_studio.data.rlds.selection import OUTCOMES, describe_left_out
from vla_studio.ui.widgets.export_dialog import _path_row

log = logging.getLogger(__name__)
RECORDED_RATE = "recorded rate"


def repo_name(folder: Path) -> str:
    """A repo id proposed from a dataset folder: ``local/<folder name>``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(folder).name).strip("._-") or "dataset"
    return f"local/{name}"


def summarize_report(report: LeRobotReport) -> str:
    """What the CLI prints about a finished export, as the dialog's text."""
    storages = ", ".join(f"{n} {s}" for s, n in sorted(report.storages.items()))
    lines = [f"Exported {report.episodes} episode(s), {report.frames} frames at {report.fps} "
             f"fps, {report.tasks} task(s): {report.bytes_written / 1e6:.1f} MB in "
             f"{report.seconds:.1f} s (read from {storages})", f"  {report.root}"]
    for reason, count in report.left_out.items():
        lines.append(f"  {count} episode(s) left out: {describe_left_out(reason)}")
    if report.skipped:
        lines.append(f"  {len(report.skipped)} episode(s) skipped:")
        lines += [f"    {path.name}: {reason}" for path, reason in report.skipped]
    lines.append(f"  load it: LeRobotDataset({report.repo_id!r}, root={str(report.root)!r})")
    return "\n".join(lines)


class LeRobotExportDialog(QDialog):
    """Choose a dataset folder, a destination, a repo id and filters; export with progress.

    Args:
        dataset_dir: the dataset folder proposed first (the station's recording folder).
    """

    def __init__(self, dataset_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export LeRobot dataset")
        self.setMinimumWidth(640)
        dataset_dir = Path(dataset_dir)
        self.dataset = QLineEdit(str(dataset_dir))
        self.out = QLineEdit(str(dataset_dir.parent / "lerobot" / dataset_dir.name))
        self.repo_id = QLineEdit(repo_name(dataset_dir))
        self.repo_id.setToolTip("user/name: LeRobotDataset(repo_id, root=<the folder>)")
        self.fps = QSpinBox()
        self.fps.setRange(0, 1000)
        self.fps.setSpecialValueText(RECORDED_RATE)
        self.fps.setToolTip("Frames per second of the export (a lower rate than recorded keeps "
                            "the latest step at or before each frame)")
        self.outcome_boxes = {o: QCheckBox(o) for o in OUTCOMES}
        for box in self.outcome_boxes.values():
            box.setChecked(True)
        self.success_only = QCheckBox("Only episodes marked successful")
        self.success_only.toggled.connect(self._success_only_toggled)
        self.min_quality = QComboBox()
        self.min_quality.addItems(["any (rated or not)", "2", "3", "4", "5"])
        self.codec = QComboBox()
        self.codec.addItems(["av1", "h264"])
        self.codec.setToolTip("av1: LeRobot's own default; h264: decoded everywhere")
        self.overwrite = QCheckBox("Replace the folder if it exists")

        form = QFormLayout()
        form.addRow("Dataset folder", _path_row(self.dataset, "Dataset folder", self))
        form.addRow("LeRobot folder", _path_row(self.out, "LeRobot dataset folder", self))
        form.addRow("Repo id", self.repo_id)
        form.addRow("Frame rate", self.fps)
        outcomes = QWidget()
        row = QHBoxLayout(outcomes)
        row.setContentsMargins(0, 0, 0, 0)
        for box in self.outcome_boxes.values():
            row.addWidget(box)
        row.addStretch(1)
        form.addRow("Outcomes", outcomes)
        form.addRow("", self.success_only)
        form.addRow("Minimum quality", self.min_quality)
        form.addRow("Video codec", self.codec)
        form.addRow("", self.overwrite)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("Ready. Trims, edited instructions and outcomes are applied.")
        self.status.setWordWrap(True)
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setMinimumHeight(110)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel export",
                                                    QDialogButtonBox.ButtonRole.ActionRole)
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
        self._latest: LeRobotProgress | None = None
        self._outcome: tuple[str, object] | None = None
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

    def options(self) -> LeRobotOptions:
        """The options as entered. Raises ExportError when one is not valid."""
        outcomes = tuple(o for o, box in self.outcome_boxes.items() if box.isChecked())
        quality = self.min_quality.currentIndex() + 1
        options = LeRobotOptions(
            repo_id=self.repo_id.text().strip(), fps=self.fps.value() or None,
            success_only=self.success_only.isChecked(),
            outcomes=None if len(outcomes) == len(OUTCOMES) else outcomes,
            min_quality=quality if quality > 1 else None, codec=self.codec.currentText(),
            overwrite=self.overwrite.isChecked())
        options.validate()
        return options

    def start(self) -> None:
        if self.running:
            return
        try:
            options = self.options()
        except (ExportError, ValueError) as exc:
            self._show_error(str(exc))
            return
        exporter = LeRobotExporter(Path(self.dataset.text()).expanduser(),
                                   Path(self.out.text()).expanduser(), options,
                                   progress=self._on_progress,
                                   should_cancel=self._cancel.is_set)
        self._cancel.clear()
        self._latest, self._outcome = None, None
        self._thread = threading.Thread(target=self._work, args=(exporter,),
                                        name="lerobot-export", daemon=True)
        self.summary.clear()
        self.status.setText("Scanning episodes...")
        self.progress.setRange(0, 0)
        self._set_running(True)
        self._thread.start()
        self._timer.start()

    def cancel(self) -> None:
        if self.running:
            self._cancel.set()
            self.status.setText("Cancelling...")

    def wait(self, timeout_s: float = 60.0) -> None:
        """Join the worker (tests, closing)."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._poll()

    def _on_progress(self, progress: LeRobotProgress) -> None:
        self._latest = progress  # one reference store; the GUI timer reads it

    def _work(self, exporter: LeRobotExporter) -> None:
        try:
            self._outcome = ("done", exporter.run())
        except ExportError as exc:
            self._outcome = ("cancelled" if self._cancel.is_set() else "error", str(exc))
        except Exception as exc:  # never lose the dialog to an unexpected failure
            log.exception("LeRobot export failed")
            self._outcome = ("error", f"unexpected error: {exc}")

    def _poll(self) -> None:
        p = self._latest
        if p is not None and p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
            self.status.setText(f"{p.phase.capitalize()}: {p.done}/{p.total} episodes "
                                f"{p.current}")
        if self.running or self._outcome is None:
            return
        self._timer.stop()
        self._set_running(False)
        kind, value = self._outcome
        self._outcome, self._latest = None, None
        self.progress.setRange(0, 1)
        if kind == "done":
            self.progress.setValue(1)
            self.status.setText("Export finished.")
            self.summary.setPlainText(summarize_report(value))  # type: ignore[arg-type]
        elif kind == "cancelled":
            self.progress.setValue(0)
            self.status.setText("Export cancelled; nothing was written to the destination.")
        else:
            self._show_error(str(value))

    def _show_error(self, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        text = message.replace("--overwrite", "'Replace the folder if it exists'")
        self.status.setText("<span style='color:#ff8a80'>Export failed: "
                            f"{html.escape(text, quote=False)}</span>")

    def _set_running(self, running: bool) -> None:
        self.export_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.close_button.setEnabled(not running)

    def reject(self) -> None:
        if self.running:  # closing cancels and waits: nothing half-written remains
            self.cancel()
            self.wait()
        super().reject()
