"""DAgger rounds of the dataset: per round, how much the operator corrected and how often the
runs succeeded (the Policy dock's "Rounds" tab).

A view of :func:`vla_studio.data.dagger.round_stats` over the dataset's episodes (the Episodes
list hands its rows over whenever it re-reads the index). The intervention rate is the share
of the steps the operator drove during the round's policy runs; the success rate the share of
the round's episodes marked successful (with help). When the dataset is the ``corrections``
folder of a ``vla-studio dagger`` session, the session's unassisted success per round (its
``dagger.json``) is drawn as well: the policy of each round evaluated alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from vla_studio.data.dagger import RoundStats, round_stats
from vla_studio.data.dataset_index import EpisodeSummary

SESSION_SUMMARY = "dagger.json"
COLOURS = {"intervention": "#ff9f43", "success": "#2fb36b", "alone": "#4c8dff"}


class RoundsView(QWidget):
    """Per-round intervention rate and success rate (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stats: list[RoundStats] = []
        self.alone: list[tuple[int, float]] = []  # (round, success without help)
        self.view = pg.PlotWidget()
        self.view.setBackground("#15171a")
        self.view.setMinimumHeight(76)  # with its caption, no taller than the Plot tab
        plot = self.plot = self.view.getPlotItem()
        font = QFont()
        font.setPointSizeF(7.5)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.setYRange(0.0, 100.0, padding=0.04)
        for side in ("left", "bottom"):
            plot.getAxis(side).setStyle(tickFont=font, tickLength=-4)
            plot.getAxis(side).setTextPen("#9aa3ad")
        plot.getAxis("left").setLabel("%")
        plot.getAxis("bottom").setLabel("round")
        plot.addLegend(offset=(-4, 2), labelTextSize="7.5pt")
        self.curves = {
            "intervention": plot.plot(pen=pg.mkPen(COLOURS["intervention"], width=2),
                                      symbol="o", symbolBrush=COLOURS["intervention"],
                                      name="steps corrected"),
            "success": plot.plot(pen=pg.mkPen(COLOURS["success"], width=2), symbol="s",
                                 symbolBrush=COLOURS["success"], name="success (with help)"),
            "alone": plot.plot(pen=pg.mkPen(COLOURS["alone"], width=2, style=pg.QtCore.Qt
                                            .PenStyle.DashLine), symbol="t",
                               symbolBrush=COLOURS["alone"], name="success alone"),
        }
        self.caption = QLabel()
        self.caption.setObjectName("mutedText")
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.caption)
        self.show_rows([], None)

    def show_rows(self, rows: list[EpisodeSummary], dataset_root: Path | None) -> None:
        """The dataset's episodes changed (GUI thread): recompute and redraw."""
        self.stats = [s for s in round_stats(
            (r.dagger_round, r.success, {"intervention": r.intervention_steps,
                                         "policy": r.policy_steps}, r.interventions)
            for r in rows if not r.trashed) if s.round > 0]
        self.alone = _session_success(dataset_root) if dataset_root is not None else []
        self._draw()

    def _draw(self) -> None:
        xs = [s.round for s in self.stats]
        self.curves["intervention"].setData(xs, [_pct(s.intervention_rate) for s in self.stats],
                                            connect="finite")
        self.curves["success"].setData(xs, [_pct(s.success_rate) for s in self.stats],
                                       connect="finite")
        self.curves["alone"].setData([r for r, _ in self.alone],
                                     [100.0 * v for _, v in self.alone])
        shown = sorted(set(xs) | {r for r, _ in self.alone}) or [1]
        self.plot.getAxis("bottom").setTicks([[(r, str(r)) for r in shown]])
        self.plot.setXRange(shown[0] - 0.5, shown[-1] + 0.5, padding=0)
        if not self.stats:
            self.caption.setText("No DAgger rounds in this dataset yet: record policy runs "
                                 "with a round number (Run → Round) and take over when they "
                                 "go wrong.")
            return
        lines = [f"round {s.round}: {s.episodes} episodes, {s.takeovers} takeovers, "
                 f"{_text(s.intervention_rate)} of steps corrected, "
                 f"{_text(s.success_rate)} success" for s in self.stats]
        if self.alone:
            lines.append("alone (vla-studio dagger): " + ", ".join(
                f"round {r} {100 * v:.0f}%" for r, v in self.alone))
        self.caption.setText("\n".join(lines))


def _session_success(dataset_root: Path) -> list[tuple[int, float]]:
    """``(round, unassisted success)`` from the ``vla-studio dagger`` session the dataset
    belongs to (its ``dagger.json`` beside the ``corrections`` folder), if any.

    The session's round r is the policy trained on r rounds of corrections; its episodes are
    in dataset round r + 1, so the policy shown at round r + 1 ran alone as round r's."""
    path = Path(dataset_root).parent / SESSION_SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    for row in data.get("rounds", []):
        rate = row.get("success_rate")
        if isinstance(rate, (int, float)) and math.isfinite(rate):
            out.append((int(row.get("round", 0)) + 1, float(rate)))
    return out


def _pct(value: float) -> float:
    return 100.0 * value if math.isfinite(value) else math.nan


def _text(value: float) -> str:
    return f"{100 * value:.0f}%" if math.isfinite(value) else "n/a"
