"""The Teleop dock: pick the device, see what it does to the robot, tune it, test it.

```
 device picker + status lamp + what to do about a problem
 driving state (driving / holding: why / taking over / paused)
 [Drive]     command bars (what the robot is told, m/s and deg/s), gripper, speed sliders
 [Bindings]  controller diagram (gamepad, keyboard, SpaceMouse) lit live + the legend table
 [Test]      raw axes and buttons as the device reports them, read rate, device details
```
A view of core objects only: it reads the devices' latest states and the loop's latest step at
display rate (the bridge's ``frame_tick``), and writes nothing but the device choice and tuning.
It also owns the application-wide keyboard bridge, so the keyboard device works wherever the
focus is.
"""

from __future__ import annotations

import math
import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QSlider,
                               QStackedWidget, QTableWidget, QTableWidgetItem, QTabWidget,
                               QVBoxLayout, QWidget)

from vla_studio.core.session import RunState
from vla_studio.core.types import SourceKind, Step
from vla_studio.devices.base import DeviceError, Teleop, TeleopState
from vla_studio.devices.teleop.base import MappedTeleop, TeleopStatus
from vla_studio.devices.teleop.bindings import INTERVENTION
from vla_studio.devices.teleop.gamepad import GamepadTeleop
from vla_studio.devices.teleop.keyboard import KeyboardTeleop
from vla_studio.devices.teleop.spacemouse import SpaceMouseTeleop
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.keyboard_bridge import KeyboardBridge
from vla_studio.ui.widgets.teleop_diagram import (GamepadDiagram, KeyboardDiagram,
                                                  SpaceMouseDiagram)
from vla_studio.ui.widgets.teleop_readouts import BarsView, LampsView

_LAMP = {"ok": "#2fb36b", "warn": "#d9a520", "off": "#d92d20"}
_COMMAND_NAMES = (("vx", "m/s"), ("vy", "m/s"), ("vz", "m/s"), ("roll", "°/s"), ("pitch", "°/s"),
                  ("yaw", "°/s"))


class TeleopPanel(QWidget):
    """Dock widget for the station's teleop devices."""

    def __init__(self, station: Station, bridge: CoreBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station, self.bridge = station, bridge
        self.keyboard_bridge = KeyboardBridge(station, bridge, self)
        self._device_name = ""
        self._last_step: Step | None = None
        self._shown_rows: object = None

        self.device_combo = QComboBox()
        for spec in station.profile.teleops:
            text = spec.name if spec.name == spec.type else f"{spec.name} ({spec.type})"
            self.device_combo.addItem(text, spec.name)
        for name in station.teleops:  # devices added without a profile entry
            if self.device_combo.findData(name) < 0:
                self.device_combo.addItem(name, name)
        self.device_combo.setEnabled(bool(station.teleops))
        self.device_combo.currentIndexChanged.connect(self._on_pick)
        self.lamp = QLabel()
        self.lamp.setFixedWidth(14)
        self.summary = QLabel()
        self.summary.setObjectName("teleopSummary")
        self.message = QLabel()
        self.message.setObjectName("errorText")
        self.message.setWordWrap(True)
        self.drive_state = QLabel()
        self.drive_state.setObjectName("teleopDriveState")
        self.drive_state.setWordWrap(True)

        top = QGridLayout()
        top.addWidget(QLabel("Device"), 0, 0)
        top.addWidget(self.device_combo, 0, 1, 1, 2)
        top.addWidget(self.lamp, 1, 0, Qt.AlignmentFlag.AlignRight)
        top.addWidget(self.summary, 1, 1, 1, 2)
        top.setColumnStretch(1, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_drive_page(), "Drive")
        self.tabs.addTab(self._build_bindings_page(), "Bindings")
        self.tabs.addTab(self._build_test_page(), "Test")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.message)
        layout.addWidget(self.drive_state)
        layout.addWidget(self.tabs, 1)

        bridge.frame_tick.connect(self.refresh)
        bridge.step.connect(self.show_step)
        self._select(station.active_teleop or self.device_combo.currentData() or "")
        self.refresh()

    # ----- pages ----------------------------------------------------------------------------------
    def _build_drive_page(self) -> QWidget:
        page = QWidget()
        command_box = QGroupBox("Command to the robot (base frame)")
        self.command_bars = BarsView()
        self.gripper_label = QLabel()
        cl = QVBoxLayout(command_box)
        cl.addWidget(self.command_bars)
        cl.addWidget(self.gripper_label)

        speed_box = QGroupBox("Speed (this session)")
        self.linear_slider = self._slider()
        self.angular_slider = self._slider()
        self.linear_value = QLabel()
        self.angular_value = QLabel()
        self.rotation_check = QCheckBox("Rotation enabled")
        self.linear_slider.valueChanged.connect(self._on_speed)
        self.angular_slider.valueChanged.connect(self._on_speed)
        self.rotation_check.toggled.connect(self._on_rotation)
        self.speed_note = QLabel()
        self.speed_note.setWordWrap(True)
        self.speed_note.setObjectName("mutedText")
        form = QFormLayout(speed_box)
        form.addRow("Translation", self._with_value(self.linear_slider, self.linear_value))
        form.addRow("Rotation", self._with_value(self.angular_slider, self.angular_value))
        form.addRow(self.rotation_check)
        form.addRow(self.speed_note)
        self.speed_box = speed_box

        layout = QVBoxLayout(page)
        layout.addWidget(command_box)
        layout.addWidget(speed_box)
        layout.addStretch(1)
        return page

    def _build_bindings_page(self) -> QWidget:
        page = QWidget()
        self.diagrams = QStackedWidget()
        self.gamepad_diagram = GamepadDiagram()
        self.keyboard_diagram = KeyboardDiagram()
        self.spacemouse_diagram = SpaceMouseDiagram()
        self.no_diagram = QLabel("No diagram for this device: see the table.")
        self.no_diagram.setAlignment(Qt.AlignmentFlag.AlignCenter)
        for w in (self.gamepad_diagram, self.keyboard_diagram, self.spacemouse_diagram,
                  self.no_diagram):
            self.diagrams.addWidget(w)
        self.legend_table = QTableWidget(0, 2)
        self.legend_table.setHorizontalHeaderLabels(["Action", "Control"])
        self.legend_table.verticalHeader().setVisible(False)
        self.legend_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.legend_table.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.ResizeToContents)
        self.legend_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.legend_table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.legend_table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        # Compact rows: a gamepad's fifteen bindings fit under its diagram without scrolling.
        self.legend_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 5)
        layout = QVBoxLayout(page)
        layout.addWidget(self.diagrams)
        layout.addWidget(self.legend_table, 1)
        return page

    def _build_test_page(self) -> QWidget:
        page = QWidget()
        self.raw_axes = BarsView()
        self.raw_buttons = LampsView()
        self.read_rate = QLabel()
        self.details = QFormLayout()
        details_box = QGroupBox("Device")
        details_box.setLayout(self.details)
        self.details_box = details_box
        axes_box = QGroupBox("Raw axes")
        QVBoxLayout(axes_box).addWidget(self.raw_axes)
        buttons_box = QGroupBox("Raw buttons (lit = held)")
        QVBoxLayout(buttons_box).addWidget(self.raw_buttons)
        layout = QVBoxLayout(page)
        layout.addWidget(self.read_rate)
        layout.addWidget(axes_box)
        layout.addWidget(buttons_box)
        layout.addWidget(details_box)
        layout.addStretch(1)
        return page

    @staticmethod
    def _slider() -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal)
        s.setRange(5, 200)
        s.setSingleStep(5)
        s.setPageStep(25)
        s.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # arrow keys may be teleop keys
        return s

    @staticmethod
    def _with_value(slider: QSlider, value: QLabel) -> QWidget:
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(slider, 1)
        value.setMinimumWidth(110)
        h.addWidget(value)
        return w

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.keyboard_bridge.watch_window()  # now docked in its window

    # ----- device choice --------------------------------------------------------------------------
    @property
    def device(self) -> Teleop | None:
        return self.station.teleops.get(self._device_name)

    def _on_pick(self) -> None:
        name = self.device_combo.currentData()
        if not name or name == self.station.active_teleop:
            self._select(name or "")
            return
        try:
            self.station.use_teleop(name)
        except DeviceError as exc:
            self.message.setText(str(exc))
        self._select(name)

    def _select(self, name: str) -> None:
        """Show device ``name`` (the combo, the sliders, the legend)."""
        self._device_name = name
        idx = self.device_combo.findData(name)
        if idx >= 0 and idx != self.device_combo.currentIndex():
            self.device_combo.blockSignals(True)
            self.device_combo.setCurrentIndex(idx)
            self.device_combo.blockSignals(False)
        device = self.device
        mapped = isinstance(device, MappedTeleop)
        self.speed_box.setEnabled(mapped)
        if mapped:
            self._load_tuning(device)
        self._shown_rows = None
        self._show_legend()

    def _load_tuning(self, device: MappedTeleop) -> None:
        t = device.tuning
        for slider, value in ((self.linear_slider, t.linear), (self.angular_slider, t.angular)):
            slider.blockSignals(True)
            slider.setValue(int(round(value * 100)))
            slider.blockSignals(False)
        self.rotation_check.blockSignals(True)
        self.rotation_check.setChecked(t.rotation)
        self.rotation_check.blockSignals(False)
        self._show_speeds(device)

    def _on_speed(self) -> None:
        device = self.device
        if isinstance(device, MappedTeleop):
            device.set_tuning(linear=self.linear_slider.value() / 100.0,
                              angular=self.angular_slider.value() / 100.0)
            self._show_speeds(device)

    def _on_rotation(self, on: bool) -> None:
        device = self.device
        if isinstance(device, MappedTeleop):
            device.set_tuning(rotation=on)

    def _show_speeds(self, device: MappedTeleop) -> None:
        cfg, t = device.config, device.tuning
        self.linear_value.setText(f"{cfg.linear_speed * t.linear:.3f} m/s ({t.linear:.0%})")
        self.angular_value.setText(
            f"{math.degrees(cfg.angular_speed * t.angular):.0f} °/s ({t.angular:.0%})")
        precision = device.mapping.bindings.functions.get("precision")
        note = (f"Full deflection. Hold {device.control_label(precision)} for "
                f"{cfg.precision_scale:.0%} (precision)." if precision else "Full deflection.")
        limits = self.station.profile.safety
        note += (f" The station caps motion at {limits.max_linear_velocity:g} m/s and "
                 f"{math.degrees(limits.max_angular_velocity):.0f} °/s.")
        self.speed_note.setText(note)

    # ----- live views -----------------------------------------------------------------------------
    def show_step(self, step: Step) -> None:
        self._last_step = step

    def refresh(self) -> None:
        """Once per display frame: status, driving state and the visible page."""
        active = self.station.active_teleop
        if active and active != self._device_name and self.device_combo.findData(active) >= 0:
            self._select(active)
        device = self.device
        if device is None:
            self._show_status(TeleopStatus(False, "no teleop device in this station",
                                           "Add a [[teleops]] table to the station profile."))
            return
        status = device.status() if isinstance(device, MappedTeleop) else \
            TeleopStatus(device.get_state().connected, f"{device.name}")
        self._show_status(status)
        self._show_drive_state(device)
        state = device.get_state()
        page = self.tabs.currentIndex()
        if page == 0:
            self._show_command()
            if isinstance(device, MappedTeleop) and \
                    self.rotation_check.isChecked() != device.tuning.rotation:
                self._load_tuning(device)  # a button toggled rotation
        elif page == 1:
            self._show_legend()
            diagram = self.diagrams.currentWidget()
            if hasattr(diagram, "show_state"):
                diagram.show_state(state)
        else:
            self._show_raw(device, state, status)

    def _show_status(self, status: TeleopStatus) -> None:
        level = "ok" if status.connected and not status.message else \
            ("warn" if status.connected else "off")
        self.lamp.setText(f"<span style='color:{_LAMP[level]}; font-size:14pt'>●</span>")
        self.summary.setText(status.summary)
        self.message.setText(status.message)
        self.message.setVisible(bool(status.message))

    def _show_drive_state(self, device: Teleop) -> None:
        snap = self.station.session.snapshot
        step = self._last_step
        if snap.state == RunState.ESTOPPED:
            text, color = "E-stop latched: reset it (two steps) before driving again.", "#ff5c5c"
        elif snap.state == RunState.PAUSED:
            text, color = "Paused: start a run (F5) to drive.", "#9aa3ad"
        elif self.station.active_teleop != device.name:
            text, color = f"'{self.station.active_teleop}' is driving, not this device.", "#9aa3ad"
        elif step is None:
            text, color = "Starting...", "#9aa3ad"
        elif step.source == SourceKind.TELEOP:
            text, color = "Driving.", "#2fb36b"
        elif step.source == SourceKind.INTERVENTION:
            text, color = "Taking over from the policy.", "#4c8dff"
        elif step.source == SourceKind.POLICY:
            hint = ""
            if isinstance(device, MappedTeleop):
                button = device.mapping.bindings.functions.get(INTERVENTION)
                hint = f" Hold {device.control_label(button)} to take over." if button else ""
            text, color = "The policy is driving." + hint, "#9aa3ad"
        else:
            text, color = f"Holding: {step.hold_reason}.", "#d9a520"
        self.drive_state.setText(f"<span style='color:{color}; font-weight:600'>{text}</span>")

    def _show_command(self) -> None:
        step = self._last_step
        period = 1.0 / self.station.profile.control_rate_hz
        v = [0.0] * 6
        gripper = None
        if step is not None and step.action is not None and len(step.action) >= 7:
            gripper = float(step.action[-1])
            if step.source in (SourceKind.TELEOP, SourceKind.INTERVENTION, SourceKind.POLICY):
                v = [float(a) / period for a in step.action[:6]]
        limits = self.station.profile.safety
        items = []
        for i, (name, unit) in enumerate(_COMMAND_NAMES):
            if i < 3:
                full = max(limits.max_linear_velocity, 1e-6)
                items.append((name, v[i] / full, f"{v[i]:+.3f} {unit}"))
            else:
                full = max(limits.max_angular_velocity, 1e-6)
                items.append((name, v[i] / full, f"{math.degrees(v[i]):+.0f} {unit}"))
        self.command_bars.set_items(items)
        if gripper is None:
            self.gripper_label.setText("Gripper: -")
        else:
            word = "open" if gripper >= 0.5 else "closed"
            self.gripper_label.setText(f"Gripper: <b>{word}</b> ({gripper:.2f})")

    def _show_legend(self) -> None:
        device = self.device
        if not isinstance(device, MappedTeleop):
            self.diagrams.setCurrentWidget(self.no_diagram)
            self.legend_table.setRowCount(0)
            return
        rows = device.legend()
        key = (device.name, tuple(rows))
        if key == self._shown_rows:
            return
        self._shown_rows = key
        if isinstance(device, GamepadTeleop) and not device.layout.is_generic:
            diagram = self.gamepad_diagram
        elif isinstance(device, KeyboardTeleop):
            diagram = self.keyboard_diagram
        elif isinstance(device, SpaceMouseTeleop):
            diagram = self.spacemouse_diagram
        else:
            diagram = None
        if diagram is None:
            self.diagrams.setCurrentWidget(self.no_diagram)
        else:
            diagram.show_device(device)
            self.diagrams.setCurrentWidget(diagram)
        self.diagrams.setFixedHeight((diagram or self.no_diagram).sizeHint().height())
        table = [(r.action, r.control) for r in rows]
        if isinstance(device, KeyboardTeleop):
            table += [("STOP (always)", "Esc"), ("STOP (while a run is active)", "Space")]
        self.legend_table.setRowCount(len(table))
        for i, (action, control) in enumerate(table):
            self.legend_table.setItem(i, 0, QTableWidgetItem(action))
            item = QTableWidgetItem(control)
            if action.startswith("STOP"):
                item.setForeground(QColor("#ff5c5c"))
            self.legend_table.setItem(i, 1, item)

    def _show_raw(self, device: Teleop, state: TeleopState, status: TeleopStatus) -> None:
        label = device.control_label if isinstance(device, MappedTeleop) else str
        axes = sorted(state.axes.items()) if not isinstance(device, MappedTeleop) else \
            [(n, state.axes[n]) for n in sorted(state.axes, key=_axis_order)]
        self.raw_axes.set_items([(n, float(v), f"{float(v):+.3f}") for n, v in axes])
        self.raw_buttons.set_items([(_short(label(n)), bool(v)) for n, v in state.buttons.items()])
        age_ms = (time.monotonic() - state.stamp) * 1000.0 if state.stamp else float("inf")
        age = f"{age_ms:.0f} ms ago" if math.isfinite(age_ms) else "never"
        parts = ["connected" if state.connected else "not connected"]
        if isinstance(device, MappedTeleop):
            parts.append(f"{status.reads_per_s:.0f} readings/s" if status.reads_per_s
                         else "no readings")
        parts.append(f"last reading {age}")
        self.read_rate.setText(" · ".join(parts))
        details = dict(status.details)
        self.details_box.setVisible(bool(details))
        if self.details.rowCount() != len(details) or \
                [self.details.itemAt(i, QFormLayout.ItemRole.LabelRole).widget().text()
                 for i in range(self.details.rowCount())] != list(details):
            while self.details.rowCount():
                self.details.removeRow(0)
            for k in details:
                value = QLabel()
                value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                self.details.addRow(k, value)
        for i, v in enumerate(details.values()):
            self.details.itemAt(i, QFormLayout.ItemRole.FieldRole).widget().setText(v)


def _axis_order(name: str) -> tuple[int, str]:
    order = ("left_x", "left_y", "right_x", "right_y", "trigger_left", "trigger_right",
             "x", "y", "z", "rx", "ry", "rz")
    return (order.index(name), name) if name in order else (len(order), name)


def _short(text: str) -> str:
    return text if len(text) <= 14 else text[:13] + "…"
