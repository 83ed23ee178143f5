"""The simulated arm: determinism, IK tracking, joint limits, gripper, holding, snapshots."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from vla_studio.sim.layout import LayoutSettings
from vla_studio.sim.rotations import rotation_error
from vla_studio.sim.world import SimWorld

PERIOD = 0.05


def _drive(world: SimWorld, actions: np.ndarray) -> None:
    for a in actions:
        world.step_ee_delta(a, PERIOD)


def _random_actions(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    actions = np.zeros((n, 7))
    actions[:, :3] = rng.uniform(-0.01, 0.01, (n, 3))
    actions[:, 3:6] = rng.uniform(-0.03, 0.03, (n, 3))
    actions[:, 6] = (np.arange(n) // 20) % 2  # close and open the gripper now and then
    return actions


def test_same_seed_and_actions_give_identical_trajectories(model):
    a, b = SimWorld(model), SimWorld(model)
    a.reset(42)
    b.reset(42)
    actions = _random_actions(1, 60)
    _drive(a, actions)
    _drive(b, actions)
    assert np.array_equal(a.data.qpos, b.data.qpos)
    assert np.array_equal(a.data.qvel, b.data.qvel)
    for key, value in a.observation().items():
        assert np.array_equal(value, b.observation()[key]), key


def test_reset_repeats_the_layout_of_a_seed_and_varies_across_seeds(model):
    w = SimWorld(model)
    first = w.reset(7)
    qpos = w.data.qpos.copy()
    _drive(w, _random_actions(2, 10))
    again = w.reset(7)
    assert again.objects == first.objects
    assert np.array_equal(w.data.qpos, qpos)
    other = w.reset(8)
    assert other.objects != first.objects


def test_jitter_options_change_appearance_but_not_the_layout(model):
    plain = SimWorld(model)
    jittered = SimWorld(model, LayoutSettings(light_jitter=True, colour_jitter=True))
    a, b = plain.reset(3), jittered.reset(3)
    assert a.objects == b.objects
    assert not np.array_equal(a.appearance.light_pos, b.appearance.light_pos)
    assert not np.array_equal(a.appearance.mat_rgba, b.appearance.mat_rgba)
    assert np.array_equal(a.appearance.mat_rgba, model.mat_rgba)  # the model is untouched


def test_ik_tracks_a_straight_move_within_bounds(world):
    start, rot0 = world.tcp_pose()
    lags = []
    for _ in range(40):  # 8 mm per tick = 0.16 m/s, diagonally forward, left and down
        world.step_ee_delta(np.array([0.0056, 0.004, -0.004, 0, 0, 0, 1.0]), PERIOD)
        target, _ = world.to_base(world.arm.target_pos, world.arm.target_mat)
        lags.append(np.linalg.norm(target - world.tcp_pose()[0]))
    for _ in range(20):  # settle
        world.step_ee_delta(np.array([0, 0, 0, 0, 0, 0, 1.0]), PERIOD)
    pos, rot = world.tcp_pose()
    goal = start + 40 * np.array([0.0056, 0.004, -0.004])
    assert max(lags) < 0.012, f"tracking lag while moving {max(lags) * 1000:.1f} mm"
    assert np.linalg.norm(pos - goal) < 0.002, f"settled error {np.linalg.norm(pos - goal) * 1000:.1f} mm"
    assert np.linalg.norm(rotation_error(rot0, rot)) < 0.01


def test_ik_tracks_rotations_about_each_base_axis(world):
    _, rot0 = world.tcp_pose()
    for axis in range(3):
        delta = np.zeros(7)
        delta[3 + axis], delta[6] = 0.03, 1.0
        for _ in range(10):
            world.step_ee_delta(delta, PERIOD)
        for _ in range(10):
            world.step_ee_delta(np.r_[np.zeros(6), 1.0], PERIOD)
        _, rot = world.tcp_pose()
        turned = rotation_error(rot, rot0)
        assert abs(turned[axis] - 0.3) < 0.02 and np.linalg.norm(np.delete(turned, axis)) < 0.02
        rot0 = rot


def test_joint_limits_hold_when_commanded_far_out_of_reach(world):
    idx = world.index
    lower, upper = idx.joint_lower, idx.joint_upper
    worst, closest = 0.0, np.inf
    for action in ([0.02, 0.0, 0.02, 0, 0, 0, 1], [0.0, 0.02, 0.02, 0, 0, 0.1, 1],
                   [-0.02, -0.02, 0.0, 0.1, 0, 0, 1]):
        for _ in range(150):
            world.step_ee_delta(np.array(action, dtype=float), PERIOD)
            q = world.data.qpos[idx.arm_qpos]
            worst = max(worst, float(np.max(lower - q)), float(np.max(q - upper)))
            closest = min(closest, float(np.min(np.minimum(q - lower, upper - q))))
            cmd = world.arm.q_cmd
            assert np.all(cmd >= lower) and np.all(cmd <= upper)
    assert closest < 0.05, "the moves never brought a joint to its limit"
    assert worst < 0.01, f"a joint went {worst:.4f} rad past its limit"


def test_joint_position_actions_are_clipped_to_limits(world):
    idx = world.index
    far = np.r_[idx.joint_upper + 1.0, 1.0]
    for _ in range(60):
        applied = world.step_joints(far, PERIOD)
    assert np.all(applied[:7] <= idx.joint_upper) and np.all(applied[:7] < far[:7])
    assert np.all(world.data.qpos[idx.arm_qpos] <= idx.joint_upper + 0.01)


def test_target_never_leads_a_blocked_arm_by_more_than_the_windup_limit(world):
    for _ in range(80):  # push the gripper down into the table
        applied = world.step_ee_delta(np.array([0, 0, -0.02, 0, 0, 0, 1.0]), PERIOD)
    assert applied[2] > -0.002  # what the robot reports it applied: (almost) nothing more
    lead = np.linalg.norm(world.arm.target_pos - world.arm.tcp_world()[0])
    assert lead <= world.arm.settings.max_lead_m + 0.002  # the TCP moves a little in the tick
    assert world.tcp_pose()[0][2] > 0.0  # the fingers rest on the table, not in it


def test_gripper_reports_open_closed_and_holding_keeps_physics_running(world):
    assert world.observation()["gripper"][0] == pytest.approx(1.0, abs=0.02)
    t0 = world.sim_time
    for _ in range(20):  # a hold: zero delta, gripper closed
        world.step_ee_delta(np.array([0, 0, 0, 0, 0, 0, 0.0]), PERIOD)
    assert world.observation()["gripper"][0] < 0.05
    assert world.sim_time == pytest.approx(t0 + 20 * PERIOD)
    for _ in range(20):
        world.step_ee_delta(np.array([0, 0, 0, 0, 0, 0, 1.0]), PERIOD)
    assert world.observation()["gripper"][0] > 0.95


def test_ee_quat_stays_in_one_hemisphere_while_the_gripper_turns(world):
    previous = world.observation()["ee_quat"]
    for _ in range(40):  # turn the gripper about the vertical through +-180 degrees
        world.step_ee_delta(np.array([0, 0, 0, 0, 0, 0.06, 1.0]), PERIOD)
        quat = world.observation()["ee_quat"]
        assert np.linalg.norm(quat) == pytest.approx(1.0, abs=1e-5)
        assert float(np.dot(quat, previous)) > 0.9  # no sign flip between ticks
        previous = quat


def test_snapshots_are_immutable_copies_published_every_tick(world):
    first = world.snapshot()
    world.step_ee_delta(np.array([0.01, 0, 0, 0, 0, 0, 1.0]), PERIOD)
    second = world.snapshot()
    assert second.tick == first.tick + 1 and second.time > first.time
    assert not first.qpos.flags.writeable
    assert np.array_equal(second.qpos, world.data.qpos)
    world.data.qpos[0] += 0.1  # the live state changes; the snapshot does not
    assert second.qpos[0] != world.data.qpos[0]


def test_replica_answers_like_the_live_world(world):
    world.step_ee_delta(np.array([0, 0.01, -0.01, 0, 0, 0, 1.0]), PERIOD)
    replica = world.replica(mujoco.MjData(world.model))
    assert np.allclose(replica.tcp_pose()[0], world.tcp_pose()[0])
    assert np.allclose(replica.cube_pos("red"), world.cube_pos("red"))
    assert replica.initial_positions is world.initial_positions


def test_reset_leaves_every_object_at_rest_on_the_table(model):
    w = SimWorld(model, LayoutSettings(distractors=2))
    for seed in range(5):
        layout = w.reset(seed)
        for name, addr in w.index.objects.items():
            assert np.abs(w.data.qvel[addr.dof:addr.dof + 6]).max() < 0.01, (seed, name)
            placed = layout.objects[name]
            assert np.allclose(w.object_pos(name)[:2], (placed.x, placed.y), atol=2e-3)
