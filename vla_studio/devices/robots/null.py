"""A robot that accepts actions and does nothing but count them (benchmarks, dry runs)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from vla_studio.core.action_space import EE_DELTA, JOINT_POSITION, ActionSpace, JointLimits
from vla_studio.core.config import option
from vla_studio.core.types import Feature
from vla_studio.devices.base import Robot, RobotConfig

JOINT_NAMES = tuple(f"joint{i}" for i in range(1, 8))
# A generic 7-joint arm spec for joint-position dry runs.
JOINT_LIMITS = JointLimits(JOINT_NAMES, (-2.9,) * 7, (2.9,) * 7, (2.0,) * 7)


@dataclass(frozen=True)
class NullRobotConfig(RobotConfig):
    send_delay_ms: float = option(0.0, min=0.0, help="pretend each send takes this long")


class NullRobot(Robot):
    """Integrates commands into a virtual pose and counts every command.

    End-effector deltas move a virtual TCP; joint-position targets (7 joints, :data:`JOINT_LIMITS`)
    set virtual joints.

    Attributes:
        sends: number of actions received (moves and holds).
        holds: number of hold commands received.
        hold_times: host monotonic time of each hold command (benchmarks read it).
        emergency_times: host monotonic time of each :meth:`emergency_hold` (any thread).
    """

    config_class = NullRobotConfig
    config: NullRobotConfig
    supported_action_kinds = (EE_DELTA, JOINT_POSITION)
    simulated = True

    def __init__(self, config: NullRobotConfig | None = None, action_kind: str = EE_DELTA) -> None:
        super().__init__(config or NullRobotConfig(name="null"), action_kind)
        self._connected = False
        self._pos = np.array([0.4, 0.0, 0.3])
        self._q = np.zeros(len(JOINT_NAMES))
        self._gripper = 1.0
        self.sends = 0
        self.holds = 0
        self.hold_times: list[float] = []
        self.emergency_times: list[float] = []
        self._lock = threading.Lock()

    @property
    def action_space(self) -> ActionSpace:
        if self.action_kind == JOINT_POSITION:
            return ActionSpace.joint_position(JOINT_NAMES)
        return ActionSpace.ee_delta()

    @property
    def joint_limits(self) -> JointLimits:
        return JOINT_LIMITS

    @property
    def observation_features(self) -> dict[str, Feature]:
        features = {"ee_pos": Feature("float32", (3,), ("x", "y", "z"), "m"),
                    "gripper": Feature("float32", (1,), ("opening",))}
        if self.action_kind == JOINT_POSITION:
            features["joint_pos"] = Feature("float32", (len(JOINT_NAMES),), JOINT_NAMES, "rad")
        return features

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def get_observation(self) -> dict[str, np.ndarray]:
        obs = {"ee_pos": self._pos.astype(np.float32),
               "gripper": np.array([self._gripper], np.float32)}
        if self.action_kind == JOINT_POSITION:
            obs["joint_pos"] = self._q.astype(np.float32)
        return obs

    def _send(self, action: np.ndarray) -> np.ndarray:
        if self.config.send_delay_ms:
            time.sleep(self.config.send_delay_ms / 1000.0)
        if self.action_kind == JOINT_POSITION:
            self._q = np.array(action[:-1], dtype=np.float64)
        else:
            self._pos = self._pos + action[:3]
        self._gripper = float(action[-1])
        with self._lock:
            self.sends += 1
        return action

    def _emergency_hold(self) -> None:
        """Only records the time: the base class turns every later command into a hold."""
        t = time.monotonic()
        with self._lock:
            self.emergency_times.append(t)
            del self.emergency_times[:-10000]

    def hold(self, state: Mapping[str, np.ndarray]) -> np.ndarray:
        t = time.monotonic()
        with self._lock:
            self.holds += 1
            self.hold_times.append(t)
            del self.hold_times[:-10000]
        return super().hold(state)
