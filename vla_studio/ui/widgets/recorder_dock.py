"""Recorder dock: the episode's language labels, the record / success / failure / discard
buttons, live progress and how much recording the disk still allows.

The dock is a view of :class:`vla_studio.data.recorder.Recorder` (one per station, shared with
the dataset browser through :func:`recorder_for`). The GUI thread never waits for it: starting an
episode resets the scene and waits for fresh camera frames, stopping asks the robot for its
verdict, and the first use recovers interrupted episodes, so every button (and the window's
Record menu) runs its call on the dock's ``recorder-jobs`` thread
(:class:`~vla_studio.ui.background.BackgroundJobs`) and the outcome comes back queued. Meanwhile
the dock says "starting…" / "saving…" and refuses another click; a refusal is shown right under
the buttons. The dock polls ``Recorder.status()`` a few times a second and listens to
``recorder.*`` events, so it also follows episodes started by gamepad buttons.
"""

from __future__ import annotations

import logging
from typing import Callable

from PySide6.QtCore import QSettings, QStringListModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QCompleter, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from vla_studio.core.config import ConfigError
from vla_studio.core.events import AppEvent
from vla_studio.data.dataset import DatasetError
from vla_studio.data.labels import EpisodeLabels, LabelError
from vla_studio.data.recorder import RecorderError
from vla_studio.data.recording import EpisodeState, RecorderState, RecorderStatus
from vla_studio.data.tasks import TaskSampler, load_task_file
from vla_studio.station import Station
from vla_studio.ui.background import BackgroundJobs, JobOutcome
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.station_recorder import WindowCloseWatcher, recorder_for, release_recorder
from vla_studio.ui.widgets.elided_label import ElidedLabel

__all__ = ["RecorderDock", "WindowCloseWatcher", "recorder_for", "release_recorder"]

log = logging.getLogger(__name__)
STATUS_HZ = 5.0
AUTO_SAVE_KEY = "recorder/save_when_done"
SETTLE_KEY = "recorder/save_when_done_after_s"
DEFAULT_SETTLE_S = 1.0
PREFLIGHT_INTERVAL_MS = 10_000
OPERATOR_KEY = "recorder/operator"  # the last operator name typed: the next start's default
PREPARING = "checking the dataset"  # the start-up job: an operator's call may queue behind it
_REFUSED = (RecorderError, LabelError, DatasetError)


class RecorderDock(QWidget):
    """Labels, lifecycle buttons and progress of the station's recorder.

    Signals:
        status_changed(object): the RecorderStatus, each time the dock polls it (the window's
            banner and the camera panes' REC marker follow it).
    """

    status_changed = Signal(object)
    #: Station commands this dock runs for the window's menus (in the background, like clicks).
    COMMANDS = ("record.toggle", "record.start", "record.stop", "record.discard",
                "record.rerecord", "episode.success", "episode.failure", "task.next")

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station, self.bridge = station, bridge
        self.recorder = recorder_for(station)
        self.jobs = BackgroundJobs("recorder-jobs", self)
        self.jobs.busy_changed.connect(lambda _label: self.refresh())
        self._close_watcher = WindowCloseWatcher(self, self._window_closed)
        self._shown_labels: EpisodeLabels | None = None

        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("language instruction, e.g. pick up the red cube")
        self.completions = QStringListModel(self)
        completer = QCompleter(self.completions, self)
        completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.instruction.setCompleter(completer)
        self.instruction.textEdited.connect(self._complete)
        self.paraphrases = QPlainTextEdit()
        self.paraphrases.setPlaceholderText("paraphrases, one per line (optional)")
        self.paraphrases.setFixedHeight(54)
        self.task = QLabel("-")
        self.next_task_button = QPushButton("Next task")
        self.next_task_button.clicked.connect(lambda: self._call("proposing", self.recorder.next_task))
        self.task_file_button = QPushButton("Task file...")
        self.task_file_button.clicked.connect(self.load_tasks)
        self.operator = QLineEdit()
        self.operator.setPlaceholderText("your name (remembered)")
        # Typed by the operator (not set from a task): the next start's default.
        self.operator.textEdited.connect(
            lambda text: QSettings().setValue(OPERATOR_KEY, text.strip()))
        self.device = QLabel("-")
        self.device.setToolTip("The teleop device driving now; it is stored with the episode")
        self.scene = QLineEdit()
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("notes about this episode")
        for field, name in ((self.instruction, "Instruction"), (self.paraphrases, "Paraphrases"),
                            (self.operator, "Operator"), (self.scene, "Scene"),
                            (self.notes, "Notes")):
            field.setAccessibleName(name)  # the status bar names the field keys go to
        for field in (self.instruction, self.operator, self.scene, self.notes):
            field.textChanged.connect(self._labels_edited)
        self.paraphrases.textChanged.connect(self._labels_edited)

        labels_box = QGroupBox("Episode")
        form = QFormLayout(labels_box)
        form.addRow("Instruction", self.instruction)
        form.addRow("Paraphrases", self.paraphrases)
        task_row = QHBoxLayout()
        task_row.addWidget(self.task, 1)
        task_row.addWidget(self.next_task_button)
        task_row.addWidget(self.task_file_button)
        form.addRow("Task", task_row)
        form.addRow("Operator", self.operator)
        form.addRow("Device", self.device)
        form.addRow("Scene", self.scene)
        form.addRow("Notes", self.notes)

        self.state_label = QLabel()
        self.state_label.setObjectName("recorderState")
        self.progress = QLabel()
        self.record_button = QPushButton()
        self.record_button.setObjectName("recordButton")
        self.record_button.setMinimumHeight(40)
        self.record_button.clicked.connect(self.toggle_recording)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.success_button = QPushButton("✓ Success")
        self.success_button.setToolTip("End the episode as a success (or mark the last one)")
        self.success_button.clicked.connect(lambda: self.finish(True))
        self.failure_button = QPushButton("✗ Failure")
        self.failure_button.setToolTip("End the episode as a failure (or mark the last one)")
        self.failure_button.clicked.connect(lambda: self.finish(False))
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Throw the open (or last) episode away: it goes to the "
                                       "trash and can be restored from the dataset browser")
        self.discard_button.clicked.connect(lambda: self._call("discarding", self.recorder.discard))
        self.rerecord_button = QPushButton("Re-record")
        self.rerecord_button.setToolTip("Discard the open (or last) episode and record it again "
                                        "with the same instruction and scene seed")
        self.rerecord_button.clicked.connect(lambda: self._call("starting", self.recorder.rerecord))

        self.task_state = QLabel()
        self.task_state.setObjectName("taskVerdict")
        self.task_state.setToolTip("The robot's live verdict on the instruction (simulated "
                                   "stations judge their tasks; on a real robot, you decide)")
        settings = QSettings()
        self.auto_save = QCheckBox("Save when the task is done, after")
        self.auto_save.setToolTip("Stop and save the episode as a success once the robot has "
                                  "judged the task accomplished for this long")
        self.auto_save.setChecked(settings.value(AUTO_SAVE_KEY, False, type=bool))
        self.settle = QDoubleSpinBox()
        self.settle.setRange(0.0, 10.0)
        self.settle.setSingleStep(0.5)
        self.settle.setDecimals(1)
        self.settle.setSuffix(" s")
        self.settle.setValue(settings.value(SETTLE_KEY, DEFAULT_SETTLE_S, type=float))
        self.auto_save.toggled.connect(self._auto_save_changed)
        self.settle.valueChanged.connect(self._auto_save_changed)

        run_box = QGroupBox("Recording")
        grid = QGridLayout(run_box)
        grid.addWidget(self.state_label, 0, 0, 1, 2)
        grid.addWidget(self.progress, 0, 2, 1, 2)
        grid.addWidget(self.record_button, 1, 0, 1, 3)
        grid.addWidget(self.pause_button, 1, 3)
        grid.addWidget(self.success_button, 2, 0)
        grid.addWidget(self.failure_button, 2, 1)
        grid.addWidget(self.discard_button, 2, 2)
        grid.addWidget(self.rerecord_button, 2, 3)
        # Why a click was refused (no instruction, e-stop, disk) goes right under the buttons.
        self.message = QLabel()
        self.message.setObjectName("errorText")
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        grid.addWidget(self.message, 3, 0, 1, 4)
        auto_row = QHBoxLayout()
        auto_row.addWidget(self.auto_save)
        auto_row.addWidget(self.settle)
        auto_row.addStretch(1)
        grid.addLayout(auto_row, 4, 0, 1, 4)
        grid.addWidget(self.task_state, 5, 0, 1, 4)

        self.last_label = QLabel("No episode recorded in this session yet.")
        self.last_label.setWordWrap(True)
        self.disk_label = QLabel()
        self.disk_label.setWordWrap(True)
        info_box = QGroupBox("Dataset")
        info = QVBoxLayout(info_box)
        folder = ElidedLabel(f"Folder: {self.recorder.dataset.root}",
                             mode=Qt.TextElideMode.ElideMiddle)
        folder.setToolTip(str(self.recorder.dataset.root))
        info.addWidget(folder)
        info.addWidget(self.last_label)
        info.addWidget(self.disk_label)

        # Record controls first: they are what the operator looks for mid-episode. (The main
        # window puts every dock panel in a scroll area, so a short dock never grows the window.)
        layout = QVBoxLayout(self)
        layout.addWidget(run_box)
        layout.addWidget(labels_box)
        layout.addWidget(info_box)
        layout.addStretch(1)

        self._auto_save_changed()
        remembered = str(QSettings().value(OPERATOR_KEY, "") or "")
        if remembered:  # this user's name from last time, over the profile's station default
            self.recorder.set_labels(operator=remembered)
        self.load_labels()
        bridge.app_event.connect(self.on_event)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(int(1000 / STATUS_HZ))
        self._status_timer.timeout.connect(self.refresh)
        self._status_timer.start()
        self._preflight_timer = QTimer(self)
        self._preflight_timer.setInterval(PREFLIGHT_INTERVAL_MS)
        self._preflight_timer.timeout.connect(self.show_preflight)
        self._preflight_timer.start()
        self.show_preflight()
        # Interrupted episodes of an existing dataset are recovered now, in the background, so
        # the operator hears about them at start and the first Record does not wait for it.
        self._call(PREPARING, self._prepare_dataset)
        self.refresh()

    def _prepare_dataset(self) -> None:
        if self.recorder.dataset.root.exists():
            self.recorder.connect()

    def _window_closed(self) -> None:
        self.jobs.stop()
        release_recorder(self.station)

    # ----- labels ----------------------------------------------------------------------------
    def load_labels(self) -> None:
        """Show the recorder's labels for the next episode (after a task proposal)."""
        labels = self.recorder.labels
        self._shown_labels = labels
        for field, value in ((self.instruction, labels.instruction),
                             (self.operator, labels.operator), (self.scene, labels.scene_id),
                             (self.notes, labels.notes)):
            if field.text() != value:
                field.blockSignals(True)
                field.setText(value)
                field.blockSignals(False)
        text = "\n".join(labels.paraphrases)
        if self.paraphrases.toPlainText() != text:
            self.paraphrases.blockSignals(True)
            self.paraphrases.setPlainText(text)
            self.paraphrases.blockSignals(False)
        self.task.setText(labels.task or "-")

    def _labels_edited(self) -> None:
        paraphrases = tuple(p.strip() for p in self.paraphrases.toPlainText().splitlines() if p.strip())
        instruction = self.instruction.text()
        task = self.recorder.labels.task if self._shown_labels and \
            instruction == self._shown_labels.instruction else ""
        self._shown_labels = self.recorder.set_labels(
            instruction=instruction, paraphrases=paraphrases, task=task,
            operator=self.operator.text().strip(), scene_id=self.scene.text().strip(),
            notes=self.notes.text())
        self.task.setText(task or "-")

    def _complete(self, text: str) -> None:
        self.completions.setStringList(self.recorder.history.complete(text, 10) if text
                                       else self.recorder.history.recent(10))

    def load_tasks(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a task list", "",
                                              "Task lists (*.txt *.toml *.json)")
        if path:
            self.use_task_file(path)

    def use_task_file(self, path: str) -> bool:
        """Propose tasks from ``path`` from now on (the first one right away)."""
        try:
            task_file = load_task_file(path)
        except ConfigError as exc:
            self.show_message(str(exc))
            return False
        done: dict[str, int] = {}
        for summary in self.recorder.index.list():
            done[summary.task] = done.get(summary.task, 0) + 1
        self.recorder.tasks = TaskSampler(task_file, done)
        self.recorder.next_task()
        self.load_labels()
        self.show_message("")
        return True

    # ----- lifecycle -------------------------------------------------------------------------
    def toggle_recording(self) -> bool:
        """Start an episode, or stop and save the open one (in the background)."""
        state = self.recorder.status().state
        if state == RecorderState.IDLE:
            return self._call("starting", self.recorder.start)
        return self._call("saving", self.recorder.stop)

    def toggle_pause(self) -> bool:
        if self.recorder.status().state == RecorderState.PAUSED:
            return self._call("resuming", self.recorder.resume)
        return self._call("pausing", self.recorder.pause)

    def finish(self, success: bool) -> bool:
        """End the open episode with this outcome, or label the last one."""
        if self.recorder.status().episode is not None:
            return self._call("saving", lambda: self.recorder.stop(success=success))
        return self._call("marking", lambda: self.recorder.mark_success(success))

    def run_command(self, name: str) -> bool:
        """Run station command ``name`` (one of :attr:`COMMANDS`) the way the buttons do."""
        handlers = {"record.toggle": self.toggle_recording,
                    "record.start": lambda: self._call("starting", self.recorder.start),
                    "record.stop": lambda: self._call("saving", self.recorder.stop),
                    "record.discard": lambda: self._call("discarding", self.recorder.discard),
                    "record.rerecord": lambda: self._call("starting", self.recorder.rerecord),
                    "episode.success": lambda: self.finish(True),
                    "episode.failure": lambda: self.finish(False),
                    "task.next": lambda: self._call("proposing", self.recorder.next_task)}
        return bool(handlers[name]())

    def _auto_save_changed(self) -> None:
        on = self.auto_save.isChecked()
        self.recorder.save_on_success_s = self.settle.value() if on else None
        self.settle.setEnabled(on)
        settings = QSettings()
        settings.setValue(AUTO_SAVE_KEY, on)
        settings.setValue(SETTLE_KEY, self.settle.value())

    @property
    def busy(self) -> str:
        """What the dock is waiting for ("starting", "saving"...), or ""."""
        return self.jobs.label

    def _call(self, label: str, fn: Callable[[], object]) -> bool:
        """Run a recorder call on the ``recorder-jobs`` thread; refused while one is running."""
        if self.jobs.busy and self.jobs.label != PREPARING:
            self.show_message(f"Still {self.jobs.label}: wait until it is done.")
            return False
        self.show_message("")
        self.jobs.submit(label, fn, self._job_done)
        self.refresh()
        return True

    def _job_done(self, outcome: JobOutcome) -> None:
        """Back on the GUI thread: say why a call was refused, else show the new labels."""
        error = outcome.error
        if isinstance(error, _REFUSED):
            self.show_message(str(error))
        elif error is not None:
            log.error("recorder call (%s) failed", outcome.label, exc_info=error)
            self.show_message(f"{outcome.label.capitalize()} failed: {error}")
        self.load_labels()
        self.refresh()

    def show_message(self, text: str) -> None:
        """Show (or clear) the line under the buttons."""
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # ----- views of the recorder -------------------------------------------------------------
    def on_event(self, event: AppEvent) -> None:
        if not event.kind.startswith("recorder."):
            return
        if event.kind == "recorder.task_proposed":
            self.load_labels()
        if event.level >= logging.WARNING:
            self.show_message(event.message)
        if event.kind in ("recorder.saved", "recorder.recovered", "recorder.disk_low"):
            self.show_preflight()

    def refresh(self) -> None:
        if self.recorder.poll_task():
            self.load_labels()  # saved as a success: the next task may be proposed
        status = self.recorder.status()
        self.show_status(status)
        driving = status.episode.labels.device if status.episode is not None else \
            self.station.active_teleop
        self.device.setText(driving or "-")
        self.status_changed.emit(status)
        if self.recorder.labels != self._shown_labels and not self._editing():
            self.load_labels()

    def _editing(self) -> bool:
        return any(w.hasFocus() for w in (self.instruction, self.paraphrases, self.operator,
                                          self.scene, self.notes))

    def show_status(self, status: RecorderStatus) -> None:
        state = status.state
        ep = status.episode
        busy = self.jobs.label or ("starting" if self.recorder.is_starting else "")
        colour = {RecorderState.RECORDING: "#ff5c5c", RecorderState.PAUSED: "#d9a520"}.get(state, "#9aa3ad")
        if busy:
            text, colour = f"{busy.upper()}…", "#4c8dff"
        else:
            text = f"● {state.value.upper()}" if state != RecorderState.IDLE else "READY"
        self.state_label.setText(text)
        self.state_label.setStyleSheet(f"color: {colour}; font-size: 14pt; font-weight: 700;")
        if ep is not None:
            self.progress.setText(f"{ep.duration_s:5.1f} s · {ep.steps} steps · "
                                  f"queue {100 * status.queue_fraction:.0f}%")
        else:
            saving = f" · saving {status.saving}" if status.saving else ""
            self.progress.setText(f"{status.saved} saved this session{saving}")
        recording = state != RecorderState.IDLE
        if busy:
            self.record_button.setText(f"{busy.capitalize()}…")
        else:
            self.record_button.setText("■ Stop and save" if recording else "● Record")
        self.record_button.setEnabled(not busy)
        self.record_button.setStyleSheet(
            "background: #7a1710; border-color: #ff5c5c; font-weight: 700;" if recording else
            "font-weight: 700;")
        self.pause_button.setText("Resume" if state == RecorderState.PAUSED else "Pause")
        self.pause_button.setEnabled(recording and not busy)
        has_episode = recording or status.last is not None
        for button in (self.success_button, self.failure_button, self.discard_button,
                       self.rerecord_button):
            button.setEnabled(has_episode and not busy)
        self.next_task_button.setEnabled(self.recorder.tasks is not None and not recording
                                         and not busy)
        self.show_task(status)
        if ep is not None and state == RecorderState.PAUSED:
            self.progress.setToolTip(ep.labels.instruction)
        last = status.last
        if last is not None:
            outcome = {True: "success", False: "failure", None: "outcome unknown"}[last.success]
            name = last.path.name if last.path is not None else ""
            words = {EpisodeState.SAVING: "saving", EpisodeState.SAVED: "saved",
                     EpisodeState.DISCARDED: "discarded",
                     EpisodeState.EMPTY: "empty, not saved",
                     EpisodeState.FAILED: "could not be saved"}.get(last.state, last.state.value)
            device = f" · {last.labels.device}" if last.labels.device else ""
            self.last_label.setText(f"Last: {last.labels.instruction!r} · {last.duration_s:.1f} s"
                                    f"{device} · {outcome} · {words}\n{name}")

    def show_task(self, status: RecorderStatus) -> None:
        """The robot's verdict on the open episode's task."""
        task = status.task
        if status.episode is None or not task.answered:
            text, colour = "", "#9aa3ad"
        elif task.success is None:
            text, colour = "Task: you judge it (✓ Success / ✗ Failure)", "#9aa3ad"
        elif task.success:
            text, colour = f"Task: ✓ accomplished ({task.held_s:.1f} s)", "#3ecf6e"
        else:
            text, colour = "Task: not yet accomplished", "#d9a520"
        self.task_state.setText(text)
        self.task_state.setStyleSheet(f"color: {colour}; font-weight: 600;")

    def show_preflight(self) -> None:
        try:
            check = self.recorder.preflight()
        except OSError as exc:
            self.disk_label.setText(f"Cannot check the disk: {exc}")
            return
        minutes = check.minutes_available
        hours = f"{minutes / 60:.1f} h" if minutes >= 120 else f"{minutes:.0f} min"
        self.disk_label.setText(f"{check.free_bytes / 1e9:.1f} GB free: about {hours} of "
                                f"recording ({check.rate_source} "
                                f"{check.bytes_per_second / 1e6:.2f} MB/s)"
                                if check.writable else check.message)
        low = minutes < self.recorder.config.low_disk_minutes or not check.writable
        self.disk_label.setStyleSheet("color: #ff8a80;" if low else "")
