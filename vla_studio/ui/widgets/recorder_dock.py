"""Recorder dock: the episode's language labels, the record / success / failure / discard
buttons, live progress and how much recording the disk still allows.

The dock is a view of :class:`vla_studio.data.recorder.Recorder` (one per station, shared with
the dataset browser through :func:`recorder_for`). Buttons call the recorder, which returns at
once (files are finished on its writer thread); the dock polls ``Recorder.status()`` a few times
a second and listens to ``recorder.*`` events for messages. Gamepad buttons and menu shortcuts
send the same station commands, so the dock follows whatever started or stopped an episode.
"""

from __future__ import annotations

import logging
import weakref
from typing import Callable

from PySide6.QtCore import (QCoreApplication, QEvent, QObject, QSettings, QStringListModel, Qt,
                            QTimer)
from PySide6.QtWidgets import (QCheckBox, QCompleter, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from vla_studio.core.config import ConfigError
from vla_studio.core.events import AppEvent
from vla_studio.data.dataset import DatasetError
from vla_studio.data.labels import EpisodeLabels, LabelError
from vla_studio.data.recorder import Recorder, RecorderError
from vla_studio.data.recording import EpisodeState, RecorderState, RecorderStatus
from vla_studio.data.tasks import TaskSampler, load_task_file
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge

log = logging.getLogger(__name__)
STATUS_HZ = 5.0
AUTO_SAVE_KEY = "recorder/save_when_done"
SETTLE_KEY = "recorder/save_when_done_after_s"
DEFAULT_SETTLE_S = 1.0
PREFLIGHT_INTERVAL_MS = 10_000
_REFUSED = (RecorderError, LabelError, DatasetError)
_RECORDERS: "weakref.WeakKeyDictionary[Station, Recorder]" = weakref.WeakKeyDictionary()


def recorder_for(station: Station) -> Recorder:
    """The station's recorder, shared by the recorder dock and the dataset browser.

    Created on first use without touching the disk: the dataset folder is prepared when the
    first episode starts. It is disconnected (the open episode saved) when the application quits
    or :func:`release_recorder` is called for the station.
    """
    recorder = _RECORDERS.get(station)
    if recorder is None:
        recorder = Recorder(station)
        recorder.register_commands()
        _RECORDERS[station] = recorder
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(recorder.disconnect)
    return recorder


def release_recorder(station: Station) -> None:
    """Save any open episode and stop the station's recorder (its window is going away)."""
    recorder = _RECORDERS.pop(station, None)
    if recorder is not None:
        recorder.disconnect()


class WindowCloseWatcher(QObject):
    """Calls ``callback`` when the top-level window holding ``widget`` closes.

    Docks are created before they are placed in the main window, so the filter is installed
    from the event loop's first turn. Work happens in the close event, never in a destructor.
    """

    def __init__(self, widget: QWidget, callback: Callable[[], None]) -> None:
        super().__init__(widget)
        self._widget, self._callback = widget, callback
        self._window: QWidget | None = None
        QTimer.singleShot(0, self._install)

    def _install(self) -> None:
        window = self._widget.window()
        if window is not self._widget:
            self._window = window
            window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self._window and event.type() == QEvent.Type.Close:
            self._callback()
        return False


class RecorderDock(QWidget):
    """Labels, lifecycle buttons and progress of the station's recorder."""

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station, self.bridge = station, bridge
        self.recorder = recorder_for(station)
        self._close_watcher = WindowCloseWatcher(self, lambda: release_recorder(station))
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
        self.next_task_button.clicked.connect(lambda: self._call(self.recorder.next_task))
        self.task_file_button = QPushButton("Task file...")
        self.task_file_button.clicked.connect(self.load_tasks)
        self.operator = QLineEdit()
        self.scene = QLineEdit()
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("notes about this episode")
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
        self.discard_button.clicked.connect(lambda: self._call(self.recorder.discard))
        self.rerecord_button = QPushButton("Re-record")
        self.rerecord_button.setToolTip("Discard the open (or last) episode and record it again "
                                        "with the same instruction and scene seed")
        self.rerecord_button.clicked.connect(lambda: self._call(self.recorder.rerecord))

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
        auto_row = QHBoxLayout()
        auto_row.addWidget(self.auto_save)
        auto_row.addWidget(self.settle)
        auto_row.addStretch(1)
        grid.addLayout(auto_row, 3, 0, 1, 4)
        grid.addWidget(self.task_state, 4, 0, 1, 4)

        self.last_label = QLabel("No episode recorded yet.")
        self.last_label.setWordWrap(True)
        self.disk_label = QLabel()
        self.disk_label.setWordWrap(True)
        self.message = QLabel()
        self.message.setObjectName("errorText")
        self.message.setWordWrap(True)
        info_box = QGroupBox("Dataset")
        info = QVBoxLayout(info_box)
        info.addWidget(QLabel(f"Folder: {self.recorder.dataset.root}"))
        info.addWidget(self.last_label)
        info.addWidget(self.disk_label)

        # Record controls first: they are what the operator looks for mid-episode. (The main
        # window puts every dock panel in a scroll area, so a short dock never grows the window.)
        layout = QVBoxLayout(self)
        layout.addWidget(run_box)
        layout.addWidget(labels_box)
        layout.addWidget(info_box)
        layout.addWidget(self.message)
        layout.addStretch(1)

        self._auto_save_changed()
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
        self.refresh()

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
            self.message.setText(str(exc))
            return False
        done: dict[str, int] = {}
        for summary in self.recorder.index.list():
            done[summary.task] = done.get(summary.task, 0) + 1
        self.recorder.tasks = TaskSampler(task_file, done)
        self.recorder.next_task()
        self.load_labels()
        self.message.setText("")
        return True

    # ----- lifecycle -------------------------------------------------------------------------
    def toggle_recording(self) -> None:
        state = self.recorder.status().state
        if state == RecorderState.IDLE:
            self._call(self.recorder.start)
        else:
            self._call(self.recorder.stop)

    def toggle_pause(self) -> None:
        if self.recorder.status().state == RecorderState.PAUSED:
            self._call(self.recorder.resume)
        else:
            self._call(self.recorder.pause)

    def finish(self, success: bool) -> None:
        """End the open episode with this outcome, or label the last one."""
        if self.recorder.status().episode is not None:
            self._call(lambda: self.recorder.stop(success=success))
        else:
            self._call(lambda: self.recorder.mark_success(success))

    def _auto_save_changed(self) -> None:
        on = self.auto_save.isChecked()
        self.recorder.save_on_success_s = self.settle.value() if on else None
        self.settle.setEnabled(on)
        settings = QSettings()
        settings.setValue(AUTO_SAVE_KEY, on)
        settings.setValue(SETTLE_KEY, self.settle.value())

    def _call(self, fn) -> None:
        try:
            fn()
        except _REFUSED as exc:
            self.message.setText(str(exc))
            return
        self.message.setText("")
        self.load_labels()
        self.refresh()

    # ----- views of the recorder -------------------------------------------------------------
    def on_event(self, event: AppEvent) -> None:
        if not event.kind.startswith("recorder."):
            return
        if event.kind == "recorder.task_proposed":
            self.load_labels()
        if event.level >= logging.WARNING:
            self.message.setText(event.message)
        if event.kind in ("recorder.saved", "recorder.recovered", "recorder.disk_low"):
            self.show_preflight()

    def refresh(self) -> None:
        if self.recorder.poll_task():
            self.load_labels()  # saved as a success: the next task may be proposed
        status = self.recorder.status()
        self.show_status(status)
        if self.recorder.labels != self._shown_labels and not self._editing():
            self.load_labels()

    def _editing(self) -> bool:
        return any(w.hasFocus() for w in (self.instruction, self.paraphrases, self.operator,
                                          self.scene, self.notes))

    def show_status(self, status: RecorderStatus) -> None:
        state = status.state
        ep = status.episode
        colour = {RecorderState.RECORDING: "#ff5c5c", RecorderState.PAUSED: "#d9a520"}.get(state, "#9aa3ad")
        self.state_label.setText(f"● {state.value.upper()}" if state != RecorderState.IDLE else "READY")
        self.state_label.setStyleSheet(f"color: {colour}; font-size: 14pt; font-weight: 700;")
        if ep is not None:
            self.progress.setText(f"{ep.duration_s:5.1f} s · {ep.steps} steps · "
                                  f"queue {100 * status.queue_fraction:.0f}%")
        else:
            saving = f" · saving {status.saving}" if status.saving else ""
            self.progress.setText(f"{status.saved} saved this session{saving}")
        recording = state != RecorderState.IDLE
        self.record_button.setText("■ Stop and save" if recording else "● Record")
        self.record_button.setStyleSheet(
            "background: #7a1710; border-color: #ff5c5c; font-weight: 700;" if recording else
            "font-weight: 700;")
        self.pause_button.setText("Resume" if state == RecorderState.PAUSED else "Pause")
        self.pause_button.setEnabled(recording)
        has_episode = recording or status.last is not None
        for button in (self.success_button, self.failure_button, self.discard_button,
                       self.rerecord_button):
            button.setEnabled(has_episode)
        self.next_task_button.setEnabled(self.recorder.tasks is not None and not recording)
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
            self.last_label.setText(f"Last: {last.labels.instruction!r} · {last.duration_s:.1f} s · "
                                    f"{outcome} · {words}\n{name}")

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
