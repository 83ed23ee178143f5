"""The Station: profile -> devices -> loop, commands, episodes, clean shutdown."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vla_studio.core import commands
from vla_studio.core.arbiter import FixedActionSource
from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.types import SourceKind
from vla_studio.devices.base import DeviceError
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import resource
from vla_studio.station import Station


@pytest.fixture
def station():
    st = Station.from_profile(load_station_profile(resource("stations", "dry_run.toml")))
    st.start()
    yield st
    st.close()


def test_station_runs_the_profile_devices_through_the_loop(station):
    station.set_teleop_source(FixedActionSource(np.array([0.001, 0, 0, 0, 0, 0, 1.0])))
    station.session.start(ControlMode.TELEOP)
    deadline = time.monotonic() + 3.0
    step = None
    while time.monotonic() < deadline:
        step = station.loop.snapshot.get()
        if step and step.source == SourceKind.TELEOP and all(step.observation.frames.values()):
            break
        time.sleep(0.02)
    assert step.source == SourceKind.TELEOP
    assert set(step.observation.frames) == {"front", "wrist"}
    assert step.observation.frames["wrist"].depth is not None
    assert station.robot.control_period_s == pytest.approx(1 / 20)


def test_estop_command_needs_no_handler_and_other_commands_report_handling(station):
    assert station.run_command(commands.ESTOP) is True
    assert station.session.state == RunState.ESTOPPED
    assert station.run_command(commands.TASK_NEXT) is False
    calls = []
    station.on_command(commands.TASK_NEXT, lambda: calls.append(1))
    assert station.run_command(commands.TASK_NEXT) is True and calls == [1]


def test_begin_episode_resets_on_the_loop_thread_and_tells_sources(station):
    seen = {}
    station.robot.reset_episode = lambda seed=None: seen.update(
        thread=threading.current_thread().name, seed=seed)
    resets = []
    source = FixedActionSource(None)
    source.reset = resets.append
    station.set_teleop_source(source)
    station.begin_episode("pick up the red cube", seed=7)
    assert seen == {"thread": "control-loop", "seed": 7}
    assert resets == ["pick up the red cube"] and station.instruction == "pick up the red cube"


def test_unknown_teleop_name_is_a_clear_error(station):
    with pytest.raises(DeviceError, match="no teleop device named 'pad'"):
        station.use_teleop("pad")


def test_close_stops_every_thread_it_started():
    st = Station.from_profile(load_station_profile(resource("stations", "dry_run.toml")))
    st.start()
    time.sleep(0.2)
    st.close()
    names = {t.name for t in threading.enumerate()}
    assert not names & {"control-loop", "camera-front", "camera-wrist", "estop-relay",
                        "robot-deadline"}


def test_a_started_station_delivers_a_stop_to_the_robot_through_its_relay(station):
    assert {"estop-relay", "robot-deadline"} <= {t.name for t in threading.enumerate()}
    station.run_command(commands.ESTOP)
    deadline = time.monotonic() + 2.0
    while not station.robot.emergency_times and time.monotonic() < deadline:
        time.sleep(0.01)
    assert station.robot.emergency_times and station.robot.emergency_held


def test_the_keyboard_never_gets_a_default_deadman():
    from vla_studio.devices.teleop.keyboard import KeyboardTeleop
    from vla_studio.devices.teleop.mapping import MappedTeleopConfig
    from vla_studio.station import resolve_deadman

    config, origin = resolve_deadman(KeyboardTeleop, MappedTeleopConfig(name="keyboard"),
                                     robot_simulated=False)
    assert config.require_deadman is False and origin == "default for a real robot"
