"""End to end: the default profile's station, its control loop and the scripted expert."""

from __future__ import annotations

import time

from vla_studio.core.session import ControlMode
from vla_studio.core.types import SourceKind
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import default_station_profile
from vla_studio.station import Station


def test_default_profile_is_the_simulated_tabletop():
    profile = load_station_profile(default_station_profile())
    assert profile.robot.type == "sim" and profile.action_space.kind == "ee_delta"
    assert [c.name for c in profile.cameras] == ["front", "wrist"]
    assert [t.type for t in profile.teleops] == ["keyboard", "gamepad", "spacemouse", "scripted"]
    assert 15 <= profile.control_rate_hz <= 20


def test_scripted_expert_picks_up_the_red_cube_through_the_real_control_loop():
    instruction = "pick up the red cube"
    station = Station.from_profile(load_station_profile(default_station_profile()))
    steps = station.loop.subscribe("test", maxsize=2000)
    try:
        station.start()
        station.use_teleop("expert")
        station.begin_episode(instruction, seed=3)
        assert station.robot.episode_task == "pick_red"
        assert station.robot.episode_success(instruction) is False
        station.session.start(ControlMode.TELEOP)
        deadline = time.monotonic() + 30.0
        done, driven = None, 0
        while done is None and time.monotonic() < deadline:
            step = steps.get(timeout=1.0)
            if step is None:
                continue
            driven += step.source == SourceKind.TELEOP
            if step.hold_reason == "task done":
                done = step
        assert done is not None, "the expert did not finish within 30 s"
        assert driven > 40  # the expert moved the arm through the loop for seconds
        assert station.robot.episode_success(instruction) is True
        assert station.loop.counters.snapshot() == {}  # nothing clamped, nothing held for safety
        frames = done.observation.frames
        assert frames["front"] is not None and frames["wrist"] is not None
        assert frames["wrist"].depth is not None
    finally:
        station.close()
