"""The `sim` robot, `sim` camera and `scripted` teleop devices."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

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

ROOT = Path(__file__).resolve().parents[2]


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


def test_a_newer_robot_takes_the_world_name_over_and_cameras_follow(robot):
    cam = _camera("test_devices")
    cam.connect()
    newer = SimRobot(SimRobotConfig(name="sim", world="test_devices", seed=50))
    try:
        first = cam.wait_for_frame(timeout_s=5.0)
        newer.connect()  # a station swap: the new station starts before the old one closes
        assert find_world("test_devices") is newer.world
        deadline = time.monotonic() + 5.0
        while cam.status().reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cam.status().reconnects == 1
        frame = cam.wait_for_frame(cam.latest().index, timeout_s=5.0)
        assert not np.array_equal(frame.color, first.color)  # the newer world's layout
        robot.disconnect()  # the old robot leaving does not withdraw the newer world
        assert find_world("test_devices") is newer.world
    finally:
        cam.disconnect()
        newer.disconnect()


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


def test_joint_limits_come_from_the_mjcf_before_connecting():
    import mujoco

    from vla_studio.sim.scene import default_scene_path

    r = SimRobot(SimRobotConfig(name="sim", world="limits", max_joint_speed=1.5), JOINT_POSITION)
    limits = r.joint_limits
    assert not r.is_connected
    model = mujoco.MjModel.from_xml_path(str(default_scene_path()))
    ranges = [model.jnt_range[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)]
              for n in ARM_JOINTS]
    assert limits.names == ARM_JOINTS
    np.testing.assert_allclose(limits.lower, [lo for lo, _ in ranges])
    np.testing.assert_allclose(limits.upper, [hi for _, hi in ranges])
    assert limits.max_velocity == (1.5,) * 7


def test_joint_position_loop_clips_targets_to_the_sim_joint_limits():
    from tests.waiting import wait_until
    from vla_studio.core.arbiter import FixedActionSource, SourceArbiter
    from vla_studio.core.loop import ControlLoop
    from vla_studio.core.safety import SafetyFlag, SafetyLimits
    from vla_studio.core.session import ControlMode, Session

    r = SimRobot(SimRobotConfig(name="sim", world="joint_loop"), JOINT_POSITION)
    r.connect()
    latch = EStopLatch()
    session = Session(latch)
    limits = SafetyLimits()
    arbiter = SourceArbiter(limits)
    q0 = r.get_observation()["joint_pos"].astype(float)
    target = q0.copy()
    target[3] = 0.5  # joint4's range ends at -0.0698 rad
    arbiter.set_teleop(FixedActionSource(np.r_[target, 1.0]))
    loop = ControlLoop(r, {}, arbiter, session, limits, 20.0)
    try:
        session.start(ControlMode.TELEOP)
        loop.start()
        assert wait_until(lambda: loop.counters.snapshot().get("CLIPPED_JOINT_LIMITS", 0) >= 30,
                          timeout=10.0)
        step = loop.snapshot.get()
        assert step.safety_flags & SafetyFlag.CLIPPED_JOINT_LIMITS
        assert step.action[3] <= r.joint_limits.upper[3] + 1e-9
    finally:
        loop.stop()
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


def test_camera_explains_a_windowed_gl_backend_instead_of_hanging():
    """With MUJOCO_GL=glfw (chosen when mujoco is imported first) a failed context would
    poison MuJoCo's context creation for the whole process; the camera refuses up front."""
    code = (
        "import mujoco, time\n"
        "from vla_studio.devices.robots.sim import SimRobot, SimRobotConfig\n"
        "from vla_studio.devices.cameras.sim import SimCamera, SimCameraConfig\n"
        "r = SimRobot(SimRobotConfig(name='sim', world='w')); r.connect()\n"
        "c = SimCamera(SimCameraConfig(name='front', world='w', width=64, height=48,\n"
        "              max_backoff_s=0.05)); c.connect()\n"
        "time.sleep(0.3); print(c.status().last_error); c.disconnect(); r.disconnect()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "PYOPENGL_PLATFORM")}
    env["MUJOCO_GL"] = "glfw"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Start with MUJOCO_GL=egl" in out.stdout


def test_robot_hold_keeps_physics_running_and_the_gripper_as_commanded(robot):
    robot.send_action(np.array([0, 0, 0, 0, 0, 0, 0.0]))  # close
    t0 = robot.world.sim_time
    for _ in range(10):
        held = robot.hold(robot.get_observation())
    assert held.tolist() == [0, 0, 0, 0, 0, 0, 0.0]
    assert robot.world.sim_time == pytest.approx(t0 + 10 * robot.control_period_s)
    assert robot.get_observation()["gripper"][0] < 0.05


def test_a_new_episode_starts_open_whatever_the_last_one_commanded(robot):
    """Holds after a scene reset keep the reset's open fingers: an episode starts the same
    whether the one before it ended holding a cube or not (reproducible by its seed)."""
    robot.send_action(np.array([0, 0, 0, 0, 0, 0, 0.0]))  # close, as a grasp ends
    robot.reset_episode(seed=7)
    for _ in range(5):  # the ticks a recorder or an evaluation waits for fresh frames
        held = robot.hold(robot.get_observation())
    assert held[-1] == pytest.approx(1.0)
    fresh = SimRobot(SimRobotConfig(name="sim", world="test_devices_fresh"))
    fresh.connect()
    try:
        fresh.reset_episode(seed=7)
        for _ in range(5):
            fresh.hold(fresh.get_observation())
        for key, value in fresh.get_observation().items():
            np.testing.assert_allclose(robot.get_observation()[key], value, atol=1e-6,
                                       err_msg=key)
    finally:
        fresh.disconnect()


def test_distractors_join_the_cubes_on_the_table_when_enabled():
    r = SimRobot(SimRobotConfig(name="sim", world="distract", distractors=2))
    r.connect()
    try:
        layout = r.world.layout
        assert {"distractor_box", "distractor_can"} <= set(layout.objects)
        for name in ("distractor_box", "distractor_can"):
            assert 0.0 < r.world.object_pos(name)[2] < 0.1  # resting on the table top
    finally:
        r.disconnect()
    plain = SimRobot(SimRobotConfig(name="sim", world="plain"))
    plain.connect()
    try:
        assert plain.world.object_pos("distractor_box")[2] < -0.5  # parked on the floor
    finally:
        plain.disconnect()


def test_scripted_source_chosen_after_the_episode_began_takes_its_task(robot):
    robot.prepare_episode("push the red cube to the left", seed=8)
    source = ScriptedTeleop().make_action_source(_ctx(robot))  # no reset() reached it
    proposal = source.propose(_obs(robot), time.monotonic(), 0.05)
    assert proposal.action is not None
    assert source.task == parse_instruction("push the red cube to the left")


def test_emergency_hold_from_another_thread_freezes_the_sim_arm(robot):
    move = np.array([0.01, 0, 0, 0, 0, 0, 1.0])
    for _ in range(5):
        robot.send_action(move)  # moving at 20 cm/s
    stopper = threading.Thread(target=robot.emergency_hold, name="estop-relay")
    stopper.start()
    stopper.join()
    frozen = robot.world.arm.q_cmd.copy()
    for _ in range(20):
        sent = robot.send_action(move)  # a tick that was already on its way
    np.testing.assert_allclose(robot.world.arm.q_cmd, frozen, atol=1e-9)
    assert sent[:6].tolist() == [0.0] * 6
    settled = robot.get_observation()["ee_pos"].copy()
    robot.send_action(move)
    assert np.linalg.norm(robot.get_observation()["ee_pos"] - settled) < 1e-3
    robot.release_emergency_hold()
    for _ in range(5):
        robot.send_action(move)
    assert robot.get_observation()["ee_pos"][0] > settled[0] + 0.01


def test_the_arm_freezes_between_physics_chunks_when_halted_mid_tick(robot):
    class HaltAfterFirstChunk:
        def __init__(self) -> None:
            self.checks = 0

        def is_set(self) -> bool:
            self.checks += 1
            return self.checks > 1

    arm = robot.world.arm
    q_before = arm.q_cmd.copy()
    arm.command_ee_delta(np.array([0.01, 0, 0, 0, 0, 0, 1.0]), 0.05)
    q_target = arm.q_cmd.copy()
    arm.halt = HaltAfterFirstChunk()
    try:
        arm.advance(0.05)
    finally:
        arm.halt = None
    step = q_target - q_before
    done = (arm.q_cmd - q_before) @ step / (step @ step)
    assert 0.0 < done < 1.0  # the reference stopped part of the way, not at the target
    target_pos, _ = arm.ik.forward(arm.q_cmd)
    np.testing.assert_allclose(arm.target_pos, target_pos)
