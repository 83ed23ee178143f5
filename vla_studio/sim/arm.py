"""The arm controller: turns one control-tick command into joint-servo references and physics.

```
 tick command (ee_delta in the base frame, or joint targets)
   -> TCP target += delta      (anti-windup: the target never leads the real TCP by more than
                                max_lead_m / max_lead_rad, so a blocked arm does not store a jump)
   -> DifferentialIK.solve      joint targets q_next (limits, speed cap, null-space posture)
   -> physics substeps          servo references ramp linearly from q_prev to q_next over the
                                tick with a velocity feed-forward; the gripper reference moves
                                at the finger speed; mj_step in chunks; mj_forward at the end
```
Physics runs at the model's timestep (2 ms) inside the tick; the number of substeps follows the
tick period, with the fractional remainder carried over so simulated time never drifts.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import mujoco
import numpy as np

from vla_studio.sim.ik import DifferentialIK, IKSettings
from vla_studio.sim.rotations import mat_to_rpy, rotation_error, rotvec_to_mat, rpy_to_mat
from vla_studio.sim.scene import FINGER_TRAVEL_M, SceneIndex


@dataclass(frozen=True)
class ArmSettings:
    """Tuning of the controller.

    Attributes:
        ik: inverse-kinematics tuning.
        max_lead_m: the TCP target may lead the measured TCP by at most this much.
        max_lead_rad: same for orientation.
        finger_speed: finger reference speed, m/s (each finger; 0.1 m/s closes in 0.4 s).
        chunk_steps: physics steps between servo reference updates.
    """

    ik: IKSettings = IKSettings()
    max_lead_m: float = 0.03
    max_lead_rad: float = 0.3
    finger_speed: float = 0.1
    chunk_steps: int = 5


class ArmController:
    """Tracks a TCP target (or joint targets) with the arm's servos.

    Only the thread that owns the simulation calls it (the control loop's thread).

    Args:
        model: the compiled scene.
        data: the live simulation state.
        index: resolved names.
        settings: controller tuning.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, index: SceneIndex,
                 settings: ArmSettings | None = None) -> None:
        self.model, self.data, self.index = model, data, index
        self.settings = settings or ArmSettings()
        self.ik = DifferentialIK(model, index, self.settings.ik)
        self.base_pos = np.zeros(3)
        self.base_mat = np.eye(3)
        self.target_pos = np.zeros(3)  # world frame
        self.target_mat = np.eye(3)
        self.q_cmd = np.zeros(len(index.arm_qpos))
        self.gripper_cmd = 1.0
        self._q_prev = self.q_cmd.copy()
        self._time_debt = 0.0
        self.last_ik_limited = False
        # Set from another thread by the robot's emergency hold: checked between physics chunks,
        # it freezes the joint reference where the arm is commanded to be at that instant.
        self.halt: threading.Event | None = None

    # ----- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Take the current simulation state as the command (after a scene reset)."""
        d, idx = self.data, self.index
        self.base_pos = d.xpos[idx.base_body].copy()
        self.base_mat = d.xmat[idx.base_body].reshape(3, 3).copy()
        self.q_cmd = d.qpos[idx.arm_qpos].copy()
        self._q_prev = self.q_cmd.copy()
        self.target_pos, self.target_mat = self.ik.forward(self.q_cmd)
        self.gripper_cmd = self.measured_gripper()
        self._time_debt = 0.0
        d.ctrl[idx.arm_actuators] = self.q_cmd
        d.ctrl[idx.arm_velocity_actuators] = 0.0
        d.ctrl[idx.gripper_actuator] = self.gripper_cmd * FINGER_TRAVEL_M

    def measured_gripper(self) -> float:
        """Finger opening, 1 = fully open, 0 = closed."""
        opening = float(np.mean(self.data.qpos[self.index.finger_qpos]))
        return min(1.0, max(0.0, opening / FINGER_TRAVEL_M))

    def tcp_world(self) -> tuple[np.ndarray, np.ndarray]:
        site = self.index.tcp_site
        return self.data.site_xpos[site].copy(), self.data.site_xmat[site].reshape(3, 3).copy()

    def to_base(self, pos: np.ndarray, mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A world-frame pose expressed in the robot base frame."""
        return self.base_mat.T @ (pos - self.base_pos), self.base_mat.T @ mat

    def target_in_base(self) -> tuple[np.ndarray, np.ndarray]:
        return self.to_base(self.target_pos, self.target_mat)

    # ----- commands ----------------------------------------------------------------------------
    def push(self, delta: np.ndarray) -> None:
        """An external push: move the TCP target by ``delta`` ``[dx, dy, dz, dyaw]`` (base
        frame) without a command (see :mod:`vla_studio.sim.disturbance`); the next command
        moves on from the displaced target."""
        d = np.asarray(delta, dtype=np.float64)
        self.target_pos = self.target_pos + self.base_mat @ d[:3]
        turn = self.base_mat @ rpy_to_mat(0.0, 0.0, float(d[3])) @ self.base_mat.T
        self.target_mat = turn @ self.target_mat

    def command_ee_delta(self, action: np.ndarray, period_s: float) -> np.ndarray:
        """Move the TCP target by ``action[:6]`` (base frame) and set the gripper; return the
        delta actually applied to the target (after the anti-windup clamp)."""
        a = np.asarray(action, dtype=np.float64)
        st = self.settings
        old_pos, old_mat = self.target_pos.copy(), self.target_mat.copy()
        pos = old_pos + self.base_mat @ a[:3]
        rot_world = self.base_mat @ rpy_to_mat(a[3], a[4], a[5]) @ self.base_mat.T
        mat = rot_world @ old_mat
        meas_pos, meas_mat = self.tcp_world()
        lead = pos - meas_pos
        dist = float(np.linalg.norm(lead))
        clamped = False
        if dist > st.max_lead_m:
            pos = meas_pos + lead * (st.max_lead_m / dist)
            clamped = True
        rot_lead = rotation_error(mat, meas_mat)
        angle = float(np.linalg.norm(rot_lead))
        if angle > st.max_lead_rad:
            mat = rotvec_to_mat(rot_lead * (st.max_lead_rad / angle)) @ meas_mat
            clamped = True
        self.target_pos, self.target_mat = pos, mat
        result = self.ik.solve(self.q_cmd, pos, mat, period_s)
        self.last_ik_limited = result.limited
        self._set_next(result.q)
        self.gripper_cmd = _clip01(a[6])
        applied = a[:7].copy()
        if clamped:  # report the delta the target really moved by
            applied[:3] = self.base_mat.T @ (pos - old_pos)
            applied[3:6] = mat_to_rpy(self.base_mat.T @ (mat @ old_mat.T) @ self.base_mat)
        applied[6] = self.gripper_cmd
        return applied

    def command_joints(self, action: np.ndarray, period_s: float) -> np.ndarray:
        """Absolute joint targets (clipped to the limits and the joint speed cap) + gripper."""
        a = np.asarray(action, dtype=np.float64)
        n = len(self.q_cmd)
        q = np.clip(a[:n], self.ik.lower, self.ik.upper)
        max_step = self.settings.ik.max_joint_speed * period_s
        q = self.q_cmd + np.clip(q - self.q_cmd, -max_step, max_step)
        self._set_next(q)
        self.target_pos, self.target_mat = self.ik.forward(q)
        self.gripper_cmd = _clip01(a[n])
        return np.concatenate([q, [self.gripper_cmd]])

    def _set_next(self, q: np.ndarray) -> None:
        self._q_prev = self.q_cmd
        self.q_cmd = np.asarray(q, dtype=np.float64)

    # ----- physics -----------------------------------------------------------------------------
    def advance(self, period_s: float) -> int:
        """Run the physics substeps of one tick; returns how many steps ran."""
        m, d, idx, st = self.model, self.data, self.index, self.settings
        dt = float(m.opt.timestep)
        self._time_debt += period_s
        n = max(0, int(math.floor(self._time_debt / dt + 0.5)))
        self._time_debt -= n * dt
        if n == 0:
            return 0
        q0, q1 = self._q_prev, self.q_cmd
        vel = (q1 - q0) / (n * dt)
        finger_goal = self.gripper_cmd * FINGER_TRAVEL_M
        done = 0
        halted = False
        while done < n:
            if not halted and self.halt is not None and self.halt.is_set():
                q0 = q1 = self._freeze(q0 + (done / n) * (q1 - q0))
                vel = np.zeros_like(vel)
                halted = True
            k = min(st.chunk_steps, n - done)
            alpha = (done + k) / n
            d.ctrl[idx.arm_actuators] = q0 + alpha * (q1 - q0)
            d.ctrl[idx.arm_velocity_actuators] = vel
            g = float(d.ctrl[idx.gripper_actuator])
            step = st.finger_speed * k * dt
            d.ctrl[idx.gripper_actuator] = g + max(-step, min(step, finger_goal - g))
            mujoco.mj_step(m, d, k)
            done += k
        d.ctrl[idx.arm_velocity_actuators] = 0.0
        self._q_prev = self.q_cmd  # holding: the reference stays where the tick ended
        mujoco.mj_forward(m, d)  # positions, contacts and sensors consistent with qpos
        return n


    def _freeze(self, q: np.ndarray) -> np.ndarray:
        """Emergency hold: the reference, the previous reference and the TCP target all become
        ``q`` (so later hold commands keep it); the gripper keeps its command (opens nothing)."""
        q = np.array(q, dtype=np.float64)
        self.q_cmd, self._q_prev = q, q.copy()
        self.target_pos, self.target_mat = self.ik.forward(q)
        return q


def _clip01(x: float) -> float:
    x = float(x)
    return 0.0 if not math.isfinite(x) else min(1.0, max(0.0, x))
