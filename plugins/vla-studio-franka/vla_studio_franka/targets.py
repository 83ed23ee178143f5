"""Pure functions and a small target tracker: VLA Studio actions -> Franka motion targets.

Conventions (those of VLA Studio's actions, see ``vla_studio.core.action_space``):

* an end-effector delta ``(dx, dy, dz, droll, dpitch, dyaw)`` is a displacement per control step
  in the robot base frame; its rotation is applied in the base frame,
  ``R_new = rpy_to_mat(droll, dpitch, dyaw) @ R_old`` with ``rpy = Rz(yaw) Ry(pitch) Rx(roll)``;
* VLA Studio reports quaternions ``(w, x, y, z)``; franky's ``Affine`` takes ``(x, y, z, w)``.

No franky import here, so everything in this module is unit-testable without a robot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def rpy_to_mat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation matrix ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def mat_to_rpy(mat: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rpy_to_mat` (pitch in [-pi/2, pi/2])."""
    pitch = math.asin(max(-1.0, min(1.0, -float(mat[2, 0]))))
    roll = math.atan2(float(mat[2, 1]), float(mat[2, 2]))
    yaw = math.atan2(float(mat[1, 0]), float(mat[0, 0]))
    return np.array([roll, pitch, yaw])


def rotvec_to_mat(v: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: the rotation by ``|v|`` radians about ``v``."""
    v = np.asarray(v, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)


def mat_to_rotvec(mat: np.ndarray) -> np.ndarray:
    """Rotation vector of a rotation matrix (angle in [0, pi])."""
    quat = mat_to_quat_wxyz(mat)
    w, xyz = float(quat[0]), quat[1:]
    s = float(np.linalg.norm(xyz))
    if s < 1e-12:
        return np.zeros(3)
    angle = 2.0 * math.atan2(s, w)
    if angle > math.pi:  # the short way round
        angle -= 2.0 * math.pi
    return xyz / s * angle


def mat_to_quat_wxyz(mat: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix."""
    m = np.asarray(mat, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0.0:
        s = math.sqrt(tr + 1.0) * 2.0
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s,
                      (m[1, 0] - m[0, 1]) / s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2.0
        q = np.array([(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s,
                      (m[0, 2] + m[2, 0]) / s])
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2.0
        q = np.array([(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s,
                      (m[1, 2] + m[2, 1]) / s])
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2.0
        q = np.array([(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s,
                      (m[1, 2] + m[2, 1]) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    return -q if q[0] < 0.0 else q


def quat_xyzw_to_mat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of franky's ``(x, y, z, w)`` quaternion."""
    x, y, z, w = (float(v) for v in np.asarray(q, dtype=np.float64).reshape(4))
    n = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64).reshape(4)
    return np.array([q[1], q[2], q[3], q[0]])


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64).reshape(4)
    return np.array([q[3], q[0], q[1], q[2]])


@dataclass(frozen=True)
class CartesianTarget:
    """Where the end effector is sent: position (m) and rotation matrix, base frame."""

    pos: np.ndarray
    mat: np.ndarray

    @property
    def quat_xyzw(self) -> np.ndarray:
        return wxyz_to_xyzw(mat_to_quat_wxyz(self.mat))


class EETargetTracker:
    """Integrates end-effector deltas into a Cartesian target that never leads the measured pose
    by more than ``max_lead_m`` / ``max_lead_rad``.

    Integrating from the previous *target* (not the measured pose) gives the operator a steady
    speed for a steady input, whatever the arm's tracking lag; the lead clamp keeps a stalled
    or blocked arm from collecting a long way to go that it would catch up on later. After
    :meth:`reset` (a hold, an e-stop, a fault) the next delta starts from the measured pose.

    Args:
        max_lead_m: farthest the target may be from the measured position.
        max_lead_rad: largest rotation between the target and the measured orientation.
    """

    def __init__(self, max_lead_m: float, max_lead_rad: float) -> None:
        self.max_lead_m, self.max_lead_rad = float(max_lead_m), float(max_lead_rad)
        self._target: CartesianTarget | None = None

    @property
    def target(self) -> CartesianTarget | None:
        return self._target

    def reset(self) -> None:
        """Forget the target: the next :meth:`step` starts from the measured pose."""
        self._target = None

    def step(self, delta: np.ndarray, meas_pos: np.ndarray,
             meas_mat: np.ndarray) -> tuple[CartesianTarget, np.ndarray]:
        """Apply ``delta`` (6 values) and return the new target and the delta it really moved.

        Raises:
            ValueError: ``delta`` or the measured pose is not finite.
        """
        d = np.asarray(delta, dtype=np.float64).reshape(-1)[:6]
        meas_pos = np.asarray(meas_pos, dtype=np.float64).reshape(3)
        meas_mat = np.asarray(meas_mat, dtype=np.float64).reshape(3, 3)
        if not (np.all(np.isfinite(d)) and np.all(np.isfinite(meas_pos))
                and np.all(np.isfinite(meas_mat))):
            raise ValueError("end-effector delta or measured pose is not finite")
        old = self._target or CartesianTarget(meas_pos.copy(), meas_mat.copy())
        pos = old.pos + d[:3]
        mat = rpy_to_mat(d[3], d[4], d[5]) @ old.mat
        lead = pos - meas_pos
        dist = float(np.linalg.norm(lead))
        if dist > self.max_lead_m:
            pos = meas_pos + lead * (self.max_lead_m / dist)
        rot_lead = mat_to_rotvec(mat @ meas_mat.T)
        angle = float(np.linalg.norm(rot_lead))
        if angle > self.max_lead_rad:
            mat = rotvec_to_mat(rot_lead * (self.max_lead_rad / angle)) @ meas_mat
        self._target = CartesianTarget(pos, mat)
        applied = np.concatenate([pos - old.pos, mat_to_rpy(mat @ old.mat.T)])
        return self._target, applied


def clip_joints(q: np.ndarray, lower: tuple[float, ...], upper: tuple[float, ...]) -> np.ndarray:
    """Joint targets clipped to the arm's range (the safety filter already did; the driver
    never trusts that alone)."""
    return np.clip(np.asarray(q, dtype=np.float64), np.asarray(lower), np.asarray(upper))


def gripper_width(opening: float, max_width: float) -> float:
    """Finger width (m) for a gripper command ``opening`` (1 = open, 0 = closed)."""
    if not math.isfinite(opening):
        raise ValueError(f"gripper command {opening!r} is not finite")
    return min(1.0, max(0.0, float(opening))) * float(max_width)
