"""The robot's own state as numbers: what a station without cameras shows in place of them.

A view of the loop's latest step (the bridge's ``step`` signal, at display rate): each state key
the robot reports, in the order of its ``observation_features``, with names and units, and the
robot's fault line when it has one. A key missing from the step (stale ROS 2 state, a driver
that did not answer) reads "no data" instead of its last value.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from vla_studio.core.types import Feature, Step

MAX_SHOWN = 8  # values per row; longer vectors end in "…"


def format_values(values: np.ndarray, feature: Feature | None) -> str:
    """``values`` as one line: ``x 0.552  y -0.001  z 0.521  m`` (names when there are few)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    names = tuple(feature.names) if feature is not None and feature.names else ()
    unit = f"  {feature.unit}" if feature is not None and feature.unit else ""
    shown = v[:MAX_SHOWN]
    if names and len(names) == v.size and v.size <= 7 and all(len(n) <= 8 for n in names):
        text = "  ".join(f"{n} {x:+.3f}" for n, x in zip(names, shown))
    else:
        text = " ".join(f"{x:+.3f}" for x in shown)
    return text + (" …" if v.size > MAX_SHOWN else "") + unit


class RobotStateView(QWidget):
    """The robot's latest state and fault, one row per state key.

    Args:
        robot_name: shown in the box's title.
        features: the robot's ``observation_features`` (rows, names and units).
    """

    def __init__(self, robot_name: str, features: Mapping[str, Feature],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.features = dict(features)
        box = QGroupBox(f"Robot {robot_name!r}")
        form = QFormLayout(box)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.rows: dict[str, QLabel] = {}
        for key in self.features:
            label = QLabel("no data")
            label.setFont(mono)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.rows[key] = label
            form.addRow(key, label)
        self.fault = QLabel()
        self.fault.setObjectName("errorText")
        self.fault.setWordWrap(True)
        self.fault.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)
        layout.addWidget(self.fault)

    def show_step(self, step: Step, fault: str = "") -> None:
        """Show ``step``'s state (and ``fault``, the robot's fault line, when not empty)."""
        state = step.observation.state
        for key, label in self.rows.items():
            value = state.get(key)
            text = "no data" if value is None else format_values(value, self.features.get(key))
            if label.text() != text:
                label.setText(text)
        if self.fault.text() != fault:
            self.fault.setText(fault)
        self.fault.setVisible(bool(fault))
