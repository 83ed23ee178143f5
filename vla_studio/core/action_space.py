"""Action spaces a robot can accept, and what "hold position" means in each.

Two kinds, as in Open X-Embodiment style datasets:

* ``ee_delta``: ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``, an end-effector displacement per
  control step in the robot base frame (metres, radians) and an absolute gripper command
  (1 = open, 0 = closed).
* ``joint_position``: absolute joint targets (radians) followed by the gripper command.
"""

from __future__ import annotations

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

    def hold_action(self, state: Mapping[str, np.ndarray], last_sent: np.ndarray | None) -> np.ndarray:
        """The action that holds the current pose and leaves the gripper as last commanded.

        A controlled stop must "open nothing": the gripper keeps its last command, or, before any
        command was sent, its measured opening.
        """
        if last_sent is not None and last_sent.shape == (self.dim,) and np.isfinite(last_sent[-1]):
            gripper = float(last_sent[-1])
        elif STATE_GRIPPER in state:
            gripper = float(np.asarray(state[STATE_GRIPPER]).reshape(-1)[0])
        else:
            gripper = 1.0
        action = np.zeros(self.dim, dtype=np.float64)
        if self.kind == JOINT_POSITION:
            action[:-1] = np.asarray(state[STATE_JOINT_POS], dtype=np.float64)[: self.dim - 1]
        action[-1] = gripper
        return action
