"""Differential inverse kinematics for the arm: damped least squares with joint limits.

One control tick asks for a new tool-centre-point (TCP) pose; :meth:`DifferentialIK.solve` turns
it into joint targets by a few Gauss-Newton steps on the damped pseudo-inverse of the site
Jacobian, evaluated in a scratch ``MjData`` (the live simulation state is never touched here).
Each step:

* clamps every joint to its limits minus a small margin (limits are respected by construction),
* caps the whole joint move of the tick to ``max_joint_speed * period``,
* pulls redundant motion towards a comfortable posture in the Jacobian's null space, which keeps
  the 7-DoF arm away from its limits and from elbow flips.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from vla_studio.sim.rotations import rotation_error
from vla_studio.sim.scene import HOME_JOINTS, SceneIndex


@dataclass(frozen=True)
class IKSettings:
    """Tuning of the solver.

    Attributes:
        damping: damping of the least-squares solution (metres/radians); trades accuracy near
            singularities for smooth, bounded joint motion.
        iterations: Gauss-Newton steps per tick (small deltas converge in one or two).
        tolerance: stop iterating below this pose error (metres; radians count the same).
        limit_margin: joint targets stay this far (radians) inside the joint limits.
        max_joint_speed: cap on every joint's commanded speed, rad/s.
        posture_gain: strength of the null-space pull towards ``posture`` per step.
    """

    damping: float = 0.03
    iterations: int = 3
    tolerance: float = 1e-4
    limit_margin: float = 0.02
    max_joint_speed: float = 2.0
    posture_gain: float = 0.05


@dataclass(frozen=True)
class IKResult:
    """Joint targets and how far the resulting TCP pose is from the asked one."""

    q: np.ndarray
    position_error: float  # metres
    rotation_error: float  # radians
    limited: bool  # a joint limit or the speed cap constrained the answer


class DifferentialIK:
    """Damped-least-squares IK of the TCP site over the seven arm joints.

    Args:
        model: the compiled scene.
        index: names resolved to addresses.
        settings: solver tuning.
        posture: joint angles the null-space term prefers (the start pose by default).
    """

    def __init__(self, model: mujoco.MjModel, index: SceneIndex, settings: IKSettings | None = None,
                 posture: np.ndarray | None = None) -> None:
        self.model, self.index = model, index
        self.settings = settings or IKSettings()
        self.posture = np.array(HOME_JOINTS if posture is None else posture, dtype=np.float64)
        self._scratch = mujoco.MjData(model)
        margin = self.settings.limit_margin
        self.lower = index.joint_lower + margin
        self.upper = index.joint_upper - margin
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and rotation matrix (world frame) for arm joints ``q``."""
        s = self._scratch
        s.qpos[self.index.arm_qpos] = q
        mujoco.mj_kinematics(self.model, s)
        site = self.index.tcp_site
        return s.site_xpos[site].copy(), s.site_xmat[site].reshape(3, 3).copy()

    def solve(self, q_start: np.ndarray, target_pos: np.ndarray, target_mat: np.ndarray,
              period_s: float) -> IKResult:
        """Joint targets that bring the TCP to ``target_pos``/``target_mat`` (world frame).

        Args:
            q_start: the joint targets of the previous tick (the solution is continuous in them).
            target_pos: desired TCP position, metres.
            target_mat: desired TCP rotation matrix.
            period_s: duration of the tick, for the joint speed cap.
        """
        st, idx, s = self.settings, self.index, self._scratch
        q0 = np.clip(np.asarray(q_start, dtype=np.float64), self.lower, self.upper)
        q = q0.copy()
        max_step = st.max_joint_speed * period_s
        limited = False
        err = np.zeros(6)
        for _ in range(st.iterations):
            pos, mat = self.forward(q)
            err[:3] = target_pos - pos
            err[3:] = rotation_error(target_mat, mat)
            if float(np.linalg.norm(err)) < st.tolerance:
                break
            mujoco.mj_comPos(self.model, s)
            mujoco.mj_jacSite(self.model, s, self._jacp, self._jacr, idx.tcp_site)
            jac = np.vstack([self._jacp[:, idx.arm_dof], self._jacr[:, idx.arm_dof]])
            jjt = jac @ jac.T + (st.damping ** 2) * np.eye(6)
            pinv = jac.T @ np.linalg.solve(jjt, np.eye(6))
            dq = pinv @ err
            null = np.eye(len(q)) - pinv @ jac
            dq += null @ (st.posture_gain * (self.posture - q))
            q_new = q + dq
            clipped = np.clip(q_new, self.lower, self.upper)
            limited |= bool(np.any(clipped != q_new))
            q = clipped
        step = q - q0
        biggest = float(np.max(np.abs(step))) if len(step) else 0.0
        if biggest > max_step:
            q = q0 + step * (max_step / biggest)
            q = np.clip(q, self.lower, self.upper)
            limited = True
        pos, mat = self.forward(q)
        return IKResult(q, float(np.linalg.norm(target_pos - pos)),
                        float(np.linalg.norm(rotation_error(target_mat, mat))), limited)
