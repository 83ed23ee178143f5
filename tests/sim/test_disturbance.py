"""Pushes on the simulated arm (DART-style demonstrations): the process and the sim robot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_studio.core.config import ConfigError, build
from vla_studio.devices.robots.sim import SimRobot, SimRobotConfig
from vla_studio.sim.disturbance import Disturbance, DisturbanceSettings

DT = 0.05


def _run(d: Disturbance, seconds: float) -> np.ndarray:
    return np.array([d.step(DT) for _ in range(int(round(seconds / DT)))])


def test_no_settings_no_pushes():
    d = Disturbance(DisturbanceSettings(), seed=3)
    assert not np.any(_run(d, 30.0))
    assert d.pushes == 0


def test_pushes_are_seeded_per_episode_and_never_go_down():
    st = DisturbanceSettings(speed=0.08, turn=0.5, rate=0.4)
    a, b = Disturbance(st, seed=11), Disturbance(st, seed=11)
    np.testing.assert_array_equal(_run(a, 60.0), _run(b, 60.0))
    other = Disturbance(st, seed=12)
    assert not np.array_equal(_run(Disturbance(st, seed=11), 60.0), _run(other, 60.0))
    steps = _run(Disturbance(st, seed=11), 60.0)
    assert np.all(steps[:, 2] >= 0.0)
    # About rate * time pushes; each moves at most speed * (2 / pi) * the longest duration.
    d = Disturbance(st, seed=5)
    _run(d, 100.0)
    assert 25 <= d.pushes <= 55
    a.reset(11)
    np.testing.assert_array_equal(_run(a, 60.0), steps)  # reset restarts the same draw


def test_one_push_is_a_half_sine_whose_total_is_exact():
    st = DisturbanceSettings(speed=0.1, turn=0.4, rate=1000.0, duration=(0.5, 0.5))
    d = Disturbance(st, seed=1)
    first = d.step(DT)
    assert d.pushing
    steps = [first] + [d.step(DT) for _ in range(9)]
    steps = np.array(steps)
    peak = d._velocity  # the push under way
    np.testing.assert_allclose(steps.sum(axis=0), peak * 0.5 * 2 / math.pi, rtol=1e-9)
    speeds = np.linalg.norm(steps[:, :2], axis=1)
    assert speeds[0] < speeds[4] and speeds[-1] < speeds[5]  # smooth start and end
    assert 0.05 <= np.linalg.norm(peak[:2]) <= 0.1 and 0.2 <= abs(peak[3]) <= 0.4


@pytest.fixture
def pushed():
    r = SimRobot(SimRobotConfig(name="sim", world="test_pushes", push_speed=0.1, push_turn=0.5,
                                push_rate=2.0))
    r.connect()
    yield r
    r.disconnect()


def test_the_sim_robot_is_pushed_while_the_recorded_command_stays_clean(pushed):
    pushed.reset_episode(seed=4)
    start = pushed.get_observation()["ee_pos"].copy()
    still = np.array([0, 0, 0, 0, 0, 0, 1.0])
    sent = [pushed.send_action(still) for _ in range(60)]  # 3 s of "stay where you are"
    assert all(s[:6].tolist() == [0.0] * 6 for s in sent)  # what the robot reports it got
    assert pushed.disturbance.pushes >= 1
    moved = np.linalg.norm(pushed.get_observation()["ee_pos"] - start)
    assert moved > 0.01
    # The same episode seed pushes the same way.
    first = pushed.get_observation()["ee_pos"].copy()
    pushed.reset_episode(seed=4)
    for _ in range(60):
        pushed.send_action(still)
    np.testing.assert_allclose(pushed.get_observation()["ee_pos"], first, atol=1e-6)


def test_holds_and_emergency_holds_are_never_pushed(pushed):
    pushed.reset_episode(seed=4)
    target = pushed.world.arm.target_pos.copy()
    for _ in range(60):
        pushed.hold(pushed.get_observation())
    np.testing.assert_allclose(pushed.world.arm.target_pos, target, atol=1e-12)
    pushed.emergency_hold()
    for _ in range(60):
        pushed.send_action(np.array([0.01, 0, 0, 0, 0, 0, 1.0]))
    np.testing.assert_allclose(pushed.world.arm.target_pos, target, atol=1e-12)
    pushed.release_emergency_hold()


def test_push_settings_in_a_profile_are_checked_like_every_option():
    cfg = build(SimRobotConfig, {"name": "sim", "push_speed": 0.05, "push_turn": 0.4},
                source="station.toml", prefix="robot")
    assert (cfg.push_speed, cfg.push_turn, cfg.push_rate) == (0.05, 0.4, 0.4)
    with pytest.raises(ConfigError, match="push_speed"):
        build(SimRobotConfig, {"name": "sim", "push_speed": -0.1}, source="station.toml",
              prefix="robot")
