"""The keyboard device on a running station: keys move the null robot, releases and staleness
hold it, buttons toggle the gripper, take over from a policy without a jump, and run commands."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vla_studio.core import commands
from vla_studio.core.arbiter import FixedActionSource
from vla_studio.core.config import ConfigError
from vla_studio.core.session import ControlMode
from vla_studio.core.types import SourceKind

from tests.devices.teleop_stations import Heartbeat, null_station, wait_until


@pytest.fixture
def station():
    st = null_station([{"type": "keyboard", "buttons": {"record": "c", "stop": "x"}}])
    st.start()
    yield st
    st.close()


def x_of(station) -> float:
    return float(station.robot.get_observation()["ee_pos"][0])


def test_held_key_moves_the_robot_and_release_stops_it(station):
    kb = station.teleops["keyboard"]
    station.use_teleop("keyboard")
    station.session.start(ControlMode.TELEOP)
    x0 = x_of(station)
    with Heartbeat(kb):
        wait_until(lambda: station.loop.snapshot.get().source == SourceKind.TELEOP, what="armed")
        kb.press("w")
        wait_until(lambda: x_of(station) > x0 + 0.02, what="forward motion")
        kb.release("w")
        wait_until(lambda: station.loop.snapshot.get().requested is not None
                   and station.loop.snapshot.get().requested[0] == 0.0, what="stop on release")
        x1 = x_of(station)
        seq = station.loop.snapshot.get_with_seq()[1]
        station.loop.snapshot.wait_newer(seq + 5, 1.0)
    assert x_of(station) == pytest.approx(x1)


def test_keyboard_without_gui_heartbeat_goes_stale_and_holds(station):
    kb = station.teleops["keyboard"]
    station.use_teleop("keyboard")
    station.session.start(ControlMode.TELEOP)
    with Heartbeat(kb):
        wait_until(lambda: station.loop.snapshot.get().source == SourceKind.TELEOP, what="armed")
    kb.press("w")  # one event, then the "GUI" freezes: no heartbeat
    wait_until(lambda: station.loop.snapshot.get().source == SourceKind.HOLD
               and "stale" in station.loop.snapshot.get().hold_reason, what="stale hold")
    x1 = x_of(station)
    seq = station.loop.snapshot.get_with_seq()[1]
    station.loop.snapshot.wait_newer(seq + 5, 1.0)
    assert x_of(station) == x1
    assert station.loop.counters.snapshot().get("TELEOP_STALE", 0) > 0


def test_key_held_when_the_run_starts_does_not_move_until_released(station):
    kb = station.teleops["keyboard"]
    station.use_teleop("keyboard")
    with Heartbeat(kb):
        kb.press("w")
        station.session.start(ControlMode.TELEOP)
        wait_until(lambda: "let go" in station.loop.snapshot.get().hold_reason, what="arming hold")
        x0 = x_of(station)
        kb.release("w")
        wait_until(lambda: station.loop.snapshot.get().source == SourceKind.TELEOP, what="armed")
        kb.press("w")
        wait_until(lambda: x_of(station) > x0 + 0.005, what="motion after re-press")


def test_gripper_key_toggles_the_gripper_command(station):
    kb = station.teleops["keyboard"]
    station.use_teleop("keyboard")
    station.session.start(ControlMode.TELEOP)
    with Heartbeat(kb):
        wait_until(lambda: station.loop.snapshot.get().source == SourceKind.TELEOP)
        kb.press("g")
        kb.release("g")  # a tap shorter than a control period still counts
        wait_until(lambda: station.loop.snapshot.get().action[-1] == 0.0, what="gripper closed")
        kb.press("g")
        kb.release("g")
        wait_until(lambda: station.loop.snapshot.get().action[-1] == 1.0, what="gripper open")


def test_takeover_keeps_the_policys_gripper_and_ramps_from_rest(station):
    kb = station.teleops["keyboard"]
    station.use_teleop("keyboard")
    policy_action = np.array([0.0, 0.004, 0.0, 0.0, 0.0, 0.0, 0.0])  # gripper closed on an object
    station.set_policy_source(FixedActionSource(policy_action, SourceKind.POLICY))
    steps = station.loop.subscribe("test", 10_000)
    station.session.start(ControlMode.POLICY)
    with Heartbeat(kb):
        wait_until(lambda: station.loop.snapshot.get().source == SourceKind.POLICY)
        kb.press("w")  # stick already pushed when taking over
        kb.press("t")
        wait_until(lambda: station.loop.snapshot.get().source == SourceKind.INTERVENTION)
        kb.release("t")
        kb.release("w")  # every control at rest: after takeover_release_s the policy drives
        wait_until(lambda: station.loop.snapshot.get().source == SourceKind.POLICY)
    got = []
    while (s := steps.get(timeout=0.01)) is not None:
        got.append(s)
    takeover = [s for s in got if s.source == SourceKind.INTERVENTION]
    assert takeover, "no intervention step recorded"
    first = takeover[0].action
    assert first[-1] == 0.0  # the gripper did not open at the handover
    assert 0.0 < first[0] < 0.1 * 0.02 + 1e-9  # a ramp step, not full speed (0.1 m/s x 0.02 s)
    assert first[1] == 0.0  # the policy's sideways motion stopped at the handover


def test_bound_keys_run_station_commands_and_stop_latches(station):
    kb = station.teleops["keyboard"]
    ran = threading.Event()
    station.on_command(commands.RECORD_TOGGLE, ran.set)
    kb.press("c")
    assert ran.wait(2.0)
    kb.press("x")
    assert station.latch.is_tripped
    assert station.latch.event.origin == "teleop:keyboard"


def test_escape_and_space_cannot_be_bound():
    with pytest.raises(ConfigError, match="Esc always latches"):
        null_station([{"type": "keyboard", "buttons": {"gripper": "escape"}}])
    with pytest.raises(ConfigError, match="no button named 'f1'"):
        null_station([{"type": "keyboard", "motion": {"z": "f1/f2"}}])
