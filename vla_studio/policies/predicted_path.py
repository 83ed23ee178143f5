"""What a running chunk will do to the end effector, as points for the camera overlays.

The runner's :meth:`~vla_studio.policies.runner.PolicyRunner.planned_actions` gives the actions
the running chunk still plans. For end-effector delta actions the path is the current TCP
position plus their running sum, after the same speed scale, workspace clip and per-step cap the
safety filter applies (so the drawn path is where the arm can go, not where an unsafe plan
points). Joint-position chunks would need the robot's forward kinematics, which VLA Studio does
not have for every robot: they have no path (:func:`path_unavailable` says why, once).

:func:`project_path` turns the path into pixels of one camera with its intrinsics and its pose
(:mod:`vla_studio.devices.cameras.geometry`); it is plain numpy, cheap enough for every display
frame (a chunk is tens of points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_studio.core.action_space import EE_DELTA
from vla_studio.core.safety import SafetyLimits
from vla_studio.devices.cameras.base import CameraIntrinsics
from vla_studio.devices.cameras.geometry import CameraExtrinsics, project


@dataclass(frozen=True)
class PathInCamera:
    """A predicted path in one camera's image.

    Attributes:
        pixels: ``[n, 2]`` image pixel coordinates of the visible points, in path order.
        visible: how many of the path's points are in front of the camera.
        total: points in the path.
    """

    pixels: np.ndarray
    visible: int
    total: int


def path_unavailable(action_kind: str, intrinsics: CameraIntrinsics | None,
                     extrinsics: CameraExtrinsics | None) -> str:
    """Why no path can be drawn for this camera ("" when it can)."""
    if action_kind != EE_DELTA:
        return (f"{action_kind} actions: drawing their path needs the robot's forward "
                "kinematics, which this robot does not provide")
    if intrinsics is None:
        return "the camera reports no intrinsics"
    if extrinsics is None:
        return ("the camera's pose is unknown: add pose = [x, y, z, roll, pitch, yaw] to its "
                "[[cameras]] table in the profile")
    return ""


def predicted_positions(ee_pos: np.ndarray, planned: np.ndarray, *, speed_scale: float = 1.0,
                        limits: SafetyLimits | None = None) -> np.ndarray:
    """TCP positions ``[n + 1, 3]`` (base frame): now, then after each planned ee_delta action.

    Args:
        ee_pos: the TCP position now.
        planned: ``[n, D]`` ee_delta actions (``dx, dy, dz`` first), executed in order.
        speed_scale: the run's speed scale times the profile's.
        limits: the station's safety limits (workspace clip and per-step cap), or None.
    """
    start = np.asarray(ee_pos, dtype=np.float64).reshape(-1)[:3]
    out = [start]
    if planned.ndim != 2 or planned.shape[0] == 0 or planned.shape[1] < 3:
        return np.asarray(out)
    lo = np.asarray(limits.workspace_min) if limits is not None else None
    hi = np.asarray(limits.workspace_max) if limits is not None else None
    cap = limits.max_delta_translation if limits is not None else np.inf
    pos = start
    for delta in np.asarray(planned, dtype=np.float64)[:, :3] * speed_scale:
        if not np.all(np.isfinite(delta)):
            break  # the filter would reject it and hold: the path ends here
        target = pos + delta
        if lo is not None and hi is not None:
            target = np.clip(target, lo, hi)
        step = target - pos
        norm = float(np.linalg.norm(step))
        if norm > cap:
            step *= cap / norm
        pos = pos + step
        out.append(pos)
    return np.asarray(out)


def project_path(points: np.ndarray, intrinsics: CameraIntrinsics,
                 extrinsics: CameraExtrinsics, image_size: tuple[int, int]) -> PathInCamera:
    """``points`` (base frame) in the pixels of a camera whose images are ``image_size``
    (width, height); intrinsics of another resolution are scaled to it."""
    width, height = image_size
    sx = width / intrinsics.width if intrinsics.width else 1.0
    sy = height / intrinsics.height if intrinsics.height else 1.0
    uv, visible = project(points, intrinsics.fx * sx, intrinsics.fy * sy, intrinsics.cx * sx,
                          intrinsics.cy * sy, extrinsics)
    return PathInCamera(uv[visible], int(visible.sum()), int(len(points)))
