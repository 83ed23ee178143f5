"""Robot kind ``sim``: the 7-DoF arm of the built-in MuJoCo tabletop.

Actions: ``ee_delta`` (``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in the base frame, tracked
by differential IK that respects joint limits) or ``joint_position`` (seven joint targets +
gripper). Each command advances physics by exactly one control period, in 2 ms substeps; holding
keeps physics running. Observation state: ``joint_pos``, ``joint_vel`` (7), ``ee_pos`` (3, metres,
base frame), ``ee_quat`` (4, w x y z, base frame), ``gripper`` (1 = open, 0 = closed, measured).

At connect the robot publishes its :class:`~vla_studio.sim.world.SimWorld` under ``world``;
``sim`` cameras with the same ``world`` render it. Episodes are deterministic for their seed: the
first uses ``seed``, each later reset without a seed uses the next integer.

``push_speed`` / ``push_turn`` make the simulator push the arm off its path now and then (seeded
per episode, see :mod:`vla_studio.sim.disturbance`): demonstrations recorded that way show the
expert recovering, while the recorded actions stay the commands it sent.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from vla_studio.core.action_space import EE_DELTA, JOINT_POSITION, ActionSpace, JointLimits
from vla_studio.core.config import option
from vla_studio.core.types import Feature
from vla_studio.devices.base import DeviceError, Robot, RobotConfig
from vla_studio.sim.arm import ArmSettings
from vla_studio.sim.disturbance import Disturbance, DisturbanceSettings
from vla_studio.sim.ik import IKSettings
from vla_studio.sim.layout import Layout, LayoutError, LayoutSettings
from vla_studio.sim.scene import (ARM_JOINTS, COLOURS, CUBE_HALF_M, SceneError, SceneIndex,
                                  cube_name, load_model)
from vla_studio.sim.tasks import GRASP_CLEARANCE_M, Task, UnknownInstruction, parse_instruction
from vla_studio.sim.world import SimWorld, publish_world, withdraw_world

log = logging.getLogger(__name__)

JOINT_NAMES = ARM_JOINTS  # fixed by the scene contract, so features are known before connect


@dataclass(frozen=True)
class SimRobotConfig(RobotConfig):
    """The ``[robot]`` table of a station with ``type = "sim"``."""

    scene: str = option("", help="MJCF scene file; empty = the built-in tabletop")
    world: str = option("sim", help="name sim cameras use to find this simulation")
    seed: int = option(0, min=0, max=2**32 - 1,
                       help="layout seed of the first episode (later ones count up)")
    distractors: int = option(0, min=0, max=2, help="neutral distractor objects on the table")
    arm_jitter: float = option(0.03, min=0.0, max=0.3, help="random start joint offsets, radians")
    light_jitter: bool = option(False, help="vary the lights between episodes")
    colour_jitter: bool = option(False, help="vary object and table colours slightly")
    max_joint_speed: float = option(2.0, min=0.1, max=4.0, help="joint speed cap of the IK, rad/s")
    push_speed: float = option(0.0, min=0.0, max=0.3,
                               help="DART-style demos: push the arm off its path now and then, "
                                    "at up to this speed, m/s (0: never; ee_delta only)")
    push_turn: float = option(0.0, min=0.0, max=2.0,
                              help="... and turn it about the vertical by up to this rate, rad/s")
    push_rate: float = option(0.4, min=0.0, max=5.0, help="pushes per second, on average")


class SimRobot(Robot):
    """The simulated tabletop arm (MuJoCo), with task-aware episode resets and success checks."""

    config_class = SimRobotConfig
    config: SimRobotConfig
    supported_action_kinds = (EE_DELTA, JOINT_POSITION)
    simulated = True

    def __init__(self, config: SimRobotConfig | None = None, action_kind: str = EE_DELTA) -> None:
        super().__init__(config or SimRobotConfig(name="sim"), action_kind)
        self._world: SimWorld | None = None
        self._next_seed = self.config.seed
        self.episode_seed: int | None = None
        self.episode_task: str = ""
        self.episode_instruction: str = ""
        self._owner: int | None = None  # thread that steps the world (the control loop)
        self._replica_lock = threading.Lock()
        c = self.config
        self._commanding = False
        self.disturbance = Disturbance(DisturbanceSettings(
            speed=c.push_speed, turn=c.push_turn, rate=c.push_rate))
        self._replica_data = None  # a private MjData for replicas, made on first use
        self._tasks: dict[str, Task | None] = {}
        self._joint_limits: JointLimits | None = None

    # ----- schema ------------------------------------------------------------------------------
    @property
    def action_space(self) -> ActionSpace:
        if self.action_kind == JOINT_POSITION:
            return ActionSpace.joint_position(JOINT_NAMES)
        return ActionSpace.ee_delta()

    @property
    def observation_features(self) -> dict[str, Feature]:
        return {
            "joint_pos": Feature("float32", (7,), JOINT_NAMES, "rad"),
            "joint_vel": Feature("float32", (7,), JOINT_NAMES, "rad/s"),
            "ee_pos": Feature("float32", (3,), ("x", "y", "z"), "m"),
            "ee_quat": Feature("float32", (4,), ("w", "x", "y", "z")),
            "gripper": Feature("float32", (1,), ("opening",)),
        }

    @property
    def joint_limits(self) -> JointLimits:
        """The arm's joint ranges from the MJCF scene; top speed: ``max_joint_speed``.

        Before :meth:`connect` the scene is compiled once to read them (no world is built).
        """
        if self._joint_limits is None:
            world = self._world
            if world is not None:
                index = world.index
            else:
                try:
                    index = SceneIndex.from_model(load_model(self.config.scene or None))
                except SceneError as exc:
                    raise DeviceError(f"sim robot {self.name!r}: {exc}") from None
            speed = float(self.config.max_joint_speed)
            self._joint_limits = JointLimits(
                JOINT_NAMES, tuple(float(v) for v in index.joint_lower),
                tuple(float(v) for v in index.joint_upper), (speed,) * len(JOINT_NAMES))
        return self._joint_limits

    # ----- lifecycle ---------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._world is not None

    @property
    def world(self) -> SimWorld | None:
        """The live world (touch it only on the thread that steps it), None before connect."""
        return self._world

    def connect(self) -> None:
        """Load the scene, reset the first episode and publish the world for sim cameras."""
        if self._world is not None:
            return
        c = self.config
        try:
            model = load_model(c.scene or None)
            world = SimWorld(
                model,
                LayoutSettings(distractors=c.distractors, arm_jitter=c.arm_jitter,
                               light_jitter=c.light_jitter, colour_jitter=c.colour_jitter),
                ArmSettings(ik=IKSettings(max_joint_speed=c.max_joint_speed)))
        except SceneError as exc:
            raise DeviceError(f"sim robot {self.name!r}: {exc}") from None
        self._world = world
        world.arm.halt = self._emergency  # emergency_hold freezes the arm between physics chunks
        self._reset(None, None)
        publish_world(c.world, world)
        log.info("sim robot %r connected (world %r, seed %s)", self.name, c.world, self.episode_seed)

    def disconnect(self) -> None:
        world, self._world = self._world, None
        if world is not None:
            withdraw_world(self.config.world, world)

    # ----- control (loop thread) ---------------------------------------------------------------
    def get_observation(self) -> dict[str, np.ndarray]:
        world = self._require()
        self._owner = threading.get_ident()
        return world.observation()

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._commanding = True  # a command, not a hold: pushes (``push_speed``) may act
        try:
            return super().send_action(action)
        finally:
            self._commanding = False

    def _send(self, action: np.ndarray) -> np.ndarray:
        world = self._require()
        self._owner = threading.get_ident()
        if self.emergency_held:  # hold exactly where the emergency hold froze the reference
            action = np.array(action, dtype=np.float64)
            if self.action_kind == JOINT_POSITION:
                action[:-1] = world.arm.q_cmd
            else:
                action[:6] = 0.0
        if self.action_kind == JOINT_POSITION:
            return world.step_joints(action, self.control_period_s)
        if self._commanding and self.disturbance.settings.active and not self.emergency_held:
            # An external push moves the arm's target; the command (returned, and recorded)
            # stays the one that was sent. Holds and emergency holds are never pushed.
            world.arm.push(self.disturbance.step(self.control_period_s))
        return world.step_ee_delta(action, self.control_period_s)

    def _emergency_hold(self) -> None:
        """Nothing more to do here: the arm controller checks the emergency flag between its
        physics chunks (on the thread that steps the simulation, which is the only one that may
        touch it) and freezes its reference there; no physics runs between ticks."""

    def reset_episode(self, seed: int | None = None) -> None:
        """New episode with a layout for any task (all cubes graspable)."""
        self._reset(seed, None)
        self.episode_instruction = ""

    def prepare_episode(self, instruction: str, seed: int | None = None) -> None:
        """New episode whose layout suits ``instruction`` (a free lane for a push, room to grasp
        the cubes it names); an instruction that names no task gets the general layout."""
        self._reset(seed, self._task(instruction) if instruction else None)
        self.episode_instruction = instruction

    def episode_success(self, instruction: str) -> bool | None:
        """Whether the task of ``instruction`` is accomplished now (None: not a sim task).

        On the thread that steps the simulation the live state is checked; any other thread
        checks a private replica of the latest published state (never the live ``MjData``).
        """
        task = self._task(instruction)
        world = self._world
        if task is None or world is None:
            return None
        if self._owner is None or self._owner == threading.get_ident():
            return bool(task.success(world))
        with self._replica_lock:
            if self._replica_data is None:
                self._replica_data = world.new_data()
            replica = world.replica(self._replica_data)
            return None if replica is None else bool(task.success(replica))

    # ----- helpers -----------------------------------------------------------------------------
    def _require(self) -> SimWorld:
        world = self._world
        if world is None:
            raise DeviceError(f"sim robot {self.name!r} is not connected; connect the station first")
        return world

    def _reset(self, seed: int | None, task: Task | None) -> None:
        world = self._require()
        self._owner = threading.get_ident()
        seed = self._next_seed if seed is None else int(seed)
        try:
            world.reset(seed, accept=task.accepts if task is not None else _general_layout)
        except LayoutError as exc:
            raise DeviceError(f"sim robot {self.name!r}: {exc}") from None
        self._next_seed = seed + 1
        # The scene reset put the arm at its start pose with the fingers open: the last
        # command no longer describes it. Holds until the next command keep the fingers open
        # (as measured) instead of closing them again on the previous episode's grasp, which
        # made an episode's start depend on how the one before it ended.
        self._last_sent = None
        self.episode_seed = seed
        self.disturbance.reset(seed)
        self.episode_task = task.name if task is not None else ""

    def _task(self, instruction: str) -> Task | None:
        """The task an instruction names (cached), or None."""
        if instruction in self._tasks:
            return self._tasks[instruction]
        try:
            task = parse_instruction(instruction)
        except UnknownInstruction as exc:
            log.info("sim robot: %s", exc)
            task = None
        self._tasks[instruction] = task
        return task


def _general_layout(layout: Layout) -> bool:
    """Every cube can be grasped (the layout suits pick, place and stack of any colour)."""
    for colour in COLOURS:
        cube = layout.objects[cube_name(colour)]
        if layout.too_close(cube.name, cube.x, cube.y, CUBE_HALF_M + GRASP_CLEARANCE_M):
            return False
    return True
