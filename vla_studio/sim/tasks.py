"""Language-conditioned tasks of the tabletop: templates, parsing, reset constraints, success.

Four families, every colour combination:

==============  ==========================================  =====================================
family          example instruction                         success (computed live)
==============  ==========================================  =====================================
pick            pick up the red cube                        cube bottom > 5 cm above the table and
                                                            pinched between both finger pads
place_in_bowl   put the red cube in the bowl                cube inside the bowl, released
stack           stack the red cube on the blue cube         red resting on blue (centred, flush),
                                                            released; blue on the table
push            push the red cube to the left               cube slid >= 10 cm towards the side,
                                                            on the table, not held
==============  ==========================================  =====================================

Left and right are the robot's: left is +y of the base frame (the front camera faces the robot,
so the robot's left is on the right of the front image).

Whatever the family, a cube the instruction does not name must stay where it was:
:meth:`Task.wrong_objects` lists the cubes lifted (bottom >= 2 cm above the table, or pinched
between the pads) or moved (centre >= 2 cm from where the episode began). Evaluation counts an
episode in which that happened at any moment as a *wrong-object* episode, even if the cube was
put back.

Every family lists templates and paraphrases; :func:`parse_instruction` accepts each of them (any
case, trailing punctuation, "block" for "cube", an optional "please"). Each family also gives the
layout sampler a constraint (enough room around the cube to grasp it, a free lane to push it).
"""

from __future__ import annotations

import abc
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vla_studio.sim.scene import (BOWL, BOWL_HEIGHT_M, COLOURS, CUBE_HALF_M, cube_name)

if TYPE_CHECKING:
    from vla_studio.sim.layout import Layout
    from vla_studio.sim.world import WorldState

SIDES = ("left", "right")
LIFT_HEIGHT_M = 0.05
PUSH_DISTANCE_M = 0.10
BOWL_SUCCESS_RADIUS_M = 0.058  # cube centre within this of the bowl's axis
GRASP_CLEARANCE_M = 0.045  # free space around a cube the gripper must reach
REACH_Y_M = 0.29  # |y| the gripper reaches at table height across the object region
# A cube other than the instructed one counts as disturbed beyond these (well above what the
# settling of a reset or a brush of the fingers does; well below a grasp or a push).
WRONG_LIFT_M = 0.02
WRONG_MOVE_M = 0.02


@dataclass(frozen=True)
class Task:
    """One concrete task.

    Attributes:
        family: task family name (``pick``, ``place_in_bowl``, ``stack``, ``push``).
        cube: colour of the cube to manipulate.
        other: ``stack`` only: colour of the cube to stack onto.
        side: ``push`` only: ``left`` or ``right`` (the robot's).
    """

    family: str
    cube: str
    other: str = ""
    side: str = ""

    @property
    def name(self) -> str:
        """A stable identifier, e.g. ``stack_red_on_blue``."""
        if self.family == "stack":
            return f"stack_{self.cube}_on_{self.other}"
        if self.family == "push":
            return f"push_{self.cube}_{self.side}"
        return f"{self.family}_{self.cube}"

    @property
    def spec(self) -> "TaskFamily":
        return FAMILIES[self.family]

    def instruction(self, variant: int = 0) -> str:
        """The instruction text of template ``variant`` (0 is the canonical wording)."""
        templates = self.spec.templates
        return templates[variant % len(templates)].format(cube=self.cube, other=self.other,
                                                          side=self.side)

    def instructions(self) -> list[str]:
        """Every wording of this task."""
        return [self.instruction(i) for i in range(len(self.spec.templates))]

    def success(self, world: "WorldState") -> bool:
        return self.spec.success(self, world)

    @property
    def named_cubes(self) -> tuple[str, ...]:
        """Colours of the cubes the instruction names (the task may handle those)."""
        return (self.cube, self.other) if self.other else (self.cube,)

    def wrong_objects(self, world: "WorldState") -> tuple[str, ...]:
        """Colours of the cubes the instruction does not name that are lifted or have moved
        from where the episode began (see the module docstring)."""
        wrong = []
        for colour in COLOURS:
            name = cube_name(colour)
            if colour in self.named_cubes or name not in world.index.objects:
                continue
            pos = world.object_pos(name)
            start = world.initial_positions.get(name)
            lifted = float(pos[2]) - CUBE_HALF_M >= WRONG_LIFT_M or world.grasped(name)
            moved = start is not None and \
                math.hypot(pos[0] - start[0], pos[1] - start[1]) >= WRONG_MOVE_M
            if lifted or moved:
                wrong.append(colour)
        return tuple(wrong)

    def accepts(self, layout: "Layout") -> bool:
        return self.spec.accepts(self, layout)


class TaskFamily(abc.ABC):
    """A family of tasks: wording, reset constraint and success predicate."""

    name: str = ""
    templates: tuple[str, ...] = ()

    @abc.abstractmethod
    def tasks(self) -> list[Task]:
        """Every task of the family (all colour and side combinations)."""

    @abc.abstractmethod
    def success(self, task: Task, world: "WorldState") -> bool:
        """Whether ``task`` is accomplished in the current state of ``world``."""

    def accepts(self, task: Task, layout: "Layout") -> bool:
        """Whether a sampled layout suits ``task`` (default: the cube can be grasped)."""
        return _graspable(layout, cube_name(task.cube))


class PickFamily(TaskFamily):
    name = "pick"
    templates = (
        "pick up the {cube} cube",
        "pick the {cube} cube up",
        "lift the {cube} cube",
        "grab the {cube} block and lift it",
        "raise the {cube} cube off the table",
        "pick up the {cube} block",
    )

    def tasks(self) -> list[Task]:
        return [Task(self.name, c) for c in COLOURS]

    def success(self, task: Task, world: "WorldState") -> bool:
        name = cube_name(task.cube)
        lifted = float(world.object_pos(name)[2]) - CUBE_HALF_M > LIFT_HEIGHT_M
        return lifted and world.grasped(name)


class PlaceInBowlFamily(TaskFamily):
    name = "place_in_bowl"
    templates = (
        "put the {cube} cube in the bowl",
        "place the {cube} cube into the bowl",
        "drop the {cube} block in the bowl",
        "move the {cube} cube into the bowl",
        "put the {cube} block inside the bowl",
    )

    def tasks(self) -> list[Task]:
        return [Task(self.name, c) for c in COLOURS]

    def success(self, task: Task, world: "WorldState") -> bool:
        name = cube_name(task.cube)
        cube, bowl = world.object_pos(name), world.object_pos(BOWL)
        inside = math.hypot(cube[0] - bowl[0], cube[1] - bowl[1]) < BOWL_SUCCESS_RADIUS_M
        below_rim = float(cube[2] - bowl[2]) < BOWL_HEIGHT_M
        return inside and below_rim and not world.touches_gripper(name)


class StackFamily(TaskFamily):
    name = "stack"
    templates = (
        "stack the {cube} cube on the {other} cube",
        "put the {cube} cube on top of the {other} cube",
        "place the {cube} block onto the {other} block",
        "stack the {cube} block on top of the {other} block",
    )

    def tasks(self) -> list[Task]:
        return [Task(self.name, a, other=b) for a in COLOURS for b in COLOURS if a != b]

    def success(self, task: Task, world: "WorldState") -> bool:
        top, bottom = cube_name(task.cube), cube_name(task.other)
        t, b = world.object_pos(top), world.object_pos(bottom)
        centred = math.hypot(t[0] - b[0], t[1] - b[1]) < CUBE_HALF_M
        flush = abs(float(t[2] - b[2]) - 2 * CUBE_HALF_M) < 0.008
        return (centred and flush and world.resting_on_table(bottom)
                and not world.touches_gripper(top))

    def accepts(self, task: Task, layout: "Layout") -> bool:
        return (_graspable(layout, cube_name(task.cube))
                and _graspable(layout, cube_name(task.other)))


class PushFamily(TaskFamily):
    name = "push"
    templates = (
        "push the {cube} cube to the {side}",
        "slide the {cube} cube to the {side}",
        "push the {cube} block towards the {side}",
        "nudge the {cube} cube over to the {side}",
    )
    lane_length = PUSH_DISTANCE_M + 0.06  # the cube's travel, with margin
    approach = 0.09  # room behind the cube for the gripper to start the push

    def tasks(self) -> list[Task]:
        return [Task(self.name, c, side=s) for c in COLOURS for s in SIDES]

    def success(self, task: Task, world: "WorldState") -> bool:
        name = cube_name(task.cube)
        start = world.initial_positions.get(name)
        if start is None:
            return False
        moved = float(world.object_pos(name)[1] - start[1]) * side_sign(task.side)
        return (moved >= PUSH_DISTANCE_M and world.resting_on_table(name)
                and not world.grasped(name))

    def accepts(self, task: Task, layout: "Layout") -> bool:
        name = cube_name(task.cube)
        cube = layout.objects[name]
        s = side_sign(task.side)
        if abs(cube.y + s * self.lane_length) > REACH_Y_M or abs(cube.y - s * self.approach) > REACH_Y_M:
            return False
        # Nothing in the lane the cube travels, nor where the gripper starts the push.
        for k in np.linspace(-self.approach, self.lane_length, 14):
            if layout.too_close(name, cube.x, cube.y + s * k, 0.045):
                return False
        return True


def side_sign(side: str) -> float:
    """+1 for the robot's left (+y), -1 for its right."""
    return 1.0 if side == "left" else -1.0


def _graspable(layout: "Layout", name: str) -> bool:
    o = layout.objects[name]
    return not layout.too_close(name, o.x, o.y, CUBE_HALF_M + GRASP_CLEARANCE_M)


FAMILIES: dict[str, TaskFamily] = {f.name: f for f in
                                   (PickFamily(), PlaceInBowlFamily(), StackFamily(), PushFamily())}


def all_tasks() -> list[Task]:
    return [t for f in FAMILIES.values() for t in f.tasks()]


def sample_task(rng: np.random.Generator, family: str | None = None) -> Task:
    """A uniformly random task (of ``family`` when given)."""
    pool = FAMILIES[family].tasks() if family else all_tasks()
    return pool[int(rng.integers(len(pool)))]


class UnknownInstruction(ValueError):
    """An instruction that matches no task template; the message shows what is understood."""


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces, "block" read as "cube", no leading "please"."""
    t = re.sub(r"[^a-z ]+", " ", text.lower())
    t = re.sub(r"\bblocks?\b", "cube", t)
    t = re.sub(r"\s+", " ", t).strip()
    return re.sub(r"^(please |can you |could you )+", "", t)


def _pattern(template: str) -> re.Pattern[str]:
    colour = "|".join(COLOURS)
    # Placeholders become letter-only marks so normalise() keeps them, then regex groups.
    marked = template.replace("{cube}", "qqcubeqq").replace("{other}", "qqotherqq")
    text = normalise(marked.replace("{side}", "qqsideqq"))
    text = (re.escape(text).replace("qqcubeqq", f"(?P<cube>{colour})")
            .replace("qqotherqq", f"(?P<other>{colour})")
            .replace("qqsideqq", f"(?P<side>{'|'.join(SIDES)})"))
    return re.compile(f"^{text}$")


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (f.name, _pattern(t)) for f in FAMILIES.values() for t in f.templates]


def parse_instruction(text: str) -> Task:
    """The task an instruction asks for.

    Raises:
        UnknownInstruction: no template matches (or a stack names the same cube twice).
    """
    norm = normalise(text)
    for family, pattern in _PATTERNS:
        m = pattern.match(norm)
        if m is None:
            continue
        groups = m.groupdict()
        task = Task(family, groups["cube"], groups.get("other") or "", groups.get("side") or "")
        if task.family == "stack" and task.cube == task.other:
            raise UnknownInstruction(f"{text!r}: a cube cannot be stacked on itself")
        return task
    examples = "; ".join(f.tasks()[0].instruction() for f in FAMILIES.values())
    raise UnknownInstruction(
        f"{text!r} is not a task of the simulated tabletop. Colours: {', '.join(COLOURS)}. "
        f"Examples: {examples}")
