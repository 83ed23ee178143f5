"""Policy dock: load a policy, type the instruction, Start / Pause / Step once / Finish, the run's
settings, live figures, a plot of confidence and actions, and the run log.

A view of :class:`~vla_studio.policies.supervisor.PolicySupervisor`. Loading, starting a run
(a scene reset, the recorder) and finishing it may take seconds, so they run on the panel's
``policy-jobs`` thread (:class:`~vla_studio.ui.background.BackgroundJobs`) while the panel says
"Loading…" / "Starting…"; a refusal is one line next to the buttons. Pause, the settings and the
STOP act at once: STOP triggers the latch on this thread (it only sets flags), and the control
loop, not this panel, holds the robot. The camera overlays are
:class:`~vla_studio.ui.policy.overlays.PolicyOverlays`, attached once the window gives the panel
its camera grid.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from PySide6.QtCore import QSettings, QStringListModel, Qt, QTimer
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QCompleter, QDoubleSpinBox,
                               QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSlider, QSpinBox, QTabWidget,
                               QVBoxLayout, QWidget)

from vla_studio.core.events import AppEvent
from vla_studio.core.session import RunState, SessionError
from vla_studio.core.types import Step
from vla_studio.data.labels import LabelError
from vla_studio.data.recorder import RecorderError
from vla_studio.policies.chunk_schedule import MODES
from vla_studio.policies.errors import PolicyError
from vla_studio.policies.run_log import POLICY
from vla_studio.policies.runner import FALLBACKS, RunnerSettings
from vla_studio.policies.runner_stats import CRASHED, ERROR, HUNG
from vla_studio.policies.supervisor import PolicySupervisor, SupervisorError, describe_spec
from vla_studio.station import Station
from vla_studio.ui.background import BackgroundJobs, JobOutcome
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.policy.load_box import LoadRequest, PolicyLoadBox
from vla_studio.ui.policy.overlays import PolicyOverlays
from vla_studio.ui.policy.plot import PolicyPlot
from vla_studio.ui.policy.run_view import RunFigures, RunLogView, verdict_text
from vla_studio.ui.station_recorder import WindowCloseWatcher, recorder_for

log = logging.getLogger(__name__)
REFRESH_HZ = 10.0
SETTINGS_KEY = "policy/settings"
RECORD_KEY = "policy/record"
AUTO_FINISH_KEY = "policy/finish_when_done"
INSTRUCTION_KEY = "policy/instruction"
FAILED_STATES = (CRASHED, HUNG, ERROR)  # the model needs a restart before the run can go on
_REFUSED = (SupervisorError, SessionError, PolicyError, RecorderError, LabelError)


class PolicyPanel(QWidget):
    """The Policy dock (see the module docstring)."""

    #: Station commands this dock runs for the window's menus (F7 Start, F8 Step once...).
    COMMANDS = ("policy.start", "policy.step", "policy.pause", "policy.finish")

    def __init__(self, station: Station, bridge: CoreBridge,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station, self.bridge = station, bridge
        self.recorder = recorder_for(station)
        self.supervisor = PolicySupervisor(station, self.recorder)
        self.jobs = BackgroundJobs("policy-jobs", self)
        self.jobs.busy_changed.connect(lambda _label: self.refresh())
        self._close_watcher = WindowCloseWatcher(self, self._window_closed)
        self.overlays: PolicyOverlays | None = None

        self.load_box = PolicyLoadBox()
        self.load_box.load_requested.connect(self.load)
        self.load_box.unload_requested.connect(self.unload)
        self.run_box = self._build_run_box()
        self.settings_box = self._build_settings_box()
        self.figures = RunFigures()
        self.plot = PolicyPlot()
        self.log_view = RunLogView()
        # The log and the plot share the room left (the right column's tabs must fit 900 px).
        lower = QTabWidget()
        lower.setObjectName("policyTabs")
        lower.addTab(self.log_view, "Run log")
        lower.addTab(self.plot, "Plot")
        self.lower_tabs = lower
        layout = QVBoxLayout(self)
        layout.addWidget(self.run_box)  # what the supervisor reaches for mid-run comes first
        layout.addWidget(self.load_box)
        layout.addWidget(self.settings_box)
        layout.addWidget(self.figures)
        layout.addWidget(lower, 1)

        self._read_settings()
        bridge.step.connect(self._on_step)
        bridge.app_event.connect(self.on_event)
        bridge.frame_tick.connect(self.update_overlays)
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / REFRESH_HZ))
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    # ----- construction ------------------------------------------------------------------------
    def _build_run_box(self) -> QGroupBox:
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("instruction, e.g. pick up the red cube")
        self.instruction.setAccessibleName("Policy instruction")
        self.completions = QStringListModel(self)
        completer = QCompleter(self.completions, self)
        completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.instruction.setCompleter(completer)
        self.instruction.textEdited.connect(self._complete)
        self.instruction.returnPressed.connect(lambda: self.start())
        self.start_button = QPushButton("▶ Start")
        self.start_button.setObjectName("policyStart")
        self.start_button.setMinimumHeight(36)
        self.start_button.setToolTip("Start a run with this instruction, or resume the paused "
                                     "run (F7)")
        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Hold and pause the run; Start resumes it (F6)")
        self.pause_button.clicked.connect(self.pause)
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip("Run the policy for one chunk, then pause (F8)")
        self.step_button.clicked.connect(lambda: self.start(step_once=True))
        self.finish_button = QPushButton("■ Finish")
        self.finish_button.setToolTip("End the run: save the episode (when recorded) with the "
                                      "robot's verdict; the log keeps the outcome (Ctrl+F7)")
        self.finish_button.clicked.connect(lambda: self.finish())
        self.stop_button = QPushButton("STOP")
        self.stop_button.setObjectName("policyStop")
        self.stop_button.setToolTip("Latch the software e-stop (Esc anywhere; Space during a run)")
        self.stop_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stop_button.setMinimumHeight(36)
        self.stop_button.setStyleSheet("background: #d92d20; color: white; font-weight: 800;")
        self.stop_button.pressed.connect(self.stop)
        self.restart_button = QPushButton("Restart the policy")
        self.restart_button.setObjectName("policyRestart")
        self.restart_button.setToolTip("The model crashed, hung or keeps failing: start it again "
                                       "(the run stays paused; Start resumes it)")
        self.restart_button.clicked.connect(self.restart_policy)
        self.restart_button.setVisible(False)
        self.record = QCheckBox("Record the run as an episode")
        self.record.setToolTip(f"Saved into {self.recorder.dataset.root} as a policy episode "
                               "(proposed actions, confidence, latency per chunk)")
        self.auto_finish = QCheckBox("Finish when the task is done for")
        self.settle = QDoubleSpinBox()
        self.settle.setRange(0.0, 10.0)
        self.settle.setSingleStep(0.5)
        self.settle.setSuffix(" s")
        self.auto_finish.toggled.connect(self._auto_finish_changed)
        self.settle.valueChanged.connect(self._auto_finish_changed)
        self.run_state = QLabel()
        self.run_state.setObjectName("policyRunState")
        self.run_state.setStyleSheet("font-weight: 700;")
        self.verdict = QLabel()
        self.verdict.setObjectName("policyVerdict")
        self.message = QLabel()
        self.message.setObjectName("errorText")
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        box = QGroupBox("Run")
        grid = QGridLayout(box)
        grid.addWidget(self.instruction, 0, 0, 1, 5)
        for col, button in enumerate((self.start_button, self.pause_button, self.step_button,
                                      self.finish_button, self.stop_button)):
            grid.addWidget(button, 1, col)
        grid.addWidget(self.message, 2, 0, 1, 4)
        grid.addWidget(self.restart_button, 2, 4)
        grid.addWidget(self.run_state, 3, 0, 1, 3)
        grid.addWidget(self.verdict, 3, 3, 1, 2)
        grid.addWidget(self.record, 4, 0, 1, 5)
        options = QHBoxLayout()
        options.addWidget(self.auto_finish)
        options.addWidget(self.settle)
        options.addStretch(1)
        grid.addLayout(options, 5, 0, 1, 5)
        return box

    def _build_settings_box(self) -> QGroupBox:
        self.speed = QSlider(Qt.Orientation.Horizontal)
        self.speed.setRange(5, 100)
        self.speed.setSingleStep(5)
        self.speed.setPageStep(10)
        self.speed_label = QLabel()
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.mode.setToolTip("chunk: each chunk runs open loop; replan: a new chunk every k "
                             "steps; ensemble: ACT's temporal ensembling")
        self.replan_every = QSpinBox()
        self.replan_every.setRange(1, 50)
        self.replan_every.setPrefix("k ")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setToolTip("Below this for a window of steps the fallback runs (0: never)")
        self.conf_window = QSpinBox()
        self.conf_window.setRange(1, 200)
        self.conf_window.setSuffix(" steps")
        self.fallback = QComboBox()
        for name, text in (("pause", "pause and ask for help"), ("hold", "hold"),
                           ("teleop", "hand over to teleop")):
            self.fallback.addItem(text, name)
        box = QGroupBox("Settings (take effect at once)")
        form = QFormLayout(box)
        speed_row = QHBoxLayout()
        speed_row.addWidget(self.speed, 1)
        speed_row.addWidget(self.speed_label)
        form.addRow("Speed", speed_row)
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.mode, 1)
        mode_row.addWidget(self.replan_every)
        form.addRow("Chunks", mode_row)
        conf_row = QHBoxLayout()
        conf_row.addWidget(QLabel("below"))
        conf_row.addWidget(self.threshold)
        conf_row.addWidget(QLabel("for"))
        conf_row.addWidget(self.conf_window)
        conf_row.addStretch(1)
        form.addRow("Confidence", conf_row)
        form.addRow("then", self.fallback)
        for widget in (self.speed,):
            widget.valueChanged.connect(self._settings_changed)
        for spin in (self.replan_every, self.threshold, self.conf_window):
            spin.valueChanged.connect(self._settings_changed)
        for combo in (self.mode, self.fallback):
            combo.currentIndexChanged.connect(self._settings_changed)
        return box

    def attach_cameras(self, grid) -> None:
        """The window's camera grid: draw the policy's overlays on its panes."""
        panes = getattr(grid, "panes", {})
        self.overlays = PolicyOverlays(panes, lambda text: self.supervisor.log.add(POLICY, text))
        if self.supervisor.runner is not None:
            self.overlays.attach(self.threshold.value())

    # ----- settings ----------------------------------------------------------------------------
    def run_settings(self) -> RunnerSettings:
        """The settings as the fields show them (``where`` comes with each load)."""
        return replace(self.supervisor.settings, speed_scale=self.speed.value() / 100.0,
                       mode=self.mode.currentText(), replan_every=self.replan_every.value(),
                       confidence_threshold=self.threshold.value(),
                       confidence_window=self.conf_window.value(),
                       fallback=str(self.fallback.currentData()))

    def _read_settings(self) -> None:
        qs = QSettings()
        base = RunnerSettings()

        def value(key: str, default, kind):
            return qs.value(f"{SETTINGS_KEY}/{key}", default, type=kind)

        widgets = (self.speed, self.mode, self.replan_every, self.threshold, self.conf_window,
                   self.fallback)
        for w in widgets:
            w.blockSignals(True)
        self.speed.setValue(int(round(100 * value("speed_scale", base.speed_scale, float))))
        mode = str(value("mode", base.mode, str))
        self.mode.setCurrentText(mode if mode in MODES else base.mode)
        self.replan_every.setValue(value("replan_every", base.replan_every, int))
        self.threshold.setValue(value("confidence_threshold", 0.0, float))
        self.conf_window.setValue(value("confidence_window", base.confidence_window, int))
        fallback = str(value("fallback", base.fallback, str))
        self.fallback.setCurrentIndex(max(0, self.fallback.findData(
            fallback if fallback in FALLBACKS else base.fallback)))
        for w in widgets:
            w.blockSignals(False)
        self.record.setChecked(qs.value(RECORD_KEY, True, type=bool))
        self.auto_finish.setChecked(qs.value(AUTO_FINISH_KEY, False, type=bool))
        self.settle.setValue(qs.value(f"{AUTO_FINISH_KEY}_after_s", 1.0, type=float))
        self.instruction.setText(str(qs.value(INSTRUCTION_KEY, "") or ""))
        self.record.toggled.connect(lambda on: QSettings().setValue(RECORD_KEY, on))
        self.supervisor.settings = self.run_settings()
        self._show_settings()
        self._auto_finish_changed()

    def _settings_changed(self) -> None:
        settings = self.run_settings()
        self.supervisor.apply(settings)  # quick: the runner takes them between two ticks
        qs = QSettings()
        for key in ("speed_scale", "mode", "replan_every", "confidence_threshold",
                    "confidence_window", "fallback"):
            qs.setValue(f"{SETTINGS_KEY}/{key}", getattr(settings, key))
        self._show_settings()

    def _show_settings(self) -> None:
        self.speed_label.setText(f"{self.speed.value()} %")
        self.replan_every.setEnabled(self.mode.currentText() == "replan")
        self.plot.set_threshold(self.threshold.value())

    def _auto_finish_changed(self) -> None:
        on = self.auto_finish.isChecked()
        self.supervisor.auto_finish_s = self.settle.value() if on else None
        self.settle.setEnabled(on)
        QSettings().setValue(AUTO_FINISH_KEY, on)
        QSettings().setValue(f"{AUTO_FINISH_KEY}_after_s", self.settle.value())

    def _complete(self, text: str) -> None:
        history = self.recorder.history
        self.completions.setStringList(history.complete(text, 10) if text else history.recent(10))

    # ----- actions -----------------------------------------------------------------------------
    def load(self, request: LoadRequest) -> bool:
        """Load a policy in the background (the panel says "Loading…")."""
        if self.jobs.busy:
            self.show_message(f"Still {self.jobs.label}: wait until it is done.")
            return False
        settings = replace(self.run_settings(), where=request.where)
        self.load_box.show_loading(request.source)

        def job():
            return self.supervisor.load(request.source, settings,
                                        api_key=request.api_key or None, trusted=request.trusted)

        def done(outcome: JobOutcome) -> None:
            if outcome.ok:
                self.load_box.remember(request.source)
                if self.overlays is not None:
                    self.overlays.detach()
                    self.overlays.attach(self.threshold.value())
                self.plot.clear()
            else:
                self._refused(outcome, into_load_box=True)
            self._show_loaded()

        return self.jobs.submit("loading", job, done)

    def unload(self) -> bool:
        if self.overlays is not None:
            self.overlays.detach()
        return self._submit("unloading", self.supervisor.unload)

    def start(self, step_once: bool = False) -> bool:
        """Start a run with the instruction (or resume the paused one) in the background."""
        instruction = self.instruction.text()
        QSettings().setValue(INSTRUCTION_KEY, instruction.strip())
        record = self.record.isChecked()
        return self._submit("starting", lambda: self.supervisor.start(
            instruction, record=record, step_once=step_once))

    def pause(self) -> None:
        self.supervisor.pause()

    def finish(self, success: bool | None = None) -> bool:
        return self._submit("finishing", lambda: self.supervisor.finish(success))

    def restart_policy(self) -> None:
        """Restart a crashed, hung or failing model (its client thread does it)."""
        runner = self.supervisor.runner
        if runner is not None:
            runner.restart()
            self.show_message("Restarting the policy…")

    def stop(self) -> None:
        """STOP: latch the e-stop now (this thread only sets flags; the loop holds)."""
        self.station.latch.trigger("Policy dock STOP", "gui")
        self.refresh()

    def run_command(self, name: str) -> bool:
        """Run station command ``name`` (one of :attr:`COMMANDS`) as the buttons do."""
        if name == "policy.pause":
            self.pause()
            return True
        handlers = {"policy.start": self.start, "policy.step": lambda: self.start(True),
                    "policy.finish": self.finish}
        return bool(handlers[name]())

    def _submit(self, label: str, fn) -> bool:
        if self.jobs.busy:
            self.show_message(f"Still {self.jobs.label}: wait until it is done.")
            return False
        self.show_message("")
        self.jobs.submit(label, fn, self._job_done)
        self.refresh()
        return True

    def _job_done(self, outcome: JobOutcome) -> None:
        if not outcome.ok:
            self._refused(outcome)
        self._show_loaded()
        self.refresh()

    def _refused(self, outcome: JobOutcome, into_load_box: bool = False) -> None:
        error = outcome.error
        if isinstance(error, _REFUSED):
            text = str(error)
        else:
            log.error("policy panel: %s failed", outcome.label, exc_info=error)
            text = f"{outcome.label.capitalize()} failed: {error} (see the log)"
        (self.load_box.show_error if into_load_box else self.show_message)(text)

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # ----- views -------------------------------------------------------------------------------
    def _show_loaded(self) -> None:
        runner = self.supervisor.runner
        if runner is None or runner.spec is None:
            self.load_box.show_state(False)
            return
        self.load_box.show_state(True, runner.host.label, describe_spec(runner.spec))

    def _on_step(self, step: Step) -> None:
        if self.supervisor.runner is not None:
            self.plot.add_step(step)

    def on_event(self, event: AppEvent) -> None:
        if event.kind == "policy.help":
            QApplication.beep()  # the band on every camera says the rest
        if event.kind.startswith("policy.") and event.level >= logging.WARNING:
            self.show_message(event.message)
        elif event.kind == "policy.restarted":
            self.show_message("")

    def refresh(self) -> None:
        """The panel's timer: the supervisor's poll, buttons, figures, log, plot."""
        sup = self.supervisor
        if sup.poll():  # the task has held: finish the run (saves the episode)
            self.finish()
        runner = sup.runner
        snap = runner.snapshot() if runner is not None else None
        session = self.station.session.snapshot
        busy = self.jobs.label
        loaded = runner is not None
        running = session.state == RunState.RUNNING
        if busy:
            state = f"{busy.upper()}…"
        elif not loaded:
            state = "No policy"
        elif sup.run_active:
            state = {RunState.RUNNING: "RUNNING", RunState.PAUSED: "PAUSED",
                     RunState.ESTOPPED: "STOPPED"}[session.state]
            if runner.stepping:
                state += " · stepping once"
        else:
            state = "Ready: type the instruction, then Start"
        self.run_state.setText(state)
        self.start_button.setText("▶ Resume" if sup.run_active else "▶ Start")
        can_start = loaded and not busy and not running
        self.start_button.setEnabled(can_start)
        self.step_button.setEnabled(can_start)
        self.pause_button.setEnabled(running)
        self.finish_button.setEnabled(sup.run_active and not busy)
        self.record.setEnabled(not sup.run_active)
        self.instruction.setReadOnly(sup.run_active)
        self.load_box.setEnabled(not sup.run_active and busy not in ("starting", "finishing"))
        self.figures.show_snapshot(snap)
        self.restart_button.setVisible(snap is not None and snap.state in FAILED_STATES)
        text, colour = verdict_text(sup.verdict, sup.run_active)
        self.verdict.setText(text)
        self.verdict.setStyleSheet(f"color: {colour}; font-weight: 600;")
        self.log_view.add_entries(sup.log.since(self.log_view.last_seq))
        self.plot.redraw()

    def update_overlays(self) -> None:
        """Once per display frame: the camera overlays follow the run."""
        overlays, runner = self.overlays, self.supervisor.runner
        if overlays is None or runner is None or runner.spec is None:
            return
        settings = self.supervisor.settings
        limits = self.station.profile.safety
        overlays.update(runner.snapshot(), runner.planned_actions(), self.bridge.latest_step,
                        self.station.session.snapshot, self.supervisor.run_active,
                        settings.confidence_threshold, settings.speed_scale * limits.speed_scale,
                        limits, runner.spec.action_space.kind)

    def _window_closed(self) -> None:
        self._timer.stop()
        self.jobs.stop()
        self.supervisor.close()
