"""A live plot of a policy run: confidence (with the threshold) over the last seconds, and the
actions the policy sent (translation in mm per step, gripper).

Fed with the loop's newest step at display rate (:meth:`PolicyPlot.add_step`, GUI thread) and
redrawn at most :data:`REDRAW_HZ` times a second; steps where the policy did not drive (holds,
teleop) leave gaps rather than zeros, so a pause reads as a pause.
"""

from __future__ import annotations

import collections
import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QVBoxLayout, QWidget

from vla_studio.core.types import SourceKind, Step

WINDOW_S = 12.0
REDRAW_HZ = 10.0
_AXES = (("dx mm", "#ff6b6b"), ("dy mm", "#4cd07d"), ("dz mm", "#4c8dff"))


class PolicyPlot(QWidget):
    """Confidence and actions of the running policy (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.samples: collections.deque[tuple[float, float, np.ndarray | None]] = \
            collections.deque(maxlen=2000)
        self._last_index = -1
        self._drawn = 0.0
        self._t0 = time.monotonic()
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("#15171a")
        self.view.setMinimumHeight(100)  # the right column must fit 900 px (test_window_layout)
        self.confidence = self.view.addPlot(row=0, col=0)
        self.actions = self.view.addPlot(row=1, col=0)
        self.actions.setXLink(self.confidence)
        font = QFont()
        font.setPointSizeF(7.5)
        for plot in (self.confidence, self.actions):
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            for side in ("left", "bottom"):
                plot.getAxis(side).setStyle(tickFont=font, tickLength=-4)
                plot.getAxis(side).setTextPen("#9aa3ad")
            plot.getAxis("left").setWidth(30)
        self.confidence.setYRange(0.0, 1.0, padding=0.02)
        self.confidence.getAxis("left").setTicks([[(0.0, "0"), (0.5, ".5"), (1.0, "1")]])
        self.confidence.getAxis("bottom").setStyle(showValues=False)
        self.confidence.addLegend(offset=(-4, 2), labelTextSize="7.5pt")
        self.confidence_curve = self.confidence.plot(pen=pg.mkPen("#ffd479", width=2),
                                                     name="confidence", connect="finite")
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#d92d20", width=1,
                                                                      style=pg.QtCore.Qt.DashLine))
        self.confidence.addItem(self.threshold_line)
        self.threshold_line.setVisible(False)
        self.actions.addLegend(offset=(-4, 2), labelTextSize="7.5pt", colCount=4)
        self.action_curves = [self.actions.plot(pen=pg.mkPen(colour, width=1.5), name=name,
                                                connect="finite") for name, colour in _AXES]
        self.gripper_curve = self.actions.plot(pen=pg.mkPen("#c9a0ff", width=1.5,
                                                            style=pg.QtCore.Qt.DotLine),
                                               name="grip x10", connect="finite")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    def set_threshold(self, threshold: float) -> None:
        """The confidence below which the run asks for help (0: none)."""
        self.threshold_line.setValue(threshold)
        self.threshold_line.setVisible(threshold > 0.0)

    def clear(self) -> None:
        self.samples.clear()
        self._last_index = -1
        self.redraw(force=True)

    def add_step(self, step: Step) -> None:
        """Take the loop's newest step (each step once)."""
        if step.index == self._last_index:
            return
        self._last_index = step.index
        policy = step.source == SourceKind.POLICY
        conf = step.extras.get("confidence") if policy else None
        value = float(np.asarray(conf).reshape(-1)[0]) if conf is not None else math.nan
        action = np.asarray(step.action, dtype=np.float64) if policy else None
        self.samples.append((step.t, value, action))

    def redraw(self, now: float | None = None, force: bool = False) -> bool:
        """Redraw when due (at most REDRAW_HZ); returns whether it drew."""
        now = time.monotonic() if now is None else now
        if not force and now - self._drawn < 1.0 / REDRAW_HZ:
            return False
        self._drawn = now
        recent = [s for s in self.samples if now - s[0] <= WINDOW_S]
        if not recent:
            self.confidence_curve.setData([], [])
            for curve in (*self.action_curves, self.gripper_curve):
                curve.setData([], [])
            return True
        t = np.array([s[0] for s in recent]) - now
        conf = np.array([s[1] for s in recent])
        acts = np.array([s[2][:3] * 1000.0 if s[2] is not None and s[2].size >= 3
                         else (np.nan,) * 3 for s in recent])
        grip = np.array([s[2][-1] * 10.0 if s[2] is not None else np.nan for s in recent])
        self.confidence_curve.setData(t, conf)
        for i, curve in enumerate(self.action_curves):
            curve.setData(t, acts[:, i])
        self.gripper_curve.setData(t, grip)
        self.confidence.setXRange(-WINDOW_S, 0.0, padding=0.0)
        return True
