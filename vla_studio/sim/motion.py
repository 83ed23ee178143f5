"""Smooth, human-like reaching through the end-effector-delta interface.

:class:`MotionShaper` turns "go to this TCP pose" into one ``[dx, dy, dz, droll, dpitch, dyaw]``
delta per control tick with a trapezoidal speed profile: speed ramps up at a bounded acceleration,
cruises at most at the speed limit, and eases out (``v <= sqrt(2 * a * distance)``) so the arm
settles without overshoot. Orientation follows the same rule. The limits default well below the
station's safety caps, so the action filter never has to clip an expert action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_studio.sim.rotations import mat_to_rpy, rotation_error, rotvec_to_mat, rpy_to_mat

# The TCP pointing straight down with its fingers closing along the base y axis (yaw 0).
DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


def down_with_yaw(yaw: float) -> np.ndarray:
    """Rotation of a downward-pointing TCP whose x axis has heading ``yaw``."""
    return rpy_to_mat(0.0, 0.0, yaw) @ DOWN


@dataclass(frozen=True)
class MotionLimits:
    """Speed limits of one move (SI units)."""

    speed: float = 0.16  # m/s
    accel: float = 0.6  # m/s^2
    rot_speed: float = 0.8  # rad/s
    rot_accel: float = 4.0  # rad/s^2


class MotionShaper:
    """Stateful velocity shaping between ticks (call :meth:`reset` at episode start)."""

    def __init__(self) -> None:
        self._v = np.zeros(3)
        self._w = np.zeros(3)

    def reset(self) -> None:
        self._v[:] = 0.0
        self._w[:] = 0.0

    @property
    def speed(self) -> float:
        return float(np.linalg.norm(self._v))

    def step(self, pos: np.ndarray, mat: np.ndarray, target_pos: np.ndarray,
             target_mat: np.ndarray, dt: float, limits: MotionLimits) -> np.ndarray:
        """The 6-D delta for this tick that moves (``pos``, ``mat``) towards the target."""
        out = np.zeros(6)
        self._v = _shape(self._v, target_pos - pos, dt, limits.speed, limits.accel)
        out[:3] = self._v * dt
        err = rotation_error(target_mat, mat)
        self._w = _shape(self._w, err, dt, limits.rot_speed, limits.rot_accel)
        out[3:6] = mat_to_rpy(rotvec_to_mat(self._w * dt))
        return out


def _shape(v: np.ndarray, err: np.ndarray, dt: float, vmax: float, amax: float) -> np.ndarray:
    dist = float(np.linalg.norm(err))
    if dist < 1e-9:
        desired = np.zeros(3)
    else:
        # Ease out: the speed from which the remaining distance can be stopped in, and never
        # more than what covers the distance in one tick (no overshoot on the last step).
        speed = min(vmax, math.sqrt(2.0 * amax * dist), dist / dt)
        desired = err / dist * speed
    dv = desired - v
    n = float(np.linalg.norm(dv))
    cap = amax * dt
    if n > cap:
        dv *= cap / n
    return v + dv
