"""The command gate: the last check between every action source and the robot.

```
 source -> arbiter (watchdogs) -> ActionFilter (guards, clips, caps) -> CommandGate -> robot
```
The :class:`~vla_studio.core.safety.ActionFilter` *makes* a command safe; the gate *proves* it,
independently, right before ``send_action``: the command is finite, has the action space's
shape, and lies inside the bounds the profile and the robot's spec give this action space,
measured from a valid state. Anything else (a filter bug, a source that bypassed it, a state
that turned NaN) holds the tick, raises ``GATE_REJECTED`` and is counted. The gate never
changes a command: it only lets it through or refuses it.

Bounds, per action space:

* ``ee_delta``: translation norm <= min(max_delta_translation, max_linear_velocity * T), rotation
  norm <= min(max_delta_rotation, max_angular_velocity * T), and the target ``ee_pos + delta``
  no further outside the workspace box than the current pose (inside it when the pose is).
* ``joint_position``: every joint moves at most its per-step cap (profile and robot spec) and
  ends inside its joint limits, or no further outside them than it is now.
* both: the gripper command is in [0, 1].
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from vla_studio.core.action_space import (EE_DELTA, STATE_EE_POS, STATE_JOINT_POS, ActionSpace,
                                          JointLimits)
from vla_studio.core.safety import SafetyLimits, require_joint_limits

# Slack for floating-point rounding in the filter's clips and caps (metres, radians).
TOLERANCE = 1e-9


class CommandGate:
    """Checks the final command of a tick; see the module docstring for the bounds.

    Args:
        limits: the profile's safety limits.
        space: the robot's action space.
        period_s: control period (velocity caps become per-step caps).
        joint_limits: the robot's joint limits (required for joint-position actions).

    Raises:
        ValueError: joint-position actions without (matching) joint limits.
    """

    def __init__(self, limits: SafetyLimits, space: ActionSpace, period_s: float,
                 joint_limits: JointLimits | None = None) -> None:
        self.space = space
        self._ws_lo = np.asarray(limits.workspace_min, dtype=np.float64)
        self._ws_hi = np.asarray(limits.workspace_max, dtype=np.float64)
        self._max_translation = min(limits.max_delta_translation,
                                    limits.max_linear_velocity * period_s)
        self._max_rotation = min(limits.max_delta_rotation, limits.max_angular_velocity * period_s)
        if space.kind != EE_DELTA:
            jl = require_joint_limits(space, joint_limits)
            self._q_lo = np.asarray(jl.lower, dtype=np.float64)
            self._q_hi = np.asarray(jl.upper, dtype=np.float64)
            # Computed here, not taken from the filter: the gate must catch a filter bug.
            speed = np.minimum(limits.max_joint_velocity, np.asarray(jl.max_velocity, np.float64))
            self._joint_cap = np.minimum(limits.max_joint_delta, speed * period_s)

    def state_problem(self, state: Mapping[str, object]) -> str:
        """Why ``state`` cannot bound a command ("" when it can)."""
        return self.space.state_problem(state)

    def check(self, command: object, state: Mapping[str, object]) -> str:
        """Why ``command`` must not reach the robot from ``state``, or "" when it may.

        Never raises: any malformed input is a reason to refuse.
        """
        problem = self.space.state_problem(state)
        if problem:
            return problem
        try:
            a = np.asarray(command, dtype=np.float64)
        except (TypeError, ValueError):
            return f"the command is not numeric ({type(command).__name__})"
        if a.shape != (self.space.dim,):
            return f"the command has shape {a.shape}, the robot takes ({self.space.dim},)"
        if not np.all(np.isfinite(a)):
            return f"the command is not finite ({a})"
        if not 0.0 - TOLERANCE <= a[-1] <= 1.0 + TOLERANCE:
            return f"the gripper command {a[-1]:.4g} is outside [0, 1]"
        if self.space.kind == EE_DELTA:
            return self._check_ee_delta(a, state)
        return self._check_joints(a, state)

    def _check_ee_delta(self, a: np.ndarray, state: Mapping[str, object]) -> str:
        moved = float(np.linalg.norm(a[:3]))
        if moved > self._max_translation + TOLERANCE:
            return (f"the command moves {moved * 1000:.2f} mm in one step, the cap is "
                    f"{self._max_translation * 1000:.2f} mm")
        turned = float(np.linalg.norm(a[3:6]))
        if turned > self._max_rotation + TOLERANCE:
            return (f"the command turns {turned:.4f} rad in one step, the cap is "
                    f"{self._max_rotation:.4f} rad")
        ee = np.asarray(state[STATE_EE_POS], dtype=np.float64).reshape(-1)[:3]
        target = ee + a[:3]
        if _box_distance(target, self._ws_lo, self._ws_hi) > \
                _box_distance(ee, self._ws_lo, self._ws_hi) + TOLERANCE:
            return (f"the command's target {np.round(target, 4)} is outside the workspace box "
                    f"{tuple(self._ws_lo)}..{tuple(self._ws_hi)}")
        return ""

    def _check_joints(self, a: np.ndarray, state: Mapping[str, object]) -> str:
        n = self.space.dim - 1
        q = np.asarray(state[STATE_JOINT_POS], dtype=np.float64).reshape(-1)[:n]
        target = a[:n]
        over = np.abs(target - q) - self._joint_cap
        if np.any(over > TOLERANCE):
            j = int(np.argmax(over))
            return (f"joint {self.space.names[j]} would move {abs(target[j] - q[j]):.4f} rad in "
                    f"one step, the cap is {self._joint_cap[j]:.4f} rad")
        outside_after = np.maximum(self._q_lo - target, 0.0) + np.maximum(target - self._q_hi, 0.0)
        outside_now = np.maximum(self._q_lo - q, 0.0) + np.maximum(q - self._q_hi, 0.0)
        worse = outside_after - outside_now
        if np.any(worse > TOLERANCE):
            j = int(np.argmax(worse))
            return (f"joint {self.space.names[j]} target {target[j]:.4f} rad is outside its "
                    f"limits [{self._q_lo[j]:.4f}, {self._q_hi[j]:.4f}]")
        return ""


def _box_distance(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Euclidean distance from ``p`` to the box [lo, hi] (0 inside)."""
    return float(np.linalg.norm(np.maximum(lo - p, 0.0) + np.maximum(p - hi, 0.0)))
