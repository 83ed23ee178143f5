"""The `sim` robot, `sim` camera and `scripted` teleop devices."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vla_studio.core.action_space import JOINT_POSITION, ActionSpace
from vla_studio.core.events import EventBus
from vla_studio.core.safety import EStopLatch
from vla_studio.core.types import Observation
from vla_studio.devices.base import DeviceError, TeleopContext
from vla_studio.devices.cameras.base import CameraState
from vla_studio.devices.cameras.sim import SimCamera, SimCameraConfig
from vla_studio.devices.robots.null import NullRobot
from vla_studio.devices.robots.sim import SimRobot, SimRobotConfig
from vla_studio.devices.teleop.scripted import ScriptedTeleop
from vla_studio.sim.scene import ARM_JOINTS, cube_name
from vla_studio.sim.tasks import PushFamily, parse_instruction
from vla_studio.sim.world import find_world


@pytest.fixture
def robot():
    r = SimRobot(SimRobotConfig(name="sim", world="test_devices"))
    r.connect()
    yield r
    r.disconnect()


def _ctx(robot) -> TeleopContext:
    return TeleopContext(robot.action_space, 0.05, EStopLatch(), EventBus(), robot)


def _obs(robot) -> Observation:
    return Observation(0, time.monotonic(), robot.get_observation())


# ----- robot --------------------------------------------------------------------------------------
def test_robot_publishes_its_world_while_connected(robot):
    assert find_world("test_devices") is robot.world
    robot.disconnect()
    assert find_world("test_devices") is None


def test_two_robots_cannot_share_a_world_name(robot):
    other = SimRobot(SimRobotConfig(name="sim2", world="test_devices"))
    with pytest.raises(DeviceError, match="already running"):
        other.connect()
    assert not other.is_connected and find_world("test_devices") is robot.world


def test_unknown_scene_file_is_a_device_error_with_the_fix(tmp_path):
    r = SimRobot(SimRobotConfig(name="sim", world="bad", scene=str(tmp_path / "x.xml")))
    with pytest.raises(DeviceError, match="does not exist"):
        r.connect()


def test_robot_accepts_joint_position_actions():
    r = SimRobot(SimRobotConfig(name="sim", world="joints"), JOINT_POSITION)
    assert r.action_space == ActionSpace.joint_position(ARM_JOINTS)
    r.connect()
    try:
        q = r.get_observation()["joint_pos"].astype(float)
        sent = r.send_action(np.r_[q + 0.05, 0.0])
        assert np.allclose(sent[:7], q + 0.05, atol=1e-6) and sent[7] == 0.0
    finally:
        r.disconnect()


def test_episode_seeds_count_up_and_push_layouts_leave_a_free_lane(robot):
    first = robot.episode_seed
    robot.reset_episode()
    assert robot.episode_seed == first + 1
    task = parse_instruction("push the blue cube to the right")
    for _ in range(5):
        robot.prepare_episode(task.instruction())
        assert robot.episode_task == "push_blue_right"
        assert PushFamily().accepts(task, robot.world.layout)
    robot.prepare_episode("pick up the red cube", seed=123)
    assert robot.episode_seed == 123


def test_episode_success_from_another_thread_matches_the_live_answer(robot):
    from vla_studio.sim.expert import ScriptedExpert

    instruction = "pick up the yellow cube"
    robot.prepare_episode(instruction, seed=4)
    expert = ScriptedExpert(robot.world)
    expert.reset(instruction)
    answers = []
    while (action := expert.act(robot.control_period_s)) is not None:
        robot.send_action(action)
    assert robot.episode_success(instruction) is True
    reader = threading.Thread(target=lambda: answers.append(robot.episode_success(instruction)))
    reader.start()
    reader.join()
    assert answers == [True]
    assert robot.episode_success("put the red cube in the bowl") is False
    assert robot.episode_success("make coffee") is None


# ----- camera -------------------------------------------------------------------------------------
def _camera(world: str, **kw) -> SimCamera:
    base = dict(name="front", width=160, height=120, fps=30.0, world=world, shadows=False,
                max_backoff_s=0.1)
    base.update(kw)
    return SimCamera(SimCameraConfig(**base))


def test_camera_waits_for_its_world_then_streams(model):
    cam = _camera("late_world")
    cam.connect(timeout_s=2.0)
    try:
        status = cam.status()
        assert status.state == CameraState.RECONNECTING
        assert "no simulated world named 'late_world'" in status.last_error
        r = SimRobot(SimRobotConfig(name="sim", world="late_world"))
        r.connect()
        try:
            frame = cam.wait_for_frame(timeout_s=5.0)
            assert frame is not None and frame.color.shape == (120, 160, 3)
        finally:
            r.disconnect()
    finally:
        cam.disconnect()


def test_camera_frames_project_the_scene_with_their_intrinsics_and_depth(robot):
    cam = _camera("test_devices", width=320, height=240, depth=True, shadows=True)
    cam.connect()
    try:
        frame = cam.wait_for_frame(timeout_s=5.0)
        assert frame is not None
        k = cam.intrinsics
        assert (k.width, k.height, k.depth_scale) == (320, 240, 0.001)
        assert frame.depth.dtype == np.uint16 and frame.color.dtype == np.uint8
        assert not frame.color.flags.writeable
        assert frame.t_device == pytest.approx(robot.world.sim_time)
        world = robot.world
        cam_id = world.index.cameras["front"]
        origin, rot = world.data.cam_xpos[cam_id], world.data.cam_xmat[cam_id].reshape(3, 3)
        for colour, rgb in (("red", (1, 0, 0)), ("blue", (0, 0, 1)), ("green", (0, 1, 0))):
            p = rot.T @ (world.data.xpos[world.index.cubes[colour].body] - origin)
            u = int(round(k.cx + k.fx * p[0] / -p[2]))
            v = int(round(k.cy - k.fy * p[1] / -p[2]))
            pixel = frame.color[v, u].astype(int)
            assert int(np.argmax(pixel)) == int(np.argmax(rgb)), (colour, pixel)
            depth_m = frame.depth[v, u] * k.depth_scale
            assert -p[2] - 0.035 < depth_m < -p[2], (colour, depth_m, -p[2])
    finally:
        cam.disconnect()


def test_camera_renders_published_snapshots_never_the_live_state(robot):
    cam = _camera("test_devices")
    cam.connect()
    try:
        before = cam.wait_for_frame(timeout_s=5.0)
        world = robot.world
        adr = world.index.objects[cube_name("red")].qpos
        world.data.qpos[adr:adr + 3] = (0.45, 0.0, 0.25)  # live state only, not published
        unchanged = cam.wait_for_frame(before.index, timeout_s=2.0)
        assert np.array_equal(unchanged.color, before.color)
        world.publish()
        time.sleep(0.1)
        changed = cam.wait_for_frame(cam.latest().index, timeout_s=2.0)
        assert not np.array_equal(changed.color, before.color)
    finally:
        cam.disconnect()


def test_camera_with_an_unknown_scene_camera_reports_the_choices(robot):
    cam = _camera("test_devices", name="ceiling", reconnect=False)
    cam.connect()
    try:
        assert "no camera named 'ceiling'" in cam.status().last_error
        assert "front, wrist, side" in cam.status().last_error
    finally:
        cam.disconnect()


# ----- scripted teleop ----------------------------------------------------------------------------
def test_scripted_teleop_refuses_a_robot_that_is_not_the_simulator():
    teleop = ScriptedTeleop()
    null = NullRobot()
    with pytest.raises(DeviceError, match="only the simulated robot"):
        teleop.make_action_source(TeleopContext(null.action_space, 0.05, EStopLatch(),
                                                EventBus(), null))


def test_scripted_source_explains_why_it_holds(robot):
    teleop = ScriptedTeleop()
    teleop.connect()
    source = teleop.make_action_source(_ctx(robot))
    now = time.monotonic()
    first = source.propose(_obs(robot), now, 0.05)
    assert first.action is None and "no instruction" in first.reason
    source.reset("juggle the cubes")
    second = source.propose(_obs(robot), now, 0.05)
    assert second.action is None and "cannot do this" in second.reason


def test_scripted_source_drives_the_task_and_reports_its_phase(robot):
    teleop = ScriptedTeleop()
    teleop.connect()
    source = teleop.make_action_source(_ctx(robot))
    robot.prepare_episode("pick up the green cube", seed=2)
    source.reset("pick up the green cube")
    seen = set()
    for _ in range(400):
        now = time.monotonic()
        proposal = source.propose(_obs(robot), now, 0.05)
        state = teleop.get_state()
        seen |= {name for name, pressed in state.buttons.items() if pressed}
        if proposal.action is None:
            break
        assert proposal.stamp == now
        robot.send_action(proposal.action)
    assert proposal.reason == "task done"
    assert robot.episode_success("pick up the green cube")
    assert {"approach", "descend", "close", "lift"} <= seen
