"""Action spaces a robot can accept, and what "hold position" means in each.

Two kinds, as in Open X-Embodiment style datasets:

* ``ee_delta``: ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``, an end-effector displacement per
  control step in the robot base frame (metres, radians) and an absolute gripper command
  (1 = open, 0 = closed).
* ``joint_position``: absolute joint targets (radians) followed by the gripper command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from vla_studio.core.types import Feature

EE_DELTA = "ee_delta"
JOINT_POSITION = "joint_position"
ACTION_KINDS = (EE_DELTA, JOINT_POSITION)
EE_DELTA_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")

# Observation state keys the safety filter and the hold action rely on.
STATE_EE_POS = "ee_pos"
STATE_JOINT_POS = "joint_pos"
STATE_GRIPPER = "gripper"


@dataclass(frozen=True)
class JointLimits:
    """What a robot's spec says its joints may do (radians, rad/s), in action order.

    Attributes:
        names: joint names, as in the joint-position action space.
        lower: lowest position of each joint.
        upper: highest position of each joint.
        max_velocity: top speed of each joint; the safety filter turns it into a per-step cap.
    """

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_velocity: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        for field_name in ("lower", "upper", "max_velocity"):
            values = getattr(self, field_name)
            if len(values) != n:
                raise ValueError(f"joint limits: {field_name} has {len(values)} values for {n} "
                                 f"joints {self.names}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"joint limits: {field_name} {values} must be finite numbers")
        bad = [name for name, lo, hi in zip(self.names, self.lower, self.upper) if lo >= hi]
        if bad:
            raise ValueError(f"joint limits: lower must be below upper for {', '.join(bad)}")
        if any(v <= 0 for v in self.max_velocity):
            raise ValueError(f"joint limits: max_velocity {self.max_velocity} must be positive")


@dataclass(frozen=True)
class ActionSpace:
    """The layout of the action vector a robot accepts.

    Attributes:
        kind: ``"ee_delta"`` or ``"joint_position"``.
        names: one name per element; the gripper command is always last.
    """

    kind: str
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}; allowed: {', '.join(ACTION_KINDS)}")
        if self.kind == EE_DELTA and self.names != EE_DELTA_NAMES:
            raise ValueError(f"ee_delta actions are named {EE_DELTA_NAMES}, got {self.names}")

    @classmethod
    def ee_delta(cls) -> "ActionSpace":
        return cls(EE_DELTA, EE_DELTA_NAMES)

    @classmethod
    def joint_position(cls, joint_names: tuple[str, ...]) -> "ActionSpace":
        return cls(JOINT_POSITION, tuple(joint_names) + ("gripper",))

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def gripper_index(self) -> int:
        return self.dim - 1

    @property
    def feature(self) -> Feature:
        return Feature("float32", (self.dim,), self.names)

    @property
    def required_state(self) -> str:
        """The state key the safety filter needs to make an action safe in this space."""
        return STATE_JOINT_POS if self.kind == JOINT_POSITION else STATE_EE_POS

    def state_problem(self, state: Mapping[str, object]) -> str:
        """Why ``state`` cannot be used to make a command safe, or "" when it can.

        End-effector deltas need a finite ``ee_pos`` (3) to keep the workspace box; joint
        targets need a finite ``joint_pos`` (one per joint) to cap the step. Never raises.
        """
        key = self.required_state
        need = 3 if self.kind == EE_DELTA else self.dim - 1
        if key not in state or state[key] is None:
            return (f"the robot state has no '{key}' ({self.kind} actions need it to be made "
                    f"safe); the robot is held: check the driver's get_observation()")
        try:
            value = np.asarray(state[key], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            return f"the robot state '{key}' is not numeric; the robot is held"
        if value.size < need:
            return (f"the robot state '{key}' has {value.size} values, {self.kind} actions need "
                    f"{need}; the robot is held")
        if not np.all(np.isfinite(value[:need])):
            return f"the robot state '{key}' is not finite ({value[:need]}); the robot is held"
        return ""

    def hold_action(self, state: Mapping[str, np.ndarray], last_sent: np.ndarray | None) -> np.ndarray:
        """The action that holds the current pose and leaves the gripper as last commanded.

        A controlled stop must "open nothing": the gripper keeps its last command, or, before any
        command was sent, its measured opening (open, 1, when the robot reports none). Joint
        targets hold the measured position, or the last commanded one when the state has no
        finite ``joint_pos``.

        Raises:
            ValueError: no finite hold exists (joint-position mode without a valid measured or
                commanded position); the caller must stop the robot another way.
        """
        last = None
        if last_sent is not None:
            last = np.asarray(last_sent, dtype=np.float64).reshape(-1)
            if last.shape != (self.dim,):
                last = None
        if last is not None and math.isfinite(last[-1]):
            gripper = float(last[-1])
        elif STATE_GRIPPER in state:
            gripper = float(np.asarray(state[STATE_GRIPPER], dtype=np.float64).reshape(-1)[0])
        else:
            gripper = 1.0
        if not math.isfinite(gripper):
            raise ValueError("cannot hold: the gripper was never commanded and its measured "
                             "opening is not finite")
        action = np.zeros(self.dim, dtype=np.float64)
        if self.kind == JOINT_POSITION:
            if not self.state_problem(state):
                q = np.asarray(state[STATE_JOINT_POS], dtype=np.float64).reshape(-1)
                action[:-1] = q[: self.dim - 1]
            elif last is not None and np.all(np.isfinite(last[:-1])):
                action[:-1] = last[:-1]
            else:
                raise ValueError("cannot hold: no finite joint position was measured or "
                                 "commanded yet")
        action[-1] = gripper
        return action
