"""The example ROS 2 station on the real control loop against the fake arm node: the keyboard
drives the arm, a silent arm topic holds the robot, and the e-stop reaches the arm."""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest

from vla_studio.core.profile import parse_profile
from vla_studio.core.safety import SafetyFlag
from vla_studio.core.session import ControlMode, RunState
from vla_studio.core.types import SourceKind
from vla_studio.devices.registry import config_class_for
from vla_studio.station import Station

from tests.devices.teleop_stations import Heartbeat
from tests.waiting import wait_until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ros2_fake_arm.toml"


@pytest.fixture
def station(fake_arm, tmp_path):
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["robot"]["router"] = fake_arm.router
    for cam in data["cameras"]:
        cam["router"] = fake_arm.router
    data["recording"]["dataset_dir"] = str(tmp_path / "dataset")
    st = Station.from_profile(parse_profile(data, config_class_for, source=str(EXAMPLE),
                                            path=EXAMPLE))
    st.start()
    yield st
    st.close()


def step(station):
    return station.loop.snapshot.get()


def ee(station) -> np.ndarray | None:
    s = step(station)
    pos = None if s is None else s.observation.state.get("ee_pos")
    return None if pos is None else np.asarray(pos, dtype=float)


def drive(station):
    station.use_teleop("keyboard")
    station.session.start(ControlMode.TELEOP)
    assert wait_until(lambda: step(station) is not None and step(station).source ==
                      SourceKind.TELEOP, timeout=10.0)


def test_keyboard_drives_the_arm_and_a_silent_arm_topic_holds_it(station, fake_arm):
    kb = station.teleops["keyboard"]
    with Heartbeat(kb):
        drive(station)
        start = ee(station)
        kb.press("w")
        assert wait_until(lambda: ee(station) is not None and ee(station)[0] > start[0] + 0.02,
                          timeout=10.0)
        assert station.cameras["overhead"].latest() is not None  # the arm's camera is live
        assert fake_arm.command("silence") == "ok silence"  # the arm's topics go quiet
        assert wait_until(lambda: step(station).safety_flags & SafetyFlag.STATE_INVALID, 2.0)
        assert step(station).source == SourceKind.HOLD  # the key is still held
        assert fake_arm.command("speak") == "ok speak"
        kb.release("w")
        assert wait_until(lambda: ee(station) is not None, timeout=2.0)
    assert station.robot.fault == ""


def test_the_estop_reaches_the_fake_arm(station, fake_arm):
    kb = station.teleops["keyboard"]
    with Heartbeat(kb):
        drive(station)
        kb.press("w")
        assert wait_until(lambda: ee(station) is not None, timeout=10.0)
        station.latch.trigger("operator STOP", "test")
        assert wait_until(lambda: fake_arm.estop_events[-1:] and
                          fake_arm.estop_events[-1][0] == "true", timeout=2.0)
        assert station.session.state == RunState.ESTOPPED
        threading.Event().wait(0.3)  # the arm ran into its own stop
        held = ee(station)
        threading.Event().wait(0.3)
        assert np.linalg.norm(ee(station) - held) < 1e-6  # and stays, the key still held
        kb.release("w")
        station.latch.request_reset()
        assert station.latch.confirm_reset()
        assert wait_until(lambda: fake_arm.estop_events[-1][0] == "false", timeout=2.0)
