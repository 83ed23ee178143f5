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


class RecordingObserver:
    """A station observer that follows the loop's steps on its own thread (test double of a
    plugin's observer: only the StationObserver interface, no registry needed)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        from vla_studio.devices.observers import ObserverConfig

        self.config = ObserverConfig(name=name)
        self.name, self.fail = name, fail
        self.steps: list[int] = []
        self.context = None
        self.loop_was_running = False
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, context) -> None:
        if self.fail:
            raise DeviceError("no graph to publish to")
        self.context = context
        self._thread = threading.Thread(target=self._run, name=f"observer-{self.name}")
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        while not self.stopped.is_set():
            step, seq = self.context.snapshot.wait_newer(seq, 0.05)
            if step is not None:
                self.steps.append(step.index)

    def stop(self) -> None:
        self.stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def test_observers_follow_the_run_and_one_that_cannot_start_is_reported_and_left_out():
    profile = load_station_profile(resource("stations", "dry_run.toml"))
    base = Station.from_profile(profile)
    watcher, broken = RecordingObserver("watcher"), RecordingObserver("broken", fail=True)
    station = Station(profile, base.robot, base.cameras, base.teleops,
                      {"broken": broken, "watcher": watcher})  # type: ignore[dict-item]
    events = []
    station.events.subscribe(events.append)
    station.start()
    try:
        assert station.loop.is_running
        deadline = time.monotonic() + 3.0
        while len(watcher.steps) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(watcher.steps) >= 5 and watcher.steps == sorted(watcher.steps)
        ctx = watcher.context
        assert ctx.station_name == profile.name and ctx.latch is station.latch
        assert ctx.action_names == station.robot.action_space.names
        assert set(ctx.camera_names) == {"front", "wrist"}
        assert "ee_pos" in ctx.state_features
        [error] = [e for e in events if e.kind == "observer.error"]
        assert "broken" in error.message and "no graph" in error.message
    finally:
        station.close()
    assert watcher.stopped.is_set() and not watcher._thread.is_alive()


def test_a_profile_lists_observers_validated_against_their_kind(tmp_path):
    from dataclasses import dataclass

    from vla_studio.core.config import ConfigError, option
    from vla_studio.core.profile import parse_profile
    from vla_studio.devices.observers import ObserverConfig
    from vla_studio.devices.registry import config_class_for

    @dataclass(frozen=True)
    class GraphConfig(ObserverConfig):
        rate_hz: float = option(5.0, min=0.1, max=100.0, help="publishing rate")

    def resolver(group: str, kind: str) -> type:
        return GraphConfig if (group, kind) == ("observers", "graph") else \
            config_class_for(group, kind)

    data = {"name": "cell", "control_rate_hz": 20, "robot": {"type": "null"},
            "observers": [{"type": "graph", "rate_hz": 10.0}]}
    profile = parse_profile(data, resolver, source="cell.toml")
    [spec] = profile.observers
    assert spec.type == "graph" and spec.config.rate_hz == 10.0 and spec.config.name == "graph"
    data["observers"][0]["rate_hz"] = 1000.0
    with pytest.raises(ConfigError, match=r"observers\[0\]\.rate_hz"):
        parse_profile(data, resolver, source="cell.toml")
