"""Station dock: run state, control mode, active teleop device, loop timing and safety counts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from vla_studio.core.clock import STAGES, LoopStatsSnapshot
from vla_studio.core.session import ControlMode, RunState, SessionError, SessionState
from vla_studio.devices.base import DeviceError
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge


class StationPanel(QWidget):
    """A view of the station's session and loop; buttons forward intent to the core."""

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station, self.bridge = station, bridge
        p = station.profile

        self.state_label = QLabel()
        self.state_label.setObjectName("runState")
        self.reason_label = QLabel()
        self.reason_label.setWordWrap(True)
        self.mode_combo = QComboBox()
        for mode in ControlMode:
            self.mode_combo.addItem(mode.value.capitalize(), mode)
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.teleop_combo = QComboBox()
        self.teleop_combo.addItems(list(station.teleops))
        self.teleop_combo.setEnabled(bool(station.teleops))
        self.teleop_combo.currentTextChanged.connect(self._on_teleop)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start_run)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(lambda: station.session.pause("paused by operator"))
        self.error_label = QLabel()
        self.error_label.setObjectName("errorText")
        self.error_label.setWordWrap(True)

        run_box = QGroupBox("Run")
        form = QFormLayout(run_box)
        form.addRow("State", self.state_label)
        form.addRow("", self.reason_label)
        form.addRow("Mode", self.mode_combo)
        form.addRow("Teleop device", self.teleop_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.pause_button)
        form.addRow(buttons)
        form.addRow(self.error_label)

        loop_box = QGroupBox("Control loop")
        self.loop_labels: dict[str, QLabel] = {}
        loop_form = QFormLayout(loop_box)
        for key, title in (("rate", "Rate"), ("jitter", "Jitter p50 / p99"),
                           ("overruns", "Overruns"), ("stages", "Stage p99 (ms)")):
            self.loop_labels[key] = QLabel("-")
            self.loop_labels[key].setWordWrap(True)  # the dock's width, not the text's
            loop_form.addRow(title, self.loop_labels[key])
        station_label = QLabel(f"{p.name}\nrobot: {p.robot.type}, "
                               f"{p.action_space.kind} at {p.control_rate_hz:g} Hz")
        station_label.setWordWrap(True)
        loop_form.addRow("Station", station_label)

        safety_box = QGroupBox("Safety events")
        self.safety_table = QTableWidget(0, 2)
        self.safety_table.setHorizontalHeaderLabels(["Event", "Count"])
        self.safety_table.verticalHeader().setVisible(False)
        self.safety_table.horizontalHeader().setStretchLastSection(True)
        self.safety_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        QVBoxLayout(safety_box).addWidget(self.safety_table)

        layout = QVBoxLayout(self)
        layout.addWidget(run_box)
        layout.addWidget(loop_box)
        layout.addWidget(safety_box, 1)

        bridge.session_changed.connect(self.show_session)
        bridge.app_event.connect(self._on_event)
        bridge.stats.connect(self.show_stats)
        self.show_session(station.session.snapshot)
        if station.teleops and station.active_teleop is None:
            self._on_teleop(self.teleop_combo.currentText())

    def start_run(self) -> None:
        """Start a run in the selected mode; an e-stop or missing source is explained."""
        mode = self.mode_combo.currentData()
        try:
            self.station.session.start(mode)
            self.error_label.setText("")
        except SessionError as exc:
            self.error_label.setText(str(exc))

    def _on_mode(self) -> None:
        self.station.session.set_mode(self.mode_combo.currentData())

    def _on_teleop(self, name: str) -> None:
        if not name:
            return
        try:
            self.station.use_teleop(name)
            self.error_label.setText("")
        except DeviceError as exc:
            self.error_label.setText(str(exc))

    def _on_event(self, event) -> None:
        if event.kind == "teleop.active":  # picked elsewhere (Teleop dock, CLI): follow it
            self.teleop_combo.blockSignals(True)
            self.teleop_combo.setCurrentText(event.data.get("name", ""))
            self.teleop_combo.blockSignals(False)

    def show_session(self, snap: SessionState) -> None:
        self.state_label.setText(snap.state.value.upper())
        self.state_label.setProperty("state", snap.state.value)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)
        self.reason_label.setText(snap.reason)
        idx = self.mode_combo.findData(snap.mode)
        if idx >= 0 and idx != self.mode_combo.currentIndex():
            self.mode_combo.blockSignals(True)
            self.mode_combo.setCurrentIndex(idx)
            self.mode_combo.blockSignals(False)
        self.start_button.setEnabled(snap.state == RunState.PAUSED)
        self.pause_button.setEnabled(snap.state == RunState.RUNNING)

    def show_stats(self, stats: LoopStatsSnapshot, counts: dict[str, int]) -> None:
        self.loop_labels["rate"].setText(f"{stats.achieved_hz:.1f} / {stats.rate_hz:g} Hz")
        self.loop_labels["jitter"].setText(f"{stats.jitter_p50_ms:.2f} / {stats.jitter_p99_ms:.2f} ms")
        self.loop_labels["overruns"].setText(f"{stats.overruns} (skipped ticks {stats.skipped_ticks})")
        self.loop_labels["stages"].setText("  ".join(f"{s[:3]} {stats.stage_p99_ms[s]:.2f}"
                                                     for s in STAGES))
        self.safety_table.setRowCount(len(counts))
        for row, (name, count) in enumerate(sorted(counts.items())):
            self.safety_table.setItem(row, 0, QTableWidgetItem(name.lower().replace("_", " ")))
            item = QTableWidgetItem(str(count))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.safety_table.setItem(row, 1, item)
