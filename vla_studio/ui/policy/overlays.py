"""What a policy run draws on every camera pane: its confidence as a bar and a colour, the
predicted end-effector path of the running chunk, and a band when the run is paused, asks for
help or is stopped.

```
 display tick (GUI thread) -- runner.snapshot(), runner.planned_actions()   (microseconds)
   bridge.latest_step (TCP now) --> predicted_positions (speed scale, workspace, step cap)
   per pane: camera.intrinsics + camera.extrinsics_for(frame on screen) --> project_path
   --> ConfidenceGauge / path PolylineOverlay / BannerOverlay --> pane.update() if changed
```
The layers are added to the panes when a policy is loaded and removed when it is unloaded; the
operator can hide each one from a pane's right-click menu (Overlays). A camera without a pose
(no extrinsics) gets no path, and the run log says so once for that camera.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PySide6.QtGui import QColor

from vla_studio.core.session import ControlMode, RunState, SessionState
from vla_studio.core.types import Step
from vla_studio.policies.predicted_path import (path_unavailable, predicted_positions,
                                                project_path)
from vla_studio.policies.runner_stats import CRASHED, DISCONNECTED, ERROR, HUNG, RunnerSnapshot
from vla_studio.ui.widgets.camera_overlay import BannerOverlay, GaugeOverlay, PolylineOverlay

PATH_COLOUR = "#39d0ff"
STOPPED, HELP, PAUSED, FAILED = "#b3261e", "#e8710a", "#b38600", "#8e1b14"


def run_banner(session: SessionState, runner: RunnerSnapshot | None,
               run_active: bool) -> tuple[str, str]:
    """The band's text and colour for the run's state (``("", "")``: nothing to say)."""
    policy_run = run_active or session.mode == ControlMode.POLICY
    if runner is None or not policy_run:
        return "", ""
    if session.state == RunState.ESTOPPED:
        return "STOPPED — the arm holds; reset the stop (two steps), then Start", STOPPED
    if runner.state in (CRASHED, HUNG, ERROR, DISCONNECTED):
        return f"POLICY {runner.state.upper()} — {runner.message}", FAILED
    if runner.fallback:
        action = {"pause": "take over, or press Start to let it continue",
                  "hold": "the arm holds: take over, or resume the policy",
                  "teleop": "the teleop device has control"}.get(runner.fallback, "")
        return f"ASKING FOR HELP — {runner.message}; {action}", HELP
    if session.state == RunState.PAUSED and run_active:
        return f"PAUSED — {session.reason}; Start resumes the run", PAUSED
    return "", ""


def confidence_label(method: str) -> str:
    return f"confidence ({method.replace('_', ' ')})" if method else "confidence"


class PolicyOverlays:
    """The policy layers of every pane of a camera grid (see the module docstring).

    Args:
        panes: camera name -> CameraPane.
        tell: says something once in the run log (a camera without a pose).
    """

    def __init__(self, panes: dict, tell: Callable[[str], None]) -> None:
        self.panes = dict(panes)
        self.tell = tell
        self.gauges: dict[str, GaugeOverlay] = {}
        self.paths: dict[str, PolylineOverlay] = {}
        self.banners: dict[str, BannerOverlay] = {}
        self.attached = False
        self._told: set[str] = set()
        self.path_points: dict[str, int] = {}  # visible path points per camera (tests, views)

    def attach(self, threshold: float) -> None:
        """Add the layers to every pane (a policy was loaded)."""
        if self.attached:
            return
        self._told.clear()
        for name, pane in self.panes.items():
            gauge = GaugeOverlay("policy confidence", "confidence", threshold or None)
            path = PolylineOverlay("predicted path", PATH_COLOUR, width=3.0, label="plan",
                                   z=12, dots=True)
            banner = BannerOverlay("policy run state")
            for layer in (path, gauge, banner):
                pane.add_overlay(layer)
            self.gauges[name], self.paths[name], self.banners[name] = gauge, path, banner
        self.attached = True

    def detach(self) -> None:
        """Remove the layers (the policy was unloaded)."""
        for name, pane in self.panes.items():
            for layers in (self.gauges, self.paths, self.banners):
                layer = layers.pop(name, None)
                if layer is not None:
                    pane.remove_overlay(layer)
        self.path_points.clear()
        self.attached = False

    def update(self, runner_snapshot: RunnerSnapshot, planned: np.ndarray, step: Step | None,
               session: SessionState, run_active: bool, threshold: float, speed_scale: float,
               limits, action_kind: str) -> None:
        """Refresh every layer for this display frame; repaints only panes that changed."""
        if not self.attached:
            return
        conf = runner_snapshot.confidence
        # the last run's confidence means nothing once it has ended
        value = conf if math.isfinite(conf) and run_active else None
        label = confidence_label(runner_snapshot.confidence_method)
        text, colour = run_banner(session, runner_snapshot, run_active)
        positions = None
        if step is not None and planned.ndim == 2 and planned.shape[0] > 0 and \
                session.state == RunState.RUNNING:
            ee = step.observation.state.get("ee_pos")
            if ee is not None and np.all(np.isfinite(ee)):
                positions = predicted_positions(np.asarray(ee), planned,
                                                speed_scale=speed_scale, limits=limits)
        for name, pane in self.panes.items():
            changed = self._gauge(name, value, label, threshold)
            changed |= self.banners[name].set_text(text, QColor(colour or "#000"))
            changed |= self._path(name, pane, positions, action_kind)
            if changed:
                pane.update()

    def _gauge(self, name: str, value: float | None, label: str, threshold: float) -> bool:
        gauge = self.gauges[name]
        before = (gauge.value, gauge.label, gauge.threshold)
        gauge.set_value(value)
        gauge.label, gauge.threshold = label, (threshold or None)
        return before != (gauge.value, gauge.label, gauge.threshold)

    def _path(self, name: str, pane, positions: np.ndarray | None, action_kind: str) -> bool:
        path = self.paths[name]
        frame = pane.frame
        points: tuple = ()
        if frame is not None and frame.color is not None:
            camera = pane.camera
            intrinsics, extrinsics = camera.intrinsics, camera.extrinsics_for(frame)
            why = path_unavailable(action_kind, intrinsics, extrinsics)
            if why and name not in self._told:  # said once, as soon as it is known
                self._told.add(name)
                self.tell(f"No predicted path in camera '{name}': {why}.")
            if not why and positions is not None:
                h, w = frame.color.shape[:2]
                shown = project_path(positions, intrinsics, extrinsics, (w, h))
                points = tuple(map(tuple, shown.pixels))
        self.path_points[name] = len(points)
        if tuple(path.points) == tuple((float(x), float(y)) for x, y in points):
            return False
        path.set_points(points)
        return True
