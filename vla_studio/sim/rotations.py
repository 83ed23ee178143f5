"""Small rotation helpers (3x3 matrices, wxyz quaternions, roll-pitch-yaw, rotation vectors).

Conventions used throughout VLA Studio's simulator:

* quaternions are ``(w, x, y, z)``, as in MuJoCo;
* roll-pitch-yaw ``(r, p, y)`` means ``R = Rz(y) @ Ry(p) @ Rx(r)`` (extrinsic x, then y, then z);
* an end-effector rotation delta ``(droll, dpitch, dyaw)`` is applied in the base frame:
  ``R_new = rpy_to_mat(droll, dpitch, dyaw) @ R_old``.
"""

from __future__ import annotations

import math

import numpy as np


def rpy_to_mat(roll: float, pitch: float, yaw: float) -> np.ndarray:
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
    if abs(math.cos(pitch)) < 1e-9:  # gimbal lock: put everything in yaw
        return np.array([0.0, pitch, math.atan2(-mat[0, 1], mat[1, 1])])
    return np.array([math.atan2(mat[2, 1], mat[2, 2]), pitch, math.atan2(mat[1, 0], mat[0, 0])])


def rotvec_to_mat(v: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation of ``|v|`` radians about ``v``."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = np.asarray(v, dtype=np.float64) / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)


def mat_to_rotvec(mat: np.ndarray) -> np.ndarray:
    """Rotation vector (axis times angle, angle in [0, pi]) of a rotation matrix."""
    q = mat_to_quat(mat)
    w = max(-1.0, min(1.0, float(q[0])))
    if w < 0:  # shortest rotation
        q, w = -q, -w
    s = math.sqrt(max(0.0, 1.0 - w * w))
    angle = 2.0 * math.atan2(s, w)
    if s < 1e-12:
        return 2.0 * q[1:]  # small-angle limit
    return q[1:] / s * angle


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector that turns ``current`` into ``target``, in the frame both are given in."""
    return mat_to_rotvec(target @ current.T)


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation matrix (Shepperd's method)."""
    m = np.asarray(mat, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    out = np.array(q)
    return out / np.linalg.norm(out)


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = (float(v) for v in np.asarray(q, dtype=np.float64) / np.linalg.norm(q))
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def yaw_of(mat: np.ndarray) -> float:
    """Heading of a frame's x axis in the xy plane (radians)."""
    return math.atan2(float(mat[1, 0]), float(mat[0, 0]))


def wrap_angle(a: float) -> float:
    """Angle wrapped to (-pi, pi]."""
    return math.atan2(math.sin(a), math.cos(a))
