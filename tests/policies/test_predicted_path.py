"""The predicted end-effector path of a chunk, and its projection into cameras (the simulator's
cameras provide intrinsics and, per frame, extrinsics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_studio.core.config import ConfigError, build
from vla_studio.core.safety import SafetyLimits
from vla_studio.devices.cameras.base import CameraIntrinsics
from vla_studio.devices.cameras.geometry import CameraExtrinsics, project
from vla_studio.devices.cameras.synthetic import SyntheticCameraConfig
from vla_studio.policies.predicted_path import (path_unavailable, predicted_positions,
                                                project_path)

K = CameraIntrinsics(320, 240, 200.0, 200.0, 159.5, 119.5)


def test_the_path_sums_the_deltas_after_speed_scale_clip_and_cap():
    planned = np.array([[0.01, 0, 0, 0, 0, 0, 1]] * 3 + [[0.0, 0.05, 0, 0, 0, 0, 1]])
    path = predicted_positions(np.array([0.5, 0.0, 0.2]), planned, speed_scale=0.5)
    np.testing.assert_allclose(path[-1], [0.515, 0.025, 0.2])
    assert path.shape == (5, 3)
    limits = SafetyLimits(workspace_min=(0.0, -0.03, 0.0), workspace_max=(0.52, 0.03, 1.0),
                          max_delta_translation=0.02)
    capped = predicted_positions(np.array([0.5, 0.0, 0.2]), planned, limits=limits)
    np.testing.assert_allclose(capped[1], [0.51, 0.0, 0.2])
    np.testing.assert_allclose(capped[2], [0.52, 0.0, 0.2])  # clipped at the workspace
    np.testing.assert_allclose(capped[4], [0.52, 0.02, 0.2])  # per-step cap of 2 cm
    # a NaN action is rejected by the filter: the path ends before it
    broken = planned.copy()
    broken[1, 0] = np.nan
    assert len(predicted_positions(np.zeros(3), broken)) == 2


def test_a_camera_looking_back_at_the_robot_sees_left_as_right_and_up_as_up():
    cam = CameraExtrinsics.from_pose([1.2, 0.0, 0.5, -math.pi / 2, 0.0, math.pi / 2])
    pts = np.array([[0.5, 0.0, 0.5], [0.5, 0.1, 0.5], [0.5, 0.0, 0.6], [1.5, 0.0, 0.5]])
    uv, visible = project(pts, K.fx, K.fy, K.cx, K.cy, cam)
    np.testing.assert_allclose(uv[0], [K.cx, K.cy], atol=1e-9)
    assert uv[1, 0] > K.cx  # the robot's left (+y) is the image's right
    assert uv[2, 1] < K.cy  # up is up
    assert visible.tolist() == [True, True, True, False]  # behind the camera: not drawn
    assert np.isnan(uv[3]).all()
    # a MuJoCo camera with the same view (it looks along -z, y up) projects the same way
    xmat = np.column_stack([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    mj = CameraExtrinsics.from_mujoco(np.array([1.2, 0.0, 0.5]), xmat)
    np.testing.assert_allclose(project(pts, K.fx, K.fy, K.cx, K.cy, mj)[0][:3], uv[:3])


def test_project_path_scales_intrinsics_to_the_image_and_reports_hidden_points():
    cam = CameraExtrinsics.from_pose([1.2, 0.0, 0.5, -math.pi / 2, 0.0, math.pi / 2])
    path = np.array([[0.5, 0.0, 0.5], [2.0, 0.0, 0.5]])
    shown = project_path(path, K, cam, (640, 480))
    assert shown.total == 2 and shown.visible == 1
    np.testing.assert_allclose(shown.pixels[0], [K.cx * 2, K.cy * 2])


def test_why_no_path_is_drawn_is_said_in_words():
    cam = CameraExtrinsics.from_pose([0, 0, 1, 0, 0, 0])
    assert path_unavailable("ee_delta", K, cam) == ""
    assert "forward kinematics" in path_unavailable("joint_position", K, cam)
    assert "pose" in path_unavailable("ee_delta", K, None)
    assert "intrinsics" in path_unavailable("ee_delta", None, cam)


def test_a_profile_pose_becomes_the_cameras_extrinsics_and_a_bad_one_is_refused():
    from vla_studio.devices.cameras.synthetic import SyntheticCamera

    cfg = build(SyntheticCameraConfig, {"name": "front", "pose": [1, 0, 0.5, 0, 0, 0]},
                source="test")
    pose = SyntheticCamera(cfg).extrinsics_for(None)
    assert pose is not None and pose.translation == (1.0, 0.0, 0.5) and pose.source == "profile"
    assert SyntheticCamera(build(SyntheticCameraConfig, {"name": "x"}, source="t")) \
        .extrinsics_for(None) is None
    with pytest.raises(ConfigError, match="pose has 3 values"):
        build(SyntheticCameraConfig, {"name": "front", "pose": [1, 0, 0.5]}, source="test")


@pytest.fixture
def sim_robot():
    from vla_studio.devices.robots.sim import SimRobot, SimRobotConfig

    robot = SimRobot(SimRobotConfig(name="sim", world="test_path"))
    robot.connect()
    yield robot
    robot.disconnect()


def sim_camera(name: str, **kw):
    from vla_studio.devices.cameras.sim import SimCamera, SimCameraConfig

    return SimCamera(SimCameraConfig(name=name, width=320, height=240, fps=30.0,
                                     world="test_path", shadows=False, **kw))


def test_the_sim_front_camera_projects_a_cube_onto_its_pixels(sim_robot):
    cam = sim_camera("front")
    cam.connect()
    try:
        frame = cam.wait_for_frame(timeout_s=10.0)
        assert frame is not None
        pose = cam.extrinsics_for(frame)
        assert pose is not None and pose.source == "simulator"
        np.testing.assert_allclose(pose.translation, [1.15, 0.0, 0.68], atol=1e-6)
        world = sim_robot.world
        for colour, channel in (("red", 0), ("green", 1), ("blue", 2)):
            centre = world.cube_pos(colour)
            shown = project_path(centre[None], cam.intrinsics, pose, (320, 240))
            assert shown.visible == 1
            u, v = np.round(shown.pixels[0]).astype(int)
            patch = frame.color[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3).astype(int)
            # the cube's own colour dominates where its centre projects
            others = [c for c in range(3) if c != channel]
            assert (patch[:, channel] > patch[:, others].max(axis=1) + 30).all(), \
                f"{colour} cube at pixel {(u, v)} looks {patch.mean(axis=0)}"
    finally:
        cam.disconnect()


def test_the_sim_wrist_camera_pose_follows_the_arm_frame_by_frame(sim_robot):
    cam = sim_camera("wrist")
    cam.connect()
    try:
        first = cam.wait_for_frame(timeout_s=10.0)
        before = cam.extrinsics_for(first)
        for _ in range(20):  # 20 ticks of 1 cm up
            sim_robot.send_action(np.array([0.0, 0.0, 0.01, 0, 0, 0, 1.0]))
        # the first frame rendered after the last move
        moved_at = sim_robot.world.sim_time
        later = cam.wait_for_frame(first.index, timeout_s=5.0)
        while later is not None and later.t_device < moved_at:
            later = cam.wait_for_frame(later.index, timeout_s=5.0)
        assert later is not None
        after = cam.extrinsics_for(later)
        assert after.translation[2] - before.translation[2] == pytest.approx(0.2, abs=0.05)
        assert cam.extrinsics_for(first) == before  # the pose of that frame is remembered
    finally:
        cam.disconnect()
