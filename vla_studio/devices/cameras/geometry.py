"""Where a camera is and how points of the robot's world land in its image.

:class:`CameraExtrinsics` is a camera's pose in the robot base frame with OpenCV optical axes
(x right, y down, z along the view). It comes from the device's own knowledge (the simulator
knows every camera's pose, a wrist camera's for each rendered frame) or from the profile's
``pose = [x, y, z, roll, pitch, yaw]`` (metres, radians; ``R = Rz(yaw) Ry(pitch) Rx(roll)``, the
simulator's convention). :func:`project` maps base-frame points to pixels with the camera's
pinhole intrinsics; points behind the camera are marked invisible rather than mirrored into
the image.

Example profile poses (optical axes): a camera at ``(1.2, 0, 0.5)`` looking back at the robot
along ``-x``, level: ``pose = [1.2, 0.0, 0.5, -1.5708, 0.0, 1.5708]``; looking forward along
``+x``: ``[x, y, z, -1.5708, 0.0, -1.5708]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

# MuJoCo cameras look along their -z axis with y up; OpenCV's look along +z with y down.
_MUJOCO_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


@dataclass(frozen=True)
class CameraExtrinsics:
    """A camera's pose in the robot base frame (OpenCV optical axes).

    Attributes:
        rotation: 3x3, camera axes expressed in the base frame (camera -> base), row-major.
        translation: the camera's optical centre in the base frame, metres.
        source: where the pose came from ("simulator", "profile", a device name).
    """

    rotation: tuple[tuple[float, float, float], ...]
    translation: tuple[float, float, float]
    source: str = ""

    @classmethod
    def from_matrix(cls, rotation: np.ndarray, translation: np.ndarray,
                    source: str = "") -> "CameraExtrinsics":
        r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(t))):
            raise ValueError("camera pose has non-finite values")
        return cls(tuple(tuple(float(v) for v in row) for row in r),  # type: ignore[arg-type]
                   (float(t[0]), float(t[1]), float(t[2])), source)

    @classmethod
    def from_pose(cls, pose: Sequence[float], source: str = "profile") -> "CameraExtrinsics":
        """From ``[x, y, z, roll, pitch, yaw]`` (see the module docstring)."""
        if len(pose) != 6:
            raise ValueError(f"a camera pose is [x, y, z, roll, pitch, yaw], got {len(pose)} "
                             "values")
        x, y, z, roll, pitch, yaw = (float(v) for v in pose)
        return cls.from_matrix(rpy_matrix(roll, pitch, yaw), np.array([x, y, z]), source)

    @classmethod
    def from_mujoco(cls, position: np.ndarray, xmat: np.ndarray,
                    source: str = "simulator") -> "CameraExtrinsics":
        """From a MuJoCo camera's ``cam_xpos`` / ``cam_xmat`` (world = robot base frame)."""
        r = np.asarray(xmat, dtype=np.float64).reshape(3, 3) @ _MUJOCO_TO_OPENCV
        return cls.from_matrix(r, np.asarray(position), source)

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.rotation, dtype=np.float64)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Base-frame points ``[n, 3]`` in camera coordinates ``[n, 3]`` (z = depth)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return (p - np.asarray(self.translation)) @ self.matrix


def project(points: np.ndarray, fx: float, fy: float, cx: float, cy: float,
            extrinsics: CameraExtrinsics, near_m: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of base-frame ``points`` ``[n, 3]``.

    Returns:
        ``(uv, visible)``: ``[n, 2]`` pixels (OpenCV convention: pixel centres at integers) and
        ``[n]`` booleans, False for points closer than ``near_m`` or behind the camera (their
        ``uv`` is NaN). Distortion is not applied (the overlay is a guide, not a measurement).
    """
    cam = extrinsics.to_camera(points)
    z = cam[:, 2]
    visible = np.isfinite(z) & (z > near_m)
    uv = np.full((cam.shape[0], 2), np.nan)
    zv = z[visible]
    uv[visible, 0] = fx * cam[visible, 0] / zv + cx
    uv[visible, 1] = fy * cam[visible, 1] / zv + cy
    return uv, visible
