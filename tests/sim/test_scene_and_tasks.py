"""The scene contract (names, joints, limits) and the task registry (wording, parsing)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from vla_studio.devices.robots.sim import SimRobot
from vla_studio.sim.scene import ARM_JOINTS, COLOURS, SceneError, SceneIndex, load_model
from vla_studio.sim.tasks import (FAMILIES, UnknownInstruction, all_tasks, normalise,
                                  parse_instruction)


def test_arm_has_seven_revolute_joints_with_realistic_limits(model):
    index = SceneIndex.from_model(model)
    assert len(index.arm_qpos) == 7
    for name in ARM_JOINTS:
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        assert model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
        assert model.jnt_limited[j]
    span = index.joint_upper - index.joint_lower
    assert np.all(span > 1.0) and np.all(span < 2 * np.pi), span  # limited, not continuous
    assert index.joint_upper[3] < 0  # the elbow only bends one way


def test_scene_has_four_coloured_cubes_a_bowl_and_a_parallel_gripper(model):
    index = SceneIndex.from_model(model)
    assert set(index.cubes) == set(COLOURS)
    assert index.bowl.body >= 0
    fingers = [model.jnt_type[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)]
               for n in ("finger_left", "finger_right")]
    assert fingers == [mujoco.mjtJoint.mjJNT_SLIDE] * 2


def test_scene_missing_names_is_rejected_with_the_names(tmp_path):
    bad = tmp_path / "bare.xml"
    bad.write_text("<mujoco><worldbody><body name='base'/></worldbody></mujoco>")
    with pytest.raises(SceneError, match="joint 'joint1'.*site 'tcp'"):
        SceneIndex.from_model(load_model(bad))


def test_missing_scene_file_error_says_what_to_do(tmp_path):
    with pytest.raises(SceneError, match="does not exist; leave 'scene' empty"):
        load_model(tmp_path / "nope.xml")


def test_robot_features_before_connect_match_the_simulated_state(world):
    features = SimRobot().observation_features
    state = world.observation()
    assert set(features) == set(state)
    for key, feature in features.items():
        assert state[key].shape == feature.shape and state[key].dtype == np.dtype(feature.dtype)


def test_registry_covers_every_colour_combination():
    counts = {name: len(f.tasks()) for name, f in FAMILIES.items()}
    assert counts == {"pick": 4, "place_in_bowl": 4, "stack": 12, "push": 8}
    assert len({t.name for t in all_tasks()}) == 28


@pytest.mark.parametrize("task", all_tasks(), ids=lambda t: t.name)
def test_parser_accepts_every_template_and_paraphrase(task):
    for text in task.instructions():
        assert parse_instruction(text) == task
        assert parse_instruction(text.upper() + ".") == task


def test_parser_reads_block_as_cube_and_ignores_please():
    task = parse_instruction("Please stack the green block on top of the yellow block!")
    assert (task.family, task.cube, task.other) == ("stack", "green", "yellow")
    assert normalise("  Pick UP the   red block.") == "pick up the red cube"


@pytest.mark.parametrize("text", ["dance", "pick up the purple cube", "push the red cube up",
                                  "stack the red cube on the red cube", ""])
def test_parser_rejects_what_it_does_not_understand_with_examples(text):
    with pytest.raises(UnknownInstruction) as err:
        parse_instruction(text)
    assert "red" in str(err.value)
