"""Randomised initial layouts of the tabletop: object poses, start pose, light and colour jitter.

A :class:`Layout` is plain data sampled from a seed (``numpy.random.default_rng(seed)``), so the
same seed always gives the same scene. Tasks add their own constraints (a free lane for a push,
...) through the ``accept`` predicate of :func:`sample_layout`, which rejection-samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import mujoco
import numpy as np

from vla_studio.sim.scene import (BOWL, BOWL_OUTER_RADIUS_M, COLOURS, CUBE_HALF_M, DISTRACTORS,
                                  FINGER_TRAVEL_M, HOME_JOINTS, SceneIndex, cube_name)


@dataclass(frozen=True)
class ObjectShape:
    """Footprint radius on the table and the height of the body origin when resting."""

    radius: float
    rest_z: float


SHAPES: dict[str, ObjectShape] = {
    **{cube_name(c): ObjectShape(CUBE_HALF_M * math.sqrt(2.0), CUBE_HALF_M) for c in COLOURS},
    BOWL: ObjectShape(BOWL_OUTER_RADIUS_M, 0.0),
    "distractor_box": ObjectShape(0.043, 0.03),
    "distractor_can": ObjectShape(0.026, 0.05),
}
# Unused distractors rest on the floor behind the backdrop, out of every camera's view.
PARKED: dict[str, tuple[float, float, float]] = {
    "distractor_box": (-2.0, 0.5, -0.73),
    "distractor_can": (-2.0, -0.5, -0.71),
}
MATERIALS_JITTERED = ("red", "green", "blue", "yellow", "ceramic", "wood")


@dataclass(frozen=True)
class LayoutSettings:
    """Where objects may go and how much the scene varies between episodes.

    Attributes:
        cube_x, cube_y: region of cube centres, metres (base frame; reachable with the gripper
            pointing down).
        bowl_x, bowl_y: region of the bowl centre.
        gap: minimum free space between object footprints, metres.
        distractors: how many neutral distractor objects join the cubes (0 to 2).
        arm_jitter: start joint angles vary uniformly by up to this much, radians.
        light_jitter: vary light positions and intensities.
        colour_jitter: vary object and table colours slightly (the colour names stay true).
    """

    cube_x: tuple[float, float] = (0.34, 0.62)
    cube_y: tuple[float, float] = (-0.24, 0.24)
    bowl_x: tuple[float, float] = (0.38, 0.58)
    bowl_y: tuple[float, float] = (-0.20, 0.20)
    gap: float = 0.025
    distractors: int = 0
    arm_jitter: float = 0.03
    light_jitter: bool = False
    colour_jitter: bool = False


@dataclass(frozen=True)
class PlacedObject:
    """An object on the table: centre ``(x, y)`` in the base frame and heading ``yaw``."""

    name: str
    x: float
    y: float
    yaw: float

    @property
    def radius(self) -> float:
        return SHAPES[self.name].radius


@dataclass(frozen=True)
class Appearance:
    """Render-only scene parameters (physics never reads them); cameras apply them to their own
    model copy. Arrays are read-only."""

    light_pos: np.ndarray
    light_dir: np.ndarray
    light_diffuse: np.ndarray
    mat_rgba: np.ndarray

    @classmethod
    def of_model(cls, model: mujoco.MjModel) -> "Appearance":
        return cls(*(_frozen(a) for a in (model.light_pos, model.light_dir, model.light_diffuse,
                                          model.mat_rgba)))

    def apply(self, model: mujoco.MjModel) -> None:
        """Write these parameters into ``model`` (a camera's private copy)."""
        model.light_pos[:] = self.light_pos
        model.light_dir[:] = self.light_dir
        model.light_diffuse[:] = self.light_diffuse
        model.mat_rgba[:] = self.mat_rgba


@dataclass(frozen=True)
class Layout:
    """One sampled episode start."""

    seed: int
    objects: dict[str, PlacedObject]
    arm_joints: np.ndarray
    appearance: Appearance
    parked: tuple[str, ...] = field(default=())

    def too_close(self, name: str, x: float, y: float, clearance: float) -> bool:
        """Whether any object other than ``name`` has its footprint within ``clearance`` of
        the point (x, y)."""
        return any(math.hypot(o.x - x, o.y - y) < o.radius + clearance
                   for n, o in self.objects.items() if n != name)


class LayoutError(RuntimeError):
    """No layout satisfying the constraints was found."""


def sample_layout(seed: int, model: mujoco.MjModel, settings: LayoutSettings | None = None,
                  accept: Callable[[Layout], bool] | None = None, max_tries: int = 500) -> Layout:
    """Sample a collision-free layout for ``seed``.

    Args:
        seed: the episode seed; equal seeds give equal layouts.
        model: the scene (its default appearance is the base of the jitter).
        settings: regions and variation.
        accept: extra constraint of a task (rejection sampling).
        max_tries: attempts before giving up.

    Raises:
        LayoutError: the constraints could not be met in ``max_tries`` attempts.
    """
    st = settings or LayoutSettings()
    rng = np.random.default_rng(seed)
    base = Appearance.of_model(model)
    n_distract = max(0, min(st.distractors, len(DISTRACTORS)))
    for _ in range(max_tries):
        placed: dict[str, PlacedObject] = {}
        ok = _place(placed, BOWL, rng, st.bowl_x, st.bowl_y, st.gap)
        for colour in COLOURS:
            ok = ok and _place(placed, cube_name(colour), rng, st.cube_x, st.cube_y, st.gap)
        for name in DISTRACTORS[:n_distract]:
            ok = ok and _place(placed, name, rng, st.cube_x, st.cube_y, st.gap)
        if not ok:
            continue
        arm = HOME_JOINTS + rng.uniform(-st.arm_jitter, st.arm_jitter, len(HOME_JOINTS))
        layout = Layout(seed, placed, _frozen(arm), _jitter(base, rng, model, st),
                        tuple(DISTRACTORS[n_distract:]))
        if accept is None or accept(layout):
            return layout
    raise LayoutError(f"no layout for seed {seed} met the task's constraints in {max_tries} tries; "
                      "widen the object regions or relax the task")


def apply_layout(model: mujoco.MjModel, data: mujoco.MjData, index: SceneIndex,
                 layout: Layout) -> None:
    """Reset ``data`` and put the arm and every object where ``layout`` says (no physics run)."""
    mujoco.mj_resetData(model, data)
    data.qpos[index.arm_qpos] = layout.arm_joints
    data.qpos[index.finger_qpos] = FINGER_TRAVEL_M  # open
    for name, addr in index.objects.items():
        if name in layout.objects:
            o = layout.objects[name]
            pos = (o.x, o.y, SHAPES[name].rest_z + 5e-4)
            quat = (math.cos(o.yaw / 2), 0.0, 0.0, math.sin(o.yaw / 2))
        else:
            pos, quat = PARKED.get(name, (-2.0, 0.0, -0.7)), (1.0, 0.0, 0.0, 0.0)
        data.qpos[addr.qpos:addr.qpos + 3] = pos
        data.qpos[addr.qpos + 3:addr.qpos + 7] = quat
    mujoco.mj_forward(model, data)


def _place(placed: dict[str, PlacedObject], name: str, rng: np.random.Generator,
           xr: tuple[float, float], yr: tuple[float, float], gap: float) -> bool:
    r = SHAPES[name].radius
    for _ in range(60):
        x, y = rng.uniform(*xr), rng.uniform(*yr)
        if all(math.hypot(o.x - x, o.y - y) >= o.radius + r + gap for o in placed.values()):
            placed[name] = PlacedObject(name, float(x), float(y), float(rng.uniform(-math.pi, math.pi)))
            return True
    return False


def _jitter(base: Appearance, rng: np.random.Generator, model: mujoco.MjModel,
            st: LayoutSettings) -> Appearance:
    # Draw the random numbers whether or not jitter is on, so switching it on or off does not
    # change the object layout of a seed.
    pos_noise = rng.uniform(-0.25, 0.25, base.light_pos.shape)
    gain = rng.uniform(0.8, 1.15, (len(base.light_diffuse), 1))
    rgba_noise = rng.uniform(-0.06, 0.06, base.mat_rgba.shape)
    if not (st.light_jitter or st.colour_jitter):
        return base
    light_pos, light_diffuse, mat_rgba = base.light_pos, base.light_diffuse, base.mat_rgba
    if st.light_jitter:
        light_pos = base.light_pos + pos_noise
        light_diffuse = np.clip(base.light_diffuse * gain, 0.0, 1.0)
    if st.colour_jitter:
        mat_rgba = base.mat_rgba.copy()
        for name in MATERIALS_JITTERED:
            i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MATERIAL, name)
            if i >= 0:
                mat_rgba[i, :3] = np.clip(mat_rgba[i, :3] + rgba_noise[i, :3], 0.0, 1.0)
    return Appearance(_frozen(light_pos), base.light_dir, _frozen(light_diffuse), _frozen(mat_rgba))


def _frozen(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out
