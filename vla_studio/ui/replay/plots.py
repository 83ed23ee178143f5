"""The replay's plots (pyqtgraph): actions, state, who drove, confidence, simulator divergence.

Every curve is named with its unit (``dx [m]``); the requested action is drawn dashed beside
the filtered one (what the robot got), so a clamp shows as the two parting. The white line is
the playhead; a left click or drag on any plot seeks (the wheel and right-drag zoom, as
pyqtgraph does); the legend toggles a dimension, the "Curves" menu every one. The gripper has a
plot of its own (commanded, requested and measured opening): on the action's scale it would
flatten the per-step deltas. All plots share
the time axis (seconds from the first step). Curves are clipped to the view and downsampled to
the plot's width, so a five-minute episode redraws as fast as a five-second one.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QHBoxLayout, QMenu, QToolButton, QVBoxLayout, QWidget

from vla_studio.data.episode_file import SOURCE_LABELS
from vla_studio.data.replay_episode import ReplayEpisode, Series
from vla_studio.ui.replay.style import BACKGROUND, MUTED, PLAYHEAD, SERIES_COLOURS, TRIMMED
from vla_studio.ui.widgets.elided_label import ElidedLabel

# Samples kept per horizontal pixel (pyqtgraph keeps 5; "peak" keeps each bin's extremes, so
# a spike still shows): one redraw of a five-minute episode's curves costs a fifth.
DOWNSAMPLE_PER_PIXEL = 1.0
MIN_PLOTS_PX = 175  # below this the two rows of plots cannot be read
# State shown at first (others are a click away in the Curves menu).
DEFAULT_STATE = ("state/ee_pos", "state/gripper")


class SeekViewBox(pg.ViewBox):
    """A ViewBox whose left click and left drag seek (x in seconds) instead of panning."""

    def __init__(self, on_seek: Callable[[float], None]) -> None:
        super().__init__()
        self._on_seek = on_seek
        self.setMouseEnabled(x=True, y=False)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph override
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._on_seek(self.mapSceneToView(ev.scenePos()).x())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 - pyqtgraph override
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._on_seek(self.mapSceneToView(ev.scenePos()).x())
        else:
            super().mouseDragEvent(ev, axis)


def _unit_text(units: tuple[str, ...]) -> str:
    found = sorted({u for u in units if u})
    return f" [{', '.join(found)}]" if found else ""


class ReplayPlots(QWidget):
    """Plots of one episode, in step with the playhead.

    Signals:
        seek_requested(float): seconds from the first step the researcher clicked at.
    """

    seek_requested = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background=BACKGROUND, foreground=MUTED)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("replayPlots")
        self.graphics.setMinimumHeight(MIN_PLOTS_PX)
        self.graphics.ci.setContentsMargins(2, 2, 2, 2)
        # (series key, column, plot) -> curve: the gripper column goes to its own plot
        self.curves: dict[tuple, pg.PlotDataItem] = {}
        self.plots: dict[str, pg.PlotItem] = {}
        self._strips: dict[str, _PlayheadStrip] = {}  # plot key -> the playhead over it
        self.playhead_time = 0.0
        self._trims: list[tuple[pg.PlotItem, pg.LinearRegionItem]] = []
        self._times = np.zeros(0)
        self.curves_button = QToolButton()
        self.curves_button.setText("Curves")
        self.curves_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.curves_menu = QMenu(self)
        self.curves_button.setMenu(self.curves_menu)
        self.caption = ElidedLabel("time [s] · solid: action sent (after the safety filter) · "
                                   "dashed: action requested · click or drag a plot to seek")
        self.caption.setMinimumWidth(0)
        self.caption.setObjectName("mutedText")
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 0, 4, 0)
        bar.addWidget(self.caption, 1)
        bar.addWidget(self.curves_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.graphics, 1)
        self._wanted: set[tuple] = set()
        self._syncing = False
        self._skeleton()

    # ----- building --------------------------------------------------------------------------
    def _skeleton(self) -> None:
        """The four plots every episode has (made once: opening an episode only sets data)."""
        top = self.graphics.ci.addLayout(row=0, col=0)
        # The short plots share one row (of their own: columns of other widths than above).
        self._strip_row = self.graphics.ci.addLayout(row=1, col=0)
        for sub in (top, self._strip_row):
            sub.setContentsMargins(0, 0, 0, 0)
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.graphics.ci.layout.setRowStretchFactor(1, 1)
        self._plot("action", top, 0, "action")
        self._plot("state", top, 1, "state")
        gripper = self._plot("gripper", self._strip_row, 0, "gripper", height=86)
        source = self._plot("source", self._strip_row, 1, "who drove", height=86,
                            legend=False)
        gripper.setYRange(-0.05, 1.05, padding=0)
        gripper.getAxis("left").setTicks([[(0, "closed"), (1, "open")]])
        source.getAxis("left").setTicks([[(i, n) for i, n in enumerate(SOURCE_LABELS)]])
        source.setYRange(-0.3, len(SOURCE_LABELS) - 0.7, padding=0)

    def set_episode(self, episode: ReplayEpisode) -> None:
        """Plot ``episode`` (curves of the same kind as the last episode's are reused)."""
        self._times = episode.times
        self._wanted: set[tuple] = set()
        for key in ("confidence", "divergence"):
            self._drop_plot(key)
        series = {s.key: s for s in episode.series}
        action, state, gripper = (self.plots[k] for k in ("action", "state", "gripper"))
        sent = series.get("action")
        if sent is not None:
            moving = [k for k, n in enumerate(sent.names) if n != "gripper"]
            grip = [k for k, n in enumerate(sent.names) if n == "gripper"]
            self._add(action, sent, moving)
            self._add(gripper, sent, grip, name="command")
            if "requested_action" in series:
                self._add(action, series["requested_action"], moving, dashed=True, legend=False)
                self._add(gripper, series["requested_action"], grip, dashed=True, legend=False)
            action.setLabel("left", "action" + _unit_text(tuple(sent.units[k] for k in moving)))
        shown_units: list[str] = []
        for s in (s for s in episode.series if s.group == "state"):
            if s.key == "state/gripper":
                self._add(gripper, s, range(s.values.shape[1]), name="measured",
                          colour_offset=2)
                continue
            visible = s.key in DEFAULT_STATE
            self._add(state, s, range(s.values.shape[1]), visible=visible,
                      prefix=s.key.removeprefix("state/") + ".")
            shown_units += list(s.units) if visible else []
        state.setLabel("left", "state" + _unit_text(tuple(shown_units)))
        if "action_source" in series:
            self._add(self.plots["source"], series["action_source"], [0], step_mode=True,
                      legend=False)
        if "confidence" in series:
            conf = self._plot("confidence", self._strip_row, 2, "confidence", height=86,
                              legend=False)
            self._add(conf, series["confidence"], [0], legend=False)
            conf.setYRange(0, 1, padding=0.05)
        for ref in [r for r in self.curves if r not in self._wanted]:
            self.plots[ref[2]].removeItem(self.curves.pop(ref))
        for plot in self.plots.values():
            self._sync_legend(plot)
            plot.setXRange(0, max(episode.duration_s, 1e-3), padding=0.01)
            plot.enableAutoRange(axis="y", enable=plot not in (gripper, self.plots["source"]))
        self.curves_menu.clear()
        self._build_menu(episode)
        self.set_playhead(0.0)

    def _drop_plot(self, key: str) -> None:
        plot = self.plots.pop(key, None)
        if plot is None:
            return
        for ref in [r for r in self.curves if r[2] == key]:
            del self.curves[ref]
        self._trims = [(p, r) for p, r in self._trims if p is not plot]
        self._strip_row.removeItem(plot)
        self._strips.pop(key).deleteLater()

    def _plot(self, key: str, where, col: int, title: str, height: int | None = None,
              legend: bool = True) -> pg.PlotItem:
        box = SeekViewBox(self.seek_requested.emit)
        plot = where.addPlot(row=0, col=col, viewBox=box)
        # One time range for all: pyqtgraph's own x-link lines plots up by screen position,
        # which shows plots side by side different ranges.
        box.sigXRangeChanged.connect(self._sync_ranges)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.getAxis("left").setWidth(62)
        plot.getAxis("left").enableAutoSIPrefix(False)  # "(x0.001)" hides the unit's meaning
        if height is not None:
            plot.setMaximumHeight(height)
            plot.setPreferredHeight(height)
        plot.setLabel("left", title)
        if legend:
            plot.addLegend(offset=(4, 1), labelTextSize="7.5pt", colCount=8,
                           brush=pg.mkBrush(21, 23, 26, 190), verSpacing=-6)
        self._strips[key] = _PlayheadStrip(self.graphics.viewport())
        plot.vb.sigRangeChanged.connect(self._place_playheads)
        plot.vb.sigResized.connect(self._place_playheads)
        self.plots[key] = plot
        return plot

    def _add(self, plot: pg.PlotItem, series: Series, columns, dashed: bool = False,
             visible: bool = True, step_mode: bool = False, legend: bool = True,
             name: str = "", prefix: str = "", colour_offset: int = 0) -> None:
        t = self._times
        where = next(key for key, item in self.plots.items() if item is plot)
        for n, k in enumerate(columns):
            colour = SERIES_COLOURS[(n + colour_offset) % len(SERIES_COLOURS)]
            style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
            unit = f" [{series.units[k]}]" if series.units[k] else ""
            label = (name or prefix + series.names[k]) + unit
            y = series.values[:, k]
            ref = (series.key, k, where)
            curve = self.curves.get(ref)
            if step_mode:  # only where the value changes: a handful of points, not T
                end = t[-1] + (t[-1] - t[-2] if len(t) > 1 else 1.0)
                edges = np.flatnonzero(np.diff(y)) + 1
                x = np.concatenate((t[np.concatenate(([0], edges))], [end]))
                y = y[np.concatenate(([0], edges))]
                if curve is None:
                    curve = pg.PlotDataItem(stepMode="center", pen=pg.mkPen(MUTED, width=1),
                                            fillLevel=-0.3, brush=pg.mkBrush(76, 141, 255, 70))
                    plot.addItem(curve)
                curve.setData(x, y)
            elif curve is None:
                curve = _fast_curve(plot, t, y, pg.mkPen(colour, width=1, style=style), None)
            else:
                curve.setData(t, y, connect="finite")
            if dashed:
                curve.setOpacity(0.8)
            curve.setVisible(visible)
            curve.setProperty("label", label)
            curve.setProperty("legend", legend)
            self.curves[ref] = curve
            self._wanted.add(ref)

    def _sync_legend(self, plot: pg.PlotItem) -> None:
        """The legend lists the plot's visible named curves (clicking one hides it); it is
        rebuilt only when that list changed (rebuilding costs ~1 ms an entry)."""
        if plot.legend is None:
            return
        wanted = [item for item in plot.vb.addedItems
                  if isinstance(item, pg.PlotDataItem) and item.property("legend")
                  and item.isVisible()]
        shown = [(sample.item, label.text) for sample, label in plot.legend.items]
        if shown == [(item, item.property("label")) for item in wanted]:
            return
        plot.legend.clear()
        for item in wanted:
            plot.legend.addItem(item, item.property("label"))
        for sample, _ in plot.legend.items:
            sample.sigClicked.connect(self._legend_clicked)

    def _twin(self, curve: pg.PlotDataItem) -> pg.PlotDataItem | None:
        """The dashed requested curve drawn with the filtered action ``curve``."""
        for (key, k, where), c in self.curves.items():
            if c is curve and key == "action":
                return self.curves.get(("requested_action", k, where))
        return None

    def _legend_clicked(self, item: pg.PlotDataItem) -> None:
        twin = self._twin(item)
        if twin is not None:
            twin.setVisible(item.isVisible() and self._requested_shown())
        self._sync_menu()

    def _requested_shown(self) -> bool:
        return any(a.isChecked() for a in self.curves_menu.actions()
                   if a.data() == "requested_action")

    def _build_menu(self, episode: ReplayEpisode) -> None:
        if any(key == "requested_action" for key, _, _ in self.curves):
            a = self.curves_menu.addAction("requested action (dashed)")
            a.setCheckable(True)
            a.setChecked(True)
            a.setData("requested_action")
            a.toggled.connect(self._show_requested)
            self.curves_menu.addSeparator()
        menus: dict[str, QMenu] = {}
        for (key, k, where), curve in self.curves.items():
            if key in ("requested_action", "action_source", "confidence", "divergence"):
                continue
            title = key.replace("state/", "state ")
            if title not in menus:
                menus[title] = self.curves_menu.addMenu(title)
            act: QAction = menus[title].addAction(curve.property("label"))
            act.setCheckable(True)
            act.setChecked(curve.isVisible())
            act.setData((key, k, where))
            act.toggled.connect(lambda on, ref=(key, k, where): self.show_curve(ref, on))

    def _sync_menu(self) -> None:
        for menu in self.curves_menu.findChildren(QMenu):
            for act in menu.actions():
                ref = act.data()
                if isinstance(ref, tuple) and ref in self.curves:
                    act.blockSignals(True)
                    act.setChecked(self.curves[ref].isVisible())
                    act.blockSignals(False)

    def show_curve(self, ref: tuple, visible: bool) -> None:
        """Show or hide one curve (an action dimension with its requested twin)."""
        curve = self.curves[ref]
        curve.setVisible(visible)
        twin = self._twin(curve)
        if twin is not None:
            twin.setVisible(visible and self._requested_shown())
        for plot in self.plots.values():
            if curve in plot.vb.addedItems:
                self._sync_legend(plot)

    def _show_requested(self, on: bool) -> None:
        for (key, k, where), curve in self.curves.items():
            if key == "requested_action":
                sent = self.curves.get(("action", k, where))
                curve.setVisible(on and (sent is None or sent.isVisible()))

    def visible_labels(self, plot: str) -> list[str]:
        """Labels of the visible curves of ``plot`` (tests and screenshots check them)."""
        return [i.property("label") for i in self.plots[plot].vb.addedItems
                if isinstance(i, pg.PlotDataItem) and i.isVisible()]

    # ----- state -----------------------------------------------------------------------------
    def _sync_ranges(self, box: pg.ViewBox, span: tuple[float, float]) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            for plot in self.plots.values():
                if plot.vb is not box:
                    plot.vb.setXRange(*span, padding=0)
        finally:
            self._syncing = False

    def set_playhead(self, t: float) -> None:
        """Move the playhead to ``t`` seconds on every plot."""
        self.playhead_time = t
        self._place_playheads()

    def _place_playheads(self, *_: object) -> None:
        # The playhead is a thin widget over the plots, not a plot item: moving it repaints two
        # strips of the plots, where a plot item would redraw every curve and axis (~30 ms for
        # a long episode, every displayed step).
        for key, strip in self._strips.items():
            vb = self.plots[key].vb
            area = self.graphics.mapFromScene(vb.sceneBoundingRect()).boundingRect()
            x = self.graphics.mapFromScene(vb.mapViewToScene(QPointF(self.playhead_time, 0))).x()
            if area.left() <= x <= area.right():
                strip.setGeometry(x - 1, area.top(), 3, area.height())
                strip.show()
            else:
                strip.hide()

    def set_trim(self, span: tuple[float, float] | None) -> None:
        """Dim the time outside ``span`` (seconds), or nothing (None)."""
        for plot, region in self._trims:
            plot.removeItem(region)
        self._trims.clear()
        if span is None or not len(self._times):
            return
        end = float(self._times[-1]) + 1.0
        for plot in self.plots.values():
            for lo, hi in ((-1.0, span[0]), (span[1], end)):
                if hi <= lo:
                    continue
                region = pg.LinearRegionItem((lo, hi), movable=False,
                                             brush=pg.mkBrush(TRIMMED), pen=pg.mkPen(None))
                region.setZValue(50)
                plot.addItem(region, ignoreBounds=True)
                self._trims.append((plot, region))

    def set_divergence(self, times: np.ndarray, mm: np.ndarray) -> None:
        """Add (or replace) the simulator's end-effector divergence plot."""
        self._drop_plot("divergence")
        plot = self._plot("divergence", self._strip_row, 3, "divergence [mm]", height=86,
                          legend=False)
        plot.setXRange(*self.plots["action"].vb.viewRange()[0], padding=0)
        curve = _fast_curve(plot, times, mm, pg.mkPen("#ffd43b", width=1.5), None)
        curve.setProperty("label", "end-effector divergence [mm]")
        self.curves[("divergence", 0, "divergence")] = curve
        plot.setYRange(0, max(1.0, float(np.nanmax(mm)) * 1.1 if len(mm) else 1.0))


class _PlayheadStrip(QWidget):
    """The playhead line over one plot (mouse clicks go through to the plot)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.hide()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(1, 0, 1, self.height(), QColor(PLAYHEAD))
        p.end()


def _fast_curve(plot: pg.PlotItem, x: np.ndarray, y: np.ndarray, pen, name: str | None
                ) -> pg.PlotDataItem:
    """A curve clipped to the view and downsampled to the plot's width. The data is set only
    once the curve is in its plot: pyqtgraph 0.14 clips against the view while adding it,
    before its ViewBox is its parent, and fails."""
    curve = pg.PlotDataItem(pen=pen, name=name, autoDownsampleFactor=DOWNSAMPLE_PER_PIXEL)
    plot.addItem(curve)
    curve.setClipToView(True)
    curve.setDownsampling(auto=True, method="peak")
    curve.setData(x, y, connect="finite")
    return curve
