"""The example Franka station (examples/franka_sim.toml) on the real control loop, against
franky-sim: the keyboard drives the arm, the e-stop stops a running motion through libfranka's
stop, and a reflex latches the e-stop with one line until the operator recovers the robot."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from vla_studio.core import commands
from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.safety import SafetyFlag
from vla_studio.core.types import SourceKind
from vla_studio.station import Station

from franka_stations import franka_sim_profile
from tests.devices.teleop_stations import Heartbeat
from tests.waiting import wait_until


@pytest.fixture
def station(franka_sim, tmp_path):
    st = Station.from_profile(franka_sim_profile(franka_sim.hostname, tmp_path))
    st.start()
    yield st
    if st.robot.is_connected and st.robot.fault:
        st.robot.recover()
    st.close()


def ee(station) -> np.ndarray:
    step = station.loop.snapshot.get()
    return np.asarray(step.observation.state["ee_pos"], dtype=np.float64)


def source(station) -> SourceKind | None:
    step = station.loop.snapshot.get()  # None until the first tick
    return None if step is None else step.source


def still(station, seconds: float = 0.3) -> bool:
    before = ee(station)
    threading.Event().wait(seconds)
    return float(np.linalg.norm(ee(station) - before)) < 0.0005


def teleop(station) -> None:
    station.use_teleop("keyboard")
    station.session.start(ControlMode.TELEOP)
    assert wait_until(lambda: source(station) == SourceKind.TELEOP, 5.0)


def test_the_keyboard_drives_the_franka_through_the_control_loop(station):
    kb = station.teleops["keyboard"]
    assert station.teleops["gamepad"].config.require_deadman  # a real robot's default
    with Heartbeat(kb):
        teleop(station)
        start = ee(station)
        kb.press("w")  # forward: +x
        assert wait_until(lambda: ee(station)[0] > start[0] + 0.03, timeout=15.0)
        kb.release("w")
        assert wait_until(lambda: still(station), timeout=5.0)  # released: the arm stops
        kb.press("r")  # up: +z
        assert wait_until(lambda: ee(station)[2] > start[2] + 0.02, timeout=15.0)
        kb.release("r")
    counts = station.loop.counters.snapshot()
    assert not {"ROBOT_UNRESPONSIVE", "STATE_INVALID"} & set(counts), counts
    assert station.robot.fault == "" and not station.latch.is_tripped


def test_the_estop_stops_a_running_motion_within_one_control_period(station):
    kb, robot = station.teleops["keyboard"], station.robot
    with Heartbeat(kb):
        teleop(station)
        start = ee(station)
        kb.press("w")
        assert wait_until(lambda: ee(station)[0] > start[0] + 0.02, timeout=15.0)
        assert robot.emergency_stops == 0
        station.latch.trigger("operator STOP", "test")  # the key stays held
        assert wait_until(lambda: robot.emergency_stops >= 1, timeout=1.0)
        # libfranka's stop had returned within one control period of the trigger
        assert robot.last_emergency_stop - station.latch.event.t < station.loop.period_s
        assert station.session.state == RunState.ESTOPPED
        assert wait_until(lambda: station.loop.snapshot.get().safety_flags & SafetyFlag.ESTOP, 1.0)
        # the arm settles on the pose it was stopped at and stays there, the key still held
        assert wait_until(lambda: still(station), timeout=3.0)
        assert still(station, 0.5)
        kb.release("w")


def test_a_reflex_latches_the_estop_with_one_line_and_the_operator_recovers(
        station, franka_sim, caplog):
    kb, robot = station.teleops["keyboard"], station.robot
    events = []
    station.events.subscribe(events.append)
    with Heartbeat(kb):
        teleop(station)
        start = ee(station)
        kb.press("w")
        assert wait_until(lambda: ee(station)[0] > start[0] + 0.01, timeout=15.0)
        with caplog.at_level(logging.ERROR):
            franka_sim.command("reflex", "cartesian_reflex")
            assert wait_until(lambda: station.latch.is_tripped, timeout=3.0)
        kb.release("w")
        reason = station.latch.event.reason
        assert "cartesian_reflex" in reason and "Recover robot" in reason and "\n" not in reason
        assert "cartesian_reflex" in robot.fault
        station.run_command(commands.ROBOT_RECOVER)  # Robot > Recover robot
        assert wait_until(lambda: any(e.kind == "robot.recovered" for e in events), 5.0)
        assert robot.fault == ""
        assert station.latch.is_tripped  # recovering moves nothing and resets no e-stop
        station.latch.request_reset()
        assert station.latch.confirm_reset()
        assert station.session.state == RunState.PAUSED
        teleop(station)
        held = ee(station)
        kb.press("w")
        assert wait_until(lambda: ee(station)[0] > held[0] + 0.01, timeout=15.0)
        kb.release("w")


def test_recover_without_a_fault_is_a_quiet_no_op(station):
    events = []
    station.events.subscribe(events.append)
    station.run_command(commands.ROBOT_RECOVER)
    assert wait_until(lambda: any(e.kind.startswith("robot.recover") for e in events), 5.0)
    assert [e.kind for e in events if e.kind.startswith("robot.recover")] == ["robot.recovered"]
    assert station.session.state == RunState.PAUSED
