"""Policy → Train…: train the reference VLA from datasets, with a live loss plot.

A view of :class:`~vla_studio.policies.vla.train_job.TrainJob`: the training runs in a child
process (``vla-studio train``); a timer at display rate takes its reports and redraws the plot
(training loss per report, validation loss per epoch), the progress bar and the status. Nothing
here waits for the child: Cancel sends an interrupt and the timer follows up until it has
ended (the last finished epoch is kept, resumable). The window cannot be closed while training
runs (Cancel first), so no child outlives the dialog.
"""

from __future__ import annotations

import datetime as dt
import math
import shlex
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from vla_studio.policies.vla.train_job import TrainJob, TrainRequest

POLL_MS = 250  # display rate of the plot; reports arrive every few optimisation steps
ESCALATE_AFTER_POLLS = 40  # 10 s after Cancel, a child that still runs is terminated


def default_run_dir(dataset_dir: Path) -> Path:
    """``<dataset's parent>/runs/<dataset name>-<time>``: next to the data, never reused."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return dataset_dir.expanduser().parent / "runs" / f"{dataset_dir.name or 'policy'}-{stamp}"


class TrainDialog(QDialog):
    """The training dialog.

    Args:
        dataset_dir: the dataset proposed first (the station's recording folder).
        parent: the main window.
        python: the interpreter the child runs (tests may pass another).
    """

    def __init__(self, dataset_dir: str | Path, parent: QWidget | None = None,
                 python: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a policy")
        self.setObjectName("trainDialog")
        self.resize(720, 620)
        self.python = python
        self.job: TrainJob | None = None
        self._polls_since_cancel: int | None = None
        self._build(Path(dataset_dir))
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.refresh)

    # ----- layout ----------------------------------------------------------------------------
    def _build(self, dataset_dir: Path) -> None:
        self.datasets = QListWidget()
        self.datasets.addItem(str(dataset_dir))
        self.datasets.setMaximumHeight(72)
        add = QPushButton("Add…")
        add.clicked.connect(self._add_dataset)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: [self.datasets.takeItem(self.datasets.row(i))
                                        for i in self.datasets.selectedItems()])
        data_row = QHBoxLayout()
        data_row.addWidget(self.datasets, 1)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        data_row.addLayout(buttons)
        self.out = QLineEdit(str(default_run_dir(dataset_dir)))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._choose_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        self.epochs = _spin(1, 1000, 10)
        self.chunk = _spin(1, 100, 10)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.0, 10_000.0)
        self.minutes.setSpecialValueText("no limit")
        self.minutes.setSuffix(" min")
        self.options = QLineEdit()
        self.options.setPlaceholderText("more `vla-studio train` options, e.g. --lr 5e-4")
        form = QFormLayout()
        form.addRow("Datasets", data_row)
        form.addRow("Run folder", out_row)
        form.addRow("Epochs", self.epochs)
        form.addRow("Chunk (H)", self.chunk)
        form.addRow("Time limit", self.minutes)
        form.addRow("Options", self.options)
        self.form = QWidget()
        self.form.setLayout(form)

        self.plot = pg.PlotWidget(background="default")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.addLegend(offset=(-10, 10))
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen("#4aa3df", width=2), name="train")
        self.val_curve = self.plot.plot([], [], pen=pg.mkPen("#e8a33d", width=2), symbol="o",
                                        symbolSize=7, symbolBrush="#e8a33d", name="validation")
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m steps")
        self.status = QLabel("Choose the datasets and press Start.")
        self.status.setWordWrap(True)
        self.result = QLabel("")
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setWordWrap(True)

        box = QDialogButtonBox()
        self.start_button = box.addButton("Start", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = box.addButton("Cancel training",
                                           QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = box.addButton(QDialogButtonBox.StandardButton.Close)
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.result)
        layout.addWidget(box)

    # ----- actions ---------------------------------------------------------------------------
    def request(self) -> TrainRequest:
        """The form as a training request."""
        datasets = tuple(self.datasets.item(i).text() for i in range(self.datasets.count()))
        return TrainRequest(datasets=datasets, out=self.out.text().strip(),
                            epochs=self.epochs.value(), chunk=self.chunk.value(),
                            max_minutes=self.minutes.value(),
                            extra=tuple(shlex.split(self.options.text())))

    def start(self) -> None:
        """Start training in a child process (returns at once)."""
        if self.job is not None and self.job.running:
            return
        try:
            request = self.request()
        except ValueError as exc:  # unbalanced quotes in the options
            self.status.setText(f"The options cannot be read: {exc}")
            return
        if not request.datasets or not request.out:
            self.status.setText("Add a dataset and choose a run folder first.")
            return
        self.job = TrainJob(request, **({"python": self.python} if self.python else {}))
        self.job.start()
        self.train_curve.setData([], [])
        self.val_curve.setData([], [])
        self.result.setText("")
        self.status.setText("Starting: reading the datasets…")
        self._polls_since_cancel = None
        self._set_running(True)
        self.timer.start()

    def cancel(self) -> None:
        """Interrupt the training (the last finished epoch stays in RUN/last)."""
        if self.job is None or not self.job.running:
            return
        self.job.interrupt()
        self._polls_since_cancel = 0
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelling…")

    def refresh(self) -> None:
        """Take the child's reports and redraw (the timer calls this)."""
        job = self.job
        if job is None:
            return
        st = job.poll()
        self.train_curve.setData(st.steps, st.losses)
        val = [(e["step"], e["val_loss"]) for e in st.epochs
               if isinstance(e.get("val_loss"), (int, float)) and math.isfinite(e["val_loss"])]
        self.val_curve.setData([v[0] for v in val], [v[1] for v in val])
        if st.total_steps:
            self.progress.setMaximum(st.total_steps)
            self.progress.setValue(min(st.step, st.total_steps))
        if job.running:
            if self._polls_since_cancel is not None:
                self._polls_since_cancel += 1
                if self._polls_since_cancel % ESCALATE_AFTER_POLLS == 0:
                    job.escalate()
            elif st.message:
                loss = f", loss {st.losses[-1]:.3f}" if st.losses else ""
                rate = f", {st.samples_per_s:.0f} samples/s" if st.samples_per_s else ""
                self.status.setText(f"Training: {st.message}{loss}{rate}")
            return
        self.timer.stop()
        job.close()
        self._set_running(False)
        self._finished(job)

    def _finished(self, job: TrainJob) -> None:
        st, code = job.state, job.returncode
        if code == 0 and st.result is not None:
            self.status.setText(f"Done: {st.result.get('steps')} steps "
                                f"({st.result.get('stopped_by')}).")
            self.result.setText(f"Policy: {st.result.get('best')}")
        elif job.cancelled:
            last = Path(job.request.out).expanduser() / "last"
            kept = f" The last finished epoch is in {last}." if last.exists() else ""
            self.status.setText(f"Cancelled.{kept}")
        else:
            self.status.setText(f"Training failed: {job.error_text() or f'exit status {code}'}")

    def _set_running(self, running: bool) -> None:
        self.form.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.close_button.setEnabled(not running)

    def _may_close(self) -> bool:
        if self.job is not None and self.job.running:
            self.status.setText("Training is running: cancel it before closing this window.")
            return False
        self.timer.stop()
        return True

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self._may_close():
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self) -> None:  # Esc and the Close button: same rule as the window's close
        if self._may_close():
            super().reject()

    # ----- helpers ---------------------------------------------------------------------------
    def _add_dataset(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a dataset folder")
        if path:
            self.datasets.addItem(path)

    def _choose_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder (a new folder inside it)")
        if path:
            self.out.setText(str(Path(path) / default_run_dir(Path(path)).name))


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box
