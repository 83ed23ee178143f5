"""The simulated world: one MuJoCo model and state, its controller, and a registry by name.

```
 control-loop thread (owner)                        camera capture threads
 SimWorld.reset / step_* / observation ...          find_world(name).snapshot()
   mutates the live MjData, then publishes  ---->   WorldSnapshot (immutable qpos copy, sim time,
   a WorldSnapshot under a short lock               appearance) -> own MjData -> render
```
Only the thread that owns the simulation (the station's control loop, or whoever drives a world
directly in tests and benchmarks) touches the live ``MjData``. Everyone else sees snapshots.

The robot device publishes its world under a name at connect (:func:`publish_world`); simulated
cameras look it up by that name (:func:`find_world`), so robot and cameras stay separate devices
in the station profile.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Callable

import mujoco
import numpy as np

from vla_studio.sim.arm import ArmController, ArmSettings
from vla_studio.sim.layout import Appearance, Layout, LayoutSettings, apply_layout, sample_layout
from vla_studio.sim.rotations import mat_to_quat
from vla_studio.sim.scene import ARM_JOINTS, CUBE_HALF_M, FINGER_TRAVEL_M, SceneIndex, cube_name

log = logging.getLogger(__name__)

SETTLE_S = 0.06  # physics time after a reset: objects start 0.5 mm above their rest, this settles them
# The reference orientation of the TCP (pointing down, fingers closing along the base y axis):
# reported quaternions are kept in its hemisphere so they never flip sign near the start pose.
REFERENCE_QUAT = np.array([0.0, 1.0, 0.0, 0.0])


@dataclass(frozen=True)
class WorldSnapshot:
    """What a renderer needs to draw the world at one instant (immutable).

    Attributes:
        qpos: generalized positions (read-only copy).
        time: simulated time, seconds.
        tick: control ticks since the world was created.
        appearance: light and colour parameters of the current episode.
    """

    qpos: np.ndarray
    time: float
    tick: int
    appearance: Appearance


class WorldState:
    """Read-only queries on one simulation state (positions in the robot base frame).

    :class:`SimWorld` is the live state; :meth:`SimWorld.replica` builds one from a snapshot on
    another thread (success checks off the control loop), with its own ``MjData``.

    Args:
        model: the compiled scene.
        index: resolved names.
        data: the state to query (positions, contacts).
        base_pos, base_mat: pose of the robot base in the world frame.
        initial_positions: object positions at the start of the episode (base frame).
    """

    def __init__(self, model: mujoco.MjModel, index: SceneIndex, data: mujoco.MjData,
                 base_pos: np.ndarray, base_mat: np.ndarray,
                 initial_positions: dict[str, np.ndarray] | None = None) -> None:
        self.model, self.index, self.data = model, index, data
        self.base_pos, self.base_mat = base_pos, base_mat
        self.initial_positions: dict[str, np.ndarray] = initial_positions or {}

    @property
    def sim_time(self) -> float:
        return float(self.data.time)

    def to_base(self, pos: np.ndarray, mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A world-frame pose expressed in the robot base frame."""
        return self.base_mat.T @ (pos - self.base_pos), self.base_mat.T @ mat

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured TCP position and rotation matrix in the base frame."""
        site = self.index.tcp_site
        return self.to_base(self.data.site_xpos[site], self.data.site_xmat[site].reshape(3, 3))

    def gripper_opening(self) -> float:
        """Finger opening, 1 = fully open, 0 = closed."""
        opening = float(np.mean(self.data.qpos[self.index.finger_qpos]))
        return min(1.0, max(0.0, opening / FINGER_TRAVEL_M))

    def object_pos(self, name: str) -> np.ndarray:
        """Centre of object ``name`` (body name, e.g. ``cube_red``) in the base frame."""
        body = self.index.objects[name].body
        return self.base_mat.T @ (self.data.xpos[body] - self.base_pos)

    def object_mat(self, name: str) -> np.ndarray:
        body = self.index.objects[name].body
        return self.base_mat.T @ self.data.xmat[body].reshape(3, 3)

    def cube_pos(self, colour: str) -> np.ndarray:
        return self.object_pos(cube_name(colour))

    def cube_yaw(self, colour: str) -> float:
        """Heading of the cube's side faces, folded to [-pi/4, pi/4) (a cube looks the same every
        quarter turn). For a tilted cube, the axis closest to vertical is taken as up."""
        mat = self.object_mat(cube_name(colour))
        axis = max(range(3), key=lambda k: abs(mat[2, k]))
        side = mat[:, (axis + 1) % 3]
        yaw = math.atan2(side[1], side[0])
        return (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4

    def contacts(self) -> np.ndarray:
        """Geom id pairs ``(ncon, 2)`` of the current contacts."""
        return self.data.contact.geom[: self.data.ncon]

    def touching(self, geom: int, others: frozenset[int] | set[int]) -> bool:
        """Whether ``geom`` is in contact with any geom of ``others``."""
        for a, b in self.contacts():
            if (a == geom and b in others) or (b == geom and a in others):
                return True
        return False

    def touches_gripper(self, name: str) -> bool:
        """Whether object ``name`` touches any finger geom."""
        return self.touching(self.index.objects[name].geom, self.index.finger_geoms)

    def grasped(self, name: str) -> bool:
        """Whether object ``name`` is pinched between both finger pads."""
        geom = self.index.objects[name].geom
        left, right = self.index.pad_geoms
        return self.touching(geom, {left}) and self.touching(geom, {right})

    def resting_on_table(self, name: str, tolerance: float = 0.006) -> bool:
        """Whether a cube sits flat on the table (its centre half its size above it)."""
        return abs(float(self.object_pos(name)[2]) - CUBE_HALF_M) < tolerance


class SimWorld(WorldState):
    """The live MuJoCo tabletop with its arm controller.

    Args:
        model: the compiled scene.
        layout_settings: how episodes are randomised.
        arm_settings: controller tuning.
    """

    def __init__(self, model: mujoco.MjModel, layout_settings: LayoutSettings | None = None,
                 arm_settings: ArmSettings | None = None) -> None:
        index = SceneIndex.from_model(model)
        data = mujoco.MjData(model)
        super().__init__(model, index, data, np.zeros(3), np.eye(3))
        self.layout_settings = layout_settings or LayoutSettings()
        self.arm = ArmController(model, data, index, arm_settings)
        self.layout: Layout | None = None
        self.ticks = 0
        self._snapshot_lock = threading.Lock()
        self._snapshot: WorldSnapshot | None = None

    # ----- episodes ----------------------------------------------------------------------------
    def reset(self, seed: int, accept: Callable[[Layout], bool] | None = None) -> Layout:
        """Sample the layout of ``seed`` (with a task's constraint), place everything, let the
        objects settle with the arm holding its start pose, and publish a snapshot."""
        layout = sample_layout(seed, self.model, self.layout_settings, accept)
        apply_layout(self.model, self.data, self.index, layout)
        self.arm.reset()
        self.base_pos, self.base_mat = self.arm.base_pos, self.arm.base_mat
        settle = int(round(SETTLE_S / self.model.opt.timestep))
        mujoco.mj_step(self.model, self.data, settle)
        mujoco.mj_forward(self.model, self.data)
        self.arm.reset()
        self.layout = layout
        self.initial_positions = {n: self.object_pos(n) for n in self.index.objects}
        self.publish()
        return layout

    # ----- commands (owner thread) ---------------------------------------------------------------
    def step_ee_delta(self, action: np.ndarray, period_s: float) -> np.ndarray:
        """Apply an end-effector delta for one tick of ``period_s``; returns the applied action."""
        applied = self.arm.command_ee_delta(action, period_s)
        self._advance(period_s)
        return applied

    def step_joints(self, action: np.ndarray, period_s: float) -> np.ndarray:
        """Apply absolute joint targets + gripper for one tick; returns the applied action."""
        applied = self.arm.command_joints(action, period_s)
        self._advance(period_s)
        return applied

    def _advance(self, period_s: float) -> None:
        self.arm.advance(period_s)
        self.ticks += 1
        self.publish()

    def observation(self) -> dict[str, np.ndarray]:
        """Robot state in the base frame (float32): joint_pos, joint_vel, ee_pos, ee_quat
        (w, x, y, z, in the hemisphere of the start orientation so it never flips sign near
        it), gripper (1 = open)."""
        d, idx = self.data, self.index
        pos, mat = self.tcp_pose()
        quat = mat_to_quat(mat)
        if float(np.dot(quat, REFERENCE_QUAT)) < 0.0:
            quat = -quat
        return {
            "joint_pos": d.qpos[idx.arm_qpos].astype(np.float32),
            "joint_vel": d.qvel[idx.arm_dof].astype(np.float32),
            "ee_pos": pos.astype(np.float32),
            "ee_quat": quat.astype(np.float32),
            "gripper": np.array([self.gripper_opening()], dtype=np.float32),
        }

    # ----- snapshots (any thread) ----------------------------------------------------------------
    def publish(self) -> None:
        """Publish the current state for renderers and replicas (owner thread)."""
        qpos = self.data.qpos.copy()
        qpos.flags.writeable = False
        appearance = self.layout.appearance if self.layout else Appearance.of_model(self.model)
        snap = WorldSnapshot(qpos, float(self.data.time), self.ticks, appearance)
        with self._snapshot_lock:
            self._snapshot = snap

    def snapshot(self) -> WorldSnapshot | None:
        """The latest published state (None before the first reset). Any thread."""
        with self._snapshot_lock:
            return self._snapshot

    def new_data(self) -> mujoco.MjData:
        """A fresh ``MjData`` of this world's model (for replicas on other threads)."""
        return mujoco.MjData(self.model)

    def replica(self, data: mujoco.MjData | None = None) -> WorldState | None:
        """A read-only copy of the latest published state, for queries from another thread
        (positions and contacts are recomputed in ``data``, a private ``MjData``)."""
        snap = self.snapshot()
        if snap is None:
            return None
        data = data if data is not None else mujoco.MjData(self.model)
        data.qpos[:] = snap.qpos
        data.time = snap.time
        mujoco.mj_forward(self.model, data)
        return WorldState(self.model, self.index, data, self.base_pos, self.base_mat,
                          self.initial_positions)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return ARM_JOINTS


# ----- registry: robots publish their world, cameras find it ---------------------------------
_registry_lock = threading.Lock()
_worlds: dict[str, SimWorld] = {}


def publish_world(name: str, world: SimWorld) -> None:
    """Make ``world`` findable as ``name``.

    The newest world takes the name over (with a warning when another is still published):
    when the application swaps stations, the new one starts before the old one closes, and the
    cameras that rendered the old world notice the change and reconnect to the new one.
    """
    with _registry_lock:
        other = _worlds.get(name)
        _worlds[name] = world
    if other is not None and other is not world:
        log.warning("sim world %r replaced by a newer simulation; cameras follow the newer one",
                    name)


def withdraw_world(name: str, world: SimWorld) -> None:
    """Remove ``world`` from the registry (no-op when another world took the name)."""
    with _registry_lock:
        if _worlds.get(name) is world:
            del _worlds[name]


def find_world(name: str) -> SimWorld | None:
    """The world published as ``name``, or None."""
    with _registry_lock:
        return _worlds.get(name)


def world_names() -> list[str]:
    with _registry_lock:
        return sorted(_worlds)
