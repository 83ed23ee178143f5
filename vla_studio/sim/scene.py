"""The tabletop scene: where the MJCF lives, the names the code relies on, and their indices.

The MJCF (``resources/scenes/tabletop.xml``) and this module form one contract: the arm's joint
and actuator names, the tool-centre-point site, the finger pads, the cubes, the bowl and the
distractors. :class:`SceneIndex` resolves every name once, so the hot paths (control ticks,
success checks, rendering) work with integer addresses, and a scene file that breaks the contract
fails at load time with a message naming what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from vla_studio.paths import resource

ARM_JOINTS = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "joint7")
FINGER_JOINTS = ("finger_left", "finger_right")
GRIPPER_ACTUATOR = "gripper"
FINGER_TRAVEL_M = 0.04  # per finger; 8 cm maximum opening
TCP_SITE = "tcp"
BASE_BODY = "base"
HAND_BODY = "hand"
FINGER_PADS = ("left_pad", "right_pad")
FINGER_GEOMS = ("left_knuckle", "left_pad", "right_knuckle", "right_pad")
TABLE_GEOM = "table_top"

COLOURS = ("red", "green", "blue", "yellow")
CUBE_HALF_M = 0.02
BOWL = "bowl"
BOWL_OUTER_RADIUS_M = 0.081
BOWL_INNER_RADIUS_M = 0.070  # at the rim
BOWL_HEIGHT_M = 0.0515
DISTRACTORS = ("distractor_box", "distractor_can")
CAMERAS = ("front", "wrist", "side")

# Joint angles of the start pose: TCP about 0.46 m in front of the base, 0.31 m above the table,
# gripper pointing down with its fingers closing along the base y axis.
HOME_JOINTS = np.array([0.0, -0.25, 0.0, -2.35, 0.0, 2.1, 0.785])


def cube_name(colour: str) -> str:
    """Body (and geom) name of the cube of ``colour``."""
    return f"cube_{colour}"


def default_scene_path() -> Path:
    return resource("scenes", "tabletop.xml")


class SceneError(RuntimeError):
    """The scene file is missing, invalid, or does not have the names the simulator needs."""


def load_model(path: str | Path | None = None) -> mujoco.MjModel:
    """Compile the MJCF scene (the built-in tabletop when ``path`` is empty).

    Raises:
        SceneError: the file does not exist or MuJoCo cannot compile it.
    """
    path = Path(path).expanduser() if path else default_scene_path()
    if not path.is_file():
        raise SceneError(f"scene file {path} does not exist; leave 'scene' empty for the built-in "
                         "tabletop or give the path of an MJCF file")
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except ValueError as exc:
        raise SceneError(f"scene file {path} cannot be compiled by MuJoCo: {exc}") from None


@dataclass(frozen=True)
class ObjectAddress:
    """Where a free-floating object lives in the model and the state vectors."""

    name: str
    body: int
    geom: int  # its first geom (the one coloured and used for contacts)
    qpos: int  # address of its 7 free-joint coordinates (x, y, z, qw, qx, qy, qz)
    dof: int  # address of its 6 velocity coordinates


@dataclass(frozen=True)
class SceneIndex:
    """Integer addresses of every named element the simulator uses.

    Build it with :meth:`from_model`; all arrays are read-only.
    """

    arm_qpos: np.ndarray
    arm_dof: np.ndarray
    arm_actuators: np.ndarray  # position servos
    arm_velocity_actuators: np.ndarray  # velocity feed-forward servos
    joint_lower: np.ndarray
    joint_upper: np.ndarray
    finger_qpos: np.ndarray
    gripper_actuator: int
    tcp_site: int
    base_body: int
    hand_body: int
    pad_geoms: tuple[int, int]
    finger_geoms: frozenset[int]
    table_geom: int
    cubes: dict[str, ObjectAddress]  # by colour
    bowl: ObjectAddress
    distractors: dict[str, ObjectAddress]
    bowl_geoms: frozenset[int]
    cameras: dict[str, int]

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> "SceneIndex":
        """Resolve every name; raises SceneError listing the names the model lacks."""
        missing: list[str] = []

        def ident(kind: mujoco.mjtObj, name: str) -> int:
            i = mujoco.mj_name2id(model, kind, name)
            if i < 0:
                missing.append(f"{kind.name.removeprefix('mjOBJ_').lower()} '{name}'")
            return i

        joints = [ident(mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        fingers = [ident(mujoco.mjtObj.mjOBJ_JOINT, n) for n in FINGER_JOINTS]
        actuators = [ident(mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in ARM_JOINTS]
        vel_actuators = [ident(mujoco.mjtObj.mjOBJ_ACTUATOR, f"{n}_vel") for n in ARM_JOINTS]
        gripper = ident(mujoco.mjtObj.mjOBJ_ACTUATOR, GRIPPER_ACTUATOR)
        tcp = ident(mujoco.mjtObj.mjOBJ_SITE, TCP_SITE)
        base = ident(mujoco.mjtObj.mjOBJ_BODY, BASE_BODY)
        hand = ident(mujoco.mjtObj.mjOBJ_BODY, HAND_BODY)
        pads = [ident(mujoco.mjtObj.mjOBJ_GEOM, n) for n in FINGER_PADS]
        finger_geoms = [ident(mujoco.mjtObj.mjOBJ_GEOM, n) for n in FINGER_GEOMS]
        table = ident(mujoco.mjtObj.mjOBJ_GEOM, TABLE_GEOM)
        cams = {n: ident(mujoco.mjtObj.mjOBJ_CAMERA, n) for n in CAMERAS}

        def obj(name: str) -> ObjectAddress:
            body = ident(mujoco.mjtObj.mjOBJ_BODY, name)
            joint = ident(mujoco.mjtObj.mjOBJ_JOINT, name)
            if body < 0 or joint < 0:
                return ObjectAddress(name, -1, -1, -1, -1)
            if model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_FREE:
                missing.append(f"free joint '{name}' (it is not a free joint)")
            geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body]
            return ObjectAddress(name, body, geoms[0] if geoms else -1,
                                 int(model.jnt_qposadr[joint]), int(model.jnt_dofadr[joint]))

        cubes = {c: obj(cube_name(c)) for c in COLOURS}
        bowl = obj(BOWL)
        distractors = {n: obj(n) for n in DISTRACTORS}
        if missing:
            raise SceneError("the scene lacks elements the simulator needs: " + ", ".join(missing))
        bowl_geoms = frozenset(g for g in range(model.ngeom) if model.geom_bodyid[g] == bowl.body)

        def ro(values: list[int] | np.ndarray, dtype: type = np.int64) -> np.ndarray:
            arr = np.array(values, dtype=dtype)
            arr.flags.writeable = False
            return arr

        return cls(
            arm_qpos=ro([model.jnt_qposadr[j] for j in joints]),
            arm_dof=ro([model.jnt_dofadr[j] for j in joints]),
            arm_actuators=ro(actuators),
            arm_velocity_actuators=ro(vel_actuators),
            joint_lower=ro([model.jnt_range[j][0] for j in joints], np.float64),
            joint_upper=ro([model.jnt_range[j][1] for j in joints], np.float64),
            finger_qpos=ro([model.jnt_qposadr[j] for j in fingers]),
            gripper_actuator=gripper,
            tcp_site=tcp,
            base_body=base,
            hand_body=hand,
            pad_geoms=(pads[0], pads[1]),
            finger_geoms=frozenset(finger_geoms),
            table_geom=table,
            cubes=cubes,
            bowl=bowl,
            distractors=distractors,
            bowl_geoms=bowl_geoms,
            cameras=cams,
        )

    @property
    def objects(self) -> dict[str, ObjectAddress]:
        """Every movable object by body name (cubes, bowl, distractors)."""
        out = {a.name: a for a in self.cubes.values()}
        out[self.bowl.name] = self.bowl
        out.update(self.distractors)
        return out
