"""The real pygame gamepad path, driven by SDL virtual joysticks: sticks move the null robot,
buttons do their jobs, unplugging holds the arm, replugging resumes."""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest

from vla_studio.core import commands
from vla_studio.core.arbiter import FixedActionSource
from vla_studio.core.session import ControlMode
from vla_studio.core.profile import parse_profile
from vla_studio.core.types import SourceKind
from vla_studio.devices.registry import ROBOTS, config_class_for
from vla_studio.devices.robots.null import NullRobot
from vla_studio.devices.teleop.virtual_gamepad import VirtualGamepad
from vla_studio.station import Station

from tests.devices.teleop_stations import null_station, wait_until


class RealArm(NullRobot):
    """Stands for a robot that is not simulated (a real arm's driver)."""

    simulated = False


ROBOTS.register("test_real_arm", f"{__name__}:RealArm")


def real_robot_station(gamepad: dict | None = None) -> Station:
    data = {"name": "real arm", "control_rate_hz": 50.0, "robot": {"type": "test_real_arm"},
            "teleops": [{"type": "gamepad", **(gamepad or {})}],
            "safety": {"workspace_min": [-2.0, -2.0, -2.0], "workspace_max": [2.0, 2.0, 2.0]}}
    return Station.from_profile(parse_profile(data, config_class_for, source="test profile"))


@pytest.fixture
def pads():
    made: list[VirtualGamepad] = []

    def make(kind: str = "xbox", name: str | None = None) -> VirtualGamepad:
        pad = VirtualGamepad(kind, name)
        pad.attach()
        made.append(pad)
        return pad

    yield make
    for pad in made:
        pad.detach()


def running_station(gamepad: dict | None = None, mode=ControlMode.TELEOP, rate_hz: float = 50.0):
    st = null_station([{"type": "gamepad", **(gamepad or {})}], rate_hz=rate_hz)
    st.start()
    st.use_teleop("gamepad")
    st.session.start(mode)
    return st


def last(st):
    return st.loop.snapshot.get()


def pos(st) -> np.ndarray:
    return np.asarray(st.robot.get_observation()["ee_pos"], dtype=float)


def wait_teleop(st) -> None:
    wait_until(lambda: last(st) is not None and last(st).source == SourceKind.TELEOP,
               what="the gamepad driving (connected, sticks at rest)")


def test_sticks_move_the_robot_in_the_base_frame(pads):
    pad = pads("xbox")
    st = running_station()
    try:
        wait_teleop(st)
        p0 = pos(st)
        pad.set_axis("left_y", -1.0)  # forward
        pad.set_axis("right_y", -1.0)  # up
        wait_until(lambda: pos(st)[0] > p0[0] + 0.02 and pos(st)[2] > p0[2] + 0.02,
                   what="forward and upward motion")
        pad.set_axis("left_y", 0.0)
        pad.set_axis("right_y", 0.0)
        pad.set_axis("left_x", 1.0)  # right = -y
        p1 = pos(st)
        wait_until(lambda: pos(st)[1] < p1[1] - 0.02, what="motion to the right")
    finally:
        st.close()


def test_gripper_button_toggles_and_short_taps_are_not_missed(pads):
    pad = pads("xbox")
    st = running_station(rate_hz=15.0)
    try:
        wait_teleop(st)
        pad.set_button("a", True)
        time.sleep(0.02)  # a tap far shorter than the 67 ms control period
        pad.set_button("a", False)
        wait_until(lambda: last(st).action[-1] == 0.0, what="gripper closed")
        pad.set_button("a", True)
        time.sleep(0.02)
        pad.set_button("a", False)
        wait_until(lambda: last(st).action[-1] == 1.0, what="gripper open")
    finally:
        st.close()


def test_deadman_required_holds_until_held(pads):
    pad = pads("xbox")
    st = running_station({"require_deadman": True})
    try:
        wait_until(lambda: last(st) is not None and "deadman" in last(st).hold_reason,
                   what="deadman hold")
        assert "LB" in last(st).hold_reason
        p0 = pos(st)
        pad.set_button("left_shoulder", True)
        pad.set_axis("left_y", -1.0)
        wait_until(lambda: pos(st)[0] > p0[0] + 0.01, what="motion with the deadman held")
        pad.set_button("left_shoulder", False)
        wait_until(lambda: "deadman" in last(st).hold_reason, what="hold on release")
        p1 = pos(st)
        seq = st.loop.snapshot.get_with_seq()[1]
        st.loop.snapshot.wait_newer(seq + 5, 1.0)
        assert pos(st)[0] == p1[0]
    finally:
        st.close()


def test_intervention_button_takes_over_a_policy_run(pads):
    pad = pads("xbox")
    st = null_station([{"type": "gamepad"}])
    st.start()
    try:
        source = st.use_teleop("gamepad")
        st.set_policy_source(FixedActionSource(np.array([0, 0.002, 0, 0, 0, 0, 0.0]),
                                               SourceKind.POLICY))
        st.session.start(ControlMode.POLICY)
        wait_until(lambda: last(st) is not None and last(st).source == SourceKind.POLICY)
        # The pad must be seen connected at rest first: a stick already deflected when the
        # device connects never moves the robot (let go first), as for an operator.
        wait_until(lambda: source.armed,
                   what="the gamepad connected and seen at rest")
        pad.set_button("right_shoulder", True)
        pad.set_axis("left_y", -1.0)
        wait_until(lambda: last(st).source == SourceKind.INTERVENTION and last(st).action[0] > 0,
                   what="an intervention step moving forward")
        assert last(st).action[-1] == 0.0  # the policy's closed gripper was kept
        pad.set_button("right_shoulder", False)
        pad.set_axis("left_y", 0.0)  # the stick past the takeover threshold keeps control
        wait_until(lambda: last(st).source == SourceKind.POLICY, what="hand back to the policy")
    finally:
        st.close()


def test_stop_button_latches_the_estop_from_the_reader_thread(pads):
    pad = pads("xbox")
    st = running_station()
    try:
        wait_teleop(st)
        pad.set_axis("left_y", -1.0)
        t_press = time.monotonic()
        pad.set_button("b", True)
        wait_until(lambda: st.latch.is_tripped, what="e-stop latched")
        ev = st.latch.event
        assert ev.origin == "teleop:gamepad" and "B" in ev.reason
        assert ev.t >= t_press
        wait_until(lambda: last(st).source == SourceKind.HOLD and last(st).t > ev.t)
        p1 = pos(st)
        seq = st.loop.snapshot.get_with_seq()[1]
        st.loop.snapshot.wait_newer(seq + 5, 1.0)
        assert np.array_equal(pos(st), p1)
    finally:
        st.close()


def test_buttons_send_record_success_failure_and_next_task_commands(pads):
    pad = pads("xbox")
    st = null_station([{"type": "gamepad"}])
    received: queue.Queue[str] = queue.Queue()
    for name in (commands.RECORD_TOGGLE, commands.EPISODE_SUCCESS, commands.EPISODE_FAILURE,
                 commands.TASK_NEXT):
        st.on_command(name, lambda n=name: received.put(n))
    st.start()  # commands work while the session is paused: no run needed
    try:
        gp = st.teleops["gamepad"]
        wait_until(lambda: gp.get_state().connected, what="pad connected")
        got = []
        for button in ("start", "y", "x", "back"):
            pad.set_button(button, True)
            got.append(received.get(timeout=2.0))
            pad.set_button(button, False)
        assert got == [commands.RECORD_TOGGLE, commands.EPISODE_SUCCESS,
                       commands.EPISODE_FAILURE, commands.TASK_NEXT]
    finally:
        st.close()


def test_unplugging_holds_within_the_watchdog_and_replugging_resumes(pads):
    pad = pads("xbox", "Unplug Test Pad")
    st = running_station()
    steps = st.loop.subscribe("test", 100_000)
    try:
        wait_teleop(st)
        pad.set_axis("left_y", -1.0)
        p0 = pos(st)
        wait_until(lambda: pos(st)[0] > p0[0] + 0.01, what="motion before the unplug")
        t_unplug = time.monotonic()
        pad.detach()
        wait_until(lambda: last(st).t > t_unplug + 0.15, what="ticks after the unplug")
        after = []
        while (s := steps.get(timeout=0.01)) is not None:
            if s.t > t_unplug + 0.1:  # the 100 ms watchdog's guarantee
                after.append(s)
        assert after and all(s.source == SourceKind.HOLD for s in after)
        assert "not connected" in after[-1].hold_reason
        p1 = pos(st)
        pad.attach()  # replug: the pad comes back centred
        wait_teleop(st)
        pad.set_axis("left_y", -1.0)
        wait_until(lambda: pos(st)[0] > p1[0] + 0.01, what="motion after the replug")
        assert st.teleops["gamepad"].get_state().generation >= 2
    finally:
        st.close()


def test_a_pad_plugged_in_with_a_stick_pushed_waits_until_it_is_centred(pads):
    st = running_station()
    try:
        pad = VirtualGamepad("xbox", "Pushed Pad")
        pad.attach()
        try:
            pad.set_axis("left_y", -1.0)
            wait_until(lambda: last(st) is not None and "let go" in last(st).hold_reason,
                       what="arming hold")
            p0 = pos(st)
            pad.set_axis("left_y", 0.0)
            wait_teleop(st)
            pad.set_axis("left_y", -1.0)
            wait_until(lambda: pos(st)[0] > p0[0] + 0.005, what="motion once centred")
        finally:
            pad.detach()
    finally:
        st.close()


def test_raw_joystick_uses_the_xbox_index_table_and_the_hat_as_dpad(pads):
    pad = pads("joystick", "Raw Xbox-like Pad")
    pad.set_axis(2, -1.0)  # raw triggers rest at -1
    pad.set_axis(5, -1.0)
    st = running_station({"layout": "xbox", "motion": {"pitch": "", "z": "dpad_up/dpad_down"}})
    try:
        gp = st.teleops["gamepad"]
        wait_teleop(st)
        assert gp.status().details["mapping"] == "raw joystick, xbox index table"
        p0 = pos(st)
        pad.set_hat("up", True)
        wait_until(lambda: pos(st)[2] > p0[2] + 0.01, what="hat up drives z")
        pad.set_hat("up", False)
        pad.set_axis(1, -1.0)  # raw axis 1 = left stick y
        wait_until(lambda: pos(st)[0] > p0[0] + 0.01, what="left stick forward")
        assert gp.get_state().buttons["dpad_up"] is False
    finally:
        st.close()


def test_generic_layout_names_controls_by_index(pads):
    pad = pads("joystick", "Generic Pad")
    st = running_station({"layout": "generic", "motion": {"x": "axis4"},
                          "buttons": {"gripper": "hat0_left"}})
    try:
        gp = st.teleops["gamepad"]
        wait_teleop(st)
        state = gp.get_state()
        assert {"axis0", "button11", "hat0_up"} <= set(state.axes) | set(state.buttons)
        assert gp.control_label("hat0_left") == "Hat 0 ←"
        p0 = pos(st)
        pad.set_axis(4, 1.0)
        wait_until(lambda: pos(st)[0] > p0[0] + 0.01, what="axis4 drives x")
        pad.set_hat("left", True)
        wait_until(lambda: last(st).action[-1] == 0.0, what="hat left toggles the gripper")
    finally:
        st.close()


def test_auto_layout_labels_a_playstation_pad_and_index_picks_the_second_pad(pads):
    pads("xbox", "First Pad")
    pads("playstation", "Second Pad")
    st = running_station({"index": 1})
    try:
        gp = st.teleops["gamepad"]
        wait_teleop(st)
        assert gp.status().details["SDL name"] == "Second Pad"
        legend = {row.action: row.control for row in gp.legend()}
        assert legend["Gripper (toggle)"] == "Cross"
        assert legend["STOP (latch e-stop)"] == "Circle"
    finally:
        st.close()


def test_profile_aliases_and_bad_names():
    from vla_studio.core.config import ConfigError

    st = null_station([{"type": "gamepad", "buttons": {"gripper": "rb", "stop": "circle"},
                        "motion": {"z": "-r2"}}])
    b = st.teleops["gamepad"].mapping.bindings
    assert b.functions["gripper"] == "right_shoulder" and b.functions["stop"] == "b"
    assert b.motion["z"].axis == "trigger_right" and b.motion["z"].sign == -1
    with pytest.raises(ConfigError, match="no button named 'start_button'"):
        null_station([{"type": "gamepad", "buttons": {"record": "start_button"}}])
    with pytest.raises(ConfigError, match="axes: left_x"):
        null_station([{"type": "gamepad", "calibration": {"left_z": {"center": 0.1}}}])
    with pytest.raises(ConfigError, match="axis0, axis1"):
        null_station([{"type": "gamepad", "layout": "generic", "motion": {"x": "left_y"}}])


def test_one_second_of_full_stick_moves_the_same_distance_at_15_and_100_hz(pads):
    pad = pads("xbox", "Rate Pad")
    speeds = {}
    for rate in (15.0, 100.0):
        st = running_station({"linear_speed": 0.15, "ramp_s": 0.15}, rate_hz=rate)
        try:
            wait_teleop(st)
            p0 = pos(st)[0]
            t0 = time.monotonic()
            pad.set_axis("left_y", -1.0)
            time.sleep(1.0)
            pad.set_axis("left_y", 0.0)
            held = time.monotonic() - t0
            wait_until(lambda: last(st).requested is not None and last(st).requested[0] == 0.0,
                       what="stop after release")
            travelled = pos(st)[0] - p0
            # full speed minus the ramp's half-second-of-ramp loss, per second held
            speeds[rate] = travelled / (held - 0.075)
        finally:
            st.close()
    one_tick_at_15hz = 1.0 / 15.0
    assert speeds[15.0] == pytest.approx(0.15, rel=one_tick_at_15hz + 0.02)
    assert speeds[100.0] == pytest.approx(0.15, rel=0.03)
    assert speeds[15.0] == pytest.approx(speeds[100.0], rel=one_tick_at_15hz + 0.02)


def test_reading_gamepads_leaves_sigterm_to_the_application():
    import signal
    import subprocess
    import sys
    from pathlib import Path

    code = ("import os, signal, time\n"
            "from vla_studio.devices.teleop.sdl_joysticks import SdlJoystickHub\n"
            "hub = SdlJoystickHub.acquire()\n"
            "assert hub.error is None, hub.error\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(2)\n"
            "print('survived SIGTERM')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=30)
    assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr


def test_the_deadman_is_on_by_default_when_the_robot_is_not_simulated(pads):
    pad = pads("xbox")
    st = real_robot_station()
    assert st.teleops["gamepad"].config.require_deadman is True
    assert st.deadman_origins == {"gamepad": "default for a real robot"}
    st.start()
    try:
        st.use_teleop("gamepad")
        st.session.start(ControlMode.TELEOP)
        wait_until(lambda: last(st) is not None and "deadman" in last(st).hold_reason,
                   what="deadman hold")
        p0 = pos(st)
        pad.set_axis("left_y", -1.0)  # pushed without the deadman: nothing moves
        seq = st.loop.snapshot.get_with_seq()[1]
        st.loop.snapshot.wait_newer(seq + 10, 1.0)
        assert pos(st)[0] == p0[0]
        pad.set_axis("left_y", 0.0)
        pad.set_button("left_shoulder", True)
        pad.set_axis("left_y", -1.0)
        wait_until(lambda: pos(st)[0] > p0[0] + 0.01, what="motion with the deadman held")
    finally:
        st.close()


def test_an_explicit_require_deadman_in_the_profile_always_wins():
    st = real_robot_station({"require_deadman": False})
    assert st.teleops["gamepad"].config.require_deadman is False
    assert st.deadman_origins == {"gamepad": "profile"}
    sim = null_station([{"type": "gamepad"}])  # the null robot is simulated: off by default
    assert sim.teleops["gamepad"].config.require_deadman is False
    assert sim.deadman_origins == {"gamepad": "default for a simulated robot"}
