"""Each task's success predicate, true and false, on hand-built simulator states."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from vla_studio.sim.scene import BOWL, CUBE_HALF_M, cube_name
from vla_studio.sim.tasks import Task, parse_instruction
from vla_studio.sim.world import SimWorld


def _place(world: SimWorld, name: str, pos, yaw: float = 0.0) -> None:
    """Put object ``name`` at ``pos`` (base frame = world frame in the built-in scene)."""
    adr = world.index.objects[name].qpos
    world.data.qpos[adr:adr + 3] = pos
    world.data.qpos[adr + 3:adr + 7] = (math.cos(yaw / 2), 0, 0, math.sin(yaw / 2))
    world.data.qvel[:] = 0.0


def _settle(world: SimWorld, steps: int = 0) -> None:
    mujoco.mj_forward(world.model, world.data)
    if steps:
        mujoco.mj_step(world.model, world.data, steps)
        mujoco.mj_forward(world.model, world.data)


def _grip(world: SimWorld, colour: str, lift: float) -> None:
    """Put the cube between the fingers at the tool point and close the pads on it.

    The pads' inner faces sit 1 mm beyond the finger joint's travel: 18.5 mm of travel puts
    them 0.5 mm into the cube's faces, enough to register contacts."""
    tcp, mat = world.tcp_pose()
    tcp = tcp + np.array([0.0, 0.0, lift])
    world.data.qpos[world.index.arm_qpos] = world.arm.ik.solve(
        world.data.qpos[world.index.arm_qpos], tcp, mat, 10.0).q
    world.data.qpos[world.index.finger_qpos] = 0.0185
    mujoco.mj_forward(world.model, world.data)
    pos, mat = world.tcp_pose()
    _place(world, cube_name(colour), pos, math.atan2(mat[1, 0], mat[0, 0]))
    mujoco.mj_forward(world.model, world.data)


def test_pick_succeeds_only_when_lifted_and_held(world):
    task = parse_instruction("pick up the red cube")
    assert not task.success(world)  # on the table, not held
    _grip(world, "red", lift=0.0)  # the start pose is 31 cm up
    assert world.grasped(cube_name("red"))
    assert task.success(world)
    world.data.qpos[world.index.finger_qpos] = 0.04  # open: the cube floats free of the pads
    _settle(world)
    assert not world.grasped(cube_name("red")) and not task.success(world)


def test_pick_fails_when_held_below_five_centimetres(world):
    tcp, _ = world.tcp_pose()
    _grip(world, "blue", lift=(CUBE_HALF_M + 0.03) - tcp[2])  # cube bottom 3 cm up
    assert world.grasped(cube_name("blue"))
    assert not parse_instruction("lift the blue cube").success(world)


def test_place_in_bowl_true_when_resting_inside_false_beside_or_held(world):
    task = parse_instruction("put the green cube in the bowl")
    bowl = world.object_pos(BOWL)
    _place(world, cube_name("green"), bowl + np.array([0.01, -0.01, 0.008 + CUBE_HALF_M + 0.002]))
    _settle(world, steps=150)
    assert task.success(world)
    _place(world, cube_name("green"), bowl + np.array([0.12, 0.0, CUBE_HALF_M]))
    _settle(world, steps=50)
    assert not task.success(world)
    _grip(world, "green", lift=0.0)
    _place(world, BOWL, world.cube_pos("green") - np.array([0, 0, 0.028]))  # bowl under the hand
    _settle(world)
    assert world.touches_gripper(cube_name("green")) and not task.success(world)


def test_stack_true_when_centred_and_flush_false_when_offset_or_base_lifted(world):
    task = parse_instruction("stack the red cube on the blue cube")
    blue = world.cube_pos("blue")
    _place(world, cube_name("red"), blue + np.array([0.004, 0.0, 2 * CUBE_HALF_M + 0.001]), 0.1)
    _settle(world, steps=150)
    assert task.success(world)
    assert not parse_instruction("stack the blue cube on the red cube").success(world)
    _place(world, cube_name("red"), blue + np.array([0.03, 0.0, 2 * CUBE_HALF_M]))
    _settle(world)
    assert not task.success(world)
    _place(world, cube_name("blue"), blue + np.array([0, 0, 0.1]))  # base in the air
    _place(world, cube_name("red"), blue + np.array([0, 0, 0.1 + 2 * CUBE_HALF_M]))
    _settle(world)
    assert not task.success(world)


@pytest.mark.parametrize("side,dy,expected", [("left", 0.12, True), ("right", -0.12, True),
                                              ("left", -0.12, False), ("left", 0.05, False)])
def test_push_needs_ten_centimetres_towards_the_named_side(world, side, dy, expected):
    task = Task("push", "yellow", side=side)
    start = world.initial_positions[cube_name("yellow")]
    _place(world, cube_name("yellow"), start + np.array([0.01, dy, 0.0]))
    _settle(world)
    assert task.success(world) is expected


def test_push_fails_when_the_cube_was_carried_not_slid(world):
    start = world.initial_positions[cube_name("yellow")]
    _place(world, cube_name("yellow"), start + np.array([0.0, 0.15, 0.05]))
    _settle(world)
    assert not Task("push", "yellow", side="left").success(world)


def test_wrong_object_flags_an_unnamed_cube_lifted_or_moved(world):
    task = parse_instruction("pick up the red cube")
    assert task.wrong_objects(world) == ()  # a fresh layout: nothing disturbed
    _grip(world, "red", lift=0.0)
    assert task.success(world) and task.wrong_objects(world) == ()  # the right one is fine
    world.reset(0)
    _grip(world, "blue", lift=0.0)
    assert task.wrong_objects(world) == ("blue",)  # the wrong one, held up
    world.reset(0)
    green = world.initial_positions[cube_name("green")]
    _place(world, cube_name("green"), green + np.array([0.0, 0.03, 0.0]))
    _settle(world)
    assert task.wrong_objects(world) == ("green",)  # slid 3 cm along the table
    world.reset(0)
    _place(world, cube_name("green"), world.initial_positions[cube_name("green")]
            + np.array([0.01, 0.0, 0.0]))
    _settle(world)
    assert task.wrong_objects(world) == ()  # a 1 cm nudge is not a wrong object


def test_stack_may_touch_the_cube_it_names(world):
    task = parse_instruction("stack the red cube on the blue cube")
    blue = world.initial_positions[cube_name("blue")]
    _place(world, cube_name("blue"), blue + np.array([0.04, 0.0, 0.0]))
    _settle(world)
    assert task.wrong_objects(world) == ()
    assert parse_instruction("pick up the red cube").wrong_objects(world) == ("blue",)
