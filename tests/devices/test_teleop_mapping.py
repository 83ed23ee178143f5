"""The mapping from raw controls to end-effector deltas: calibration, bindings, speeds, ramp,
frame rotation and rate independence (pure functions, no threads)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_studio.core.config import ConfigError, build
from vla_studio.devices.base import TeleopState
from vla_studio.devices.teleop.bindings import (AxisCalibration, ChannelBinding, resolve_bindings)
from vla_studio.devices.teleop.mapping import MappedTeleopConfig, TeleopMapping, Tuning, calibrate


def make_mapping(**options) -> TeleopMapping:
    config = build(MappedTeleopConfig, {"name": "dev", **options}, source="test")
    motion = {"x": "-ly", "y": "-lx", "z": "up/down", "yaw": "rx"}
    bindings = resolve_bindings(motion, {"precision": "slow"}, config.motion, config.buttons)
    return TeleopMapping(config, bindings)


def state(axes=None, buttons=None) -> TeleopState:
    return TeleopState(1.0, axes or {}, buttons or {})


def test_calibration_subtracts_drift_and_rescales_the_deadzone():
    cal = AxisCalibration(center=0.05)
    assert calibrate(0.1, cal, deadzone=0.1, expo=1.0) == 0.0  # 0.05 off centre: inside
    assert calibrate(1.05, cal, deadzone=0.1, expo=1.0) == pytest.approx(1.0)
    # continuous at the deadzone edge, linear after it
    assert calibrate(0.05 + 0.1 + 0.45, cal, deadzone=0.1, expo=1.0) == pytest.approx(0.5)


def test_calibration_invert_scale_and_expo():
    assert calibrate(0.5, AxisCalibration(invert=True), 0.0, 1.0) == pytest.approx(-0.5)
    assert calibrate(0.5, AxisCalibration(scale=3.0), 0.0, 1.0) == 1.0  # clipped to full scale
    assert calibrate(0.5, AxisCalibration(), 0.0, 2.0) == pytest.approx(0.25)
    assert calibrate(0.5, AxisCalibration(expo=1.0, deadzone=0.0), 0.3, 2.0) == pytest.approx(0.5)
    assert calibrate(float("nan"), AxisCalibration(), 0.0, 1.0) == 0.0


def test_channel_binding_parses_axes_and_button_pairs():
    assert ChannelBinding.parse("-left_y") == ChannelBinding(axis="left_y", sign=-1.0)
    assert ChannelBinding.parse("w/s") == ChannelBinding(plus="w", minus="s")
    assert ChannelBinding.parse("w/") == ChannelBinding(plus="w", minus="")
    assert not ChannelBinding.parse("").is_bound
    with pytest.raises(ValueError, match="not an axis"):
        ChannelBinding.parse("left y")


def test_profile_overrides_replace_defaults_and_unknown_names_are_explained():
    b = resolve_bindings({"x": "-ly"}, {"gripper": "a"}, {"x": "ry"}, {"gripper": "", "stop": "b"})
    assert b.motion["x"].axis == "ry" and "gripper" not in b.functions and b.functions["stop"] == "b"
    with pytest.raises(ValueError, match="channels: x, y, z, roll, pitch, yaw"):
        resolve_bindings({}, {}, {"forward": "ly"}, {})
    with pytest.raises(ValueError, match="functions: gripper"):
        resolve_bindings({}, {}, {}, {"grab": "a"})


def test_bad_mapping_values_in_a_profile_name_the_key():
    with pytest.raises(ConfigError, match="teleops\\[0\\].linear_speed"):
        build(MappedTeleopConfig, {"name": "d", "linear_speed": -1}, source="p.toml",
              prefix="teleops[0].")
    with pytest.raises(ConfigError, match="calibration.lx.deadzone"):
        build(MappedTeleopConfig, {"name": "d", "calibration": {"lx": {"deadzone": 2}}},
              source="p.toml", prefix="teleops[0].")


def test_full_stick_commands_the_configured_speed_in_operator_frame():
    m = make_mapping(linear_speed=0.2, deadzone=0.0)
    inp = m.read(state({"ly": -1.0}))  # stick pushed away from the operator
    v = m.target_velocity(inp, Tuning())
    np.testing.assert_allclose(v, [0.2, 0, 0, 0, 0, 0])


def test_diagonal_input_is_no_faster_than_straight_input():
    m = make_mapping(linear_speed=0.2, deadzone=0.0)
    v = m.target_velocity(m.read(state({"ly": -1.0, "lx": -1.0})), Tuning())
    assert np.linalg.norm(v[:3]) == pytest.approx(0.2)


def test_button_pairs_precision_tuning_and_rotation_switch():
    m = make_mapping(linear_speed=0.2, angular_speed=1.0, precision_scale=0.25, deadzone=0.0)
    v = m.target_velocity(m.read(state({"rx": 1.0}, {"up": True})), Tuning(linear=0.5))
    np.testing.assert_allclose(v, [0, 0, 0.1, 0, 0, 1.0])
    slow = m.target_velocity(m.read(state({}, {"up": True, "slow": True})), Tuning())
    assert slow[2] == pytest.approx(0.05)
    no_rot = m.target_velocity(m.read(state({"rx": 1.0})), Tuning(rotation=False))
    assert not np.any(no_rot)
    both = m.read(state({}, {"up": True, "down": True}))
    assert both.neutral


def test_dominant_axis_keeps_only_the_strongest_channel():
    m = make_mapping(dominant_axis=True, deadzone=0.0, linear_speed=1.0, angular_speed=1.0)
    v = m.target_velocity(m.read(state({"ly": -0.9, "lx": 0.3, "rx": 0.5})), Tuning())
    np.testing.assert_allclose(v, [0.9, 0, 0, 0, 0, 0])


def test_frame_yaw_turns_operator_motion_into_the_base_frame():
    m = make_mapping(frame_yaw_deg=180.0)  # the operator faces the robot
    out = m.to_base(np.array([0.1, 0.0, 0.05, 0.0, 0.0, 0.3]))
    np.testing.assert_allclose(out, [-0.1, 0.0, 0.05, 0.0, 0.0, 0.3], atol=1e-12)
    m90 = make_mapping(frame_yaw_deg=90.0)
    np.testing.assert_allclose(m90.to_base(np.array([0.1, 0, 0, 0.2, 0, 0])),
                               [0, 0.1, 0, 0, 0.2, 0], atol=1e-12)


def test_ramp_limits_acceleration_but_brakes_at_once():
    m = make_mapping(linear_speed=0.2, ramp_s=0.2)
    target = np.array([0.2, 0, 0, 0, 0, 0])
    v, mean = m.ramp(np.zeros(6), target, 0.05)
    assert v[0] == pytest.approx(0.05) and mean[0] == pytest.approx(0.025)
    v, _ = m.ramp(v, np.zeros(6), 0.05)
    assert not np.any(v)  # letting go stops immediately
    v, _ = m.ramp(np.array([0.2, 0, 0, 0, 0, 0]), -target, 0.05)
    assert v[0] == pytest.approx(-0.05)  # reversing brakes to zero first, then ramps


@pytest.mark.parametrize("ramp_s", [0.0, 0.15, 0.4])
def test_one_second_of_full_stick_moves_the_same_distance_at_15_and_100_hz(ramp_s):
    m = make_mapping(linear_speed=0.2, ramp_s=ramp_s, deadzone=0.0)
    inp = m.read(state({"ly": -1.0}))
    distances = []
    for rate in (15, 100):
        dt, v, travelled = 1.0 / rate, np.zeros(6), 0.0
        for _ in range(rate):  # exactly one second of ticks
            v, mean = m.ramp(v, m.target_velocity(inp, Tuning()), dt)
            travelled += float(m.to_base(mean)[0] * dt)
        distances.append(travelled)
    assert distances[0] == pytest.approx(distances[1], rel=0.005)
    assert distances[0] == pytest.approx(0.2 * (1.0 - ramp_s / 2), rel=0.01)
    assert math.isfinite(distances[0])


def test_the_documented_profile_example_loads():
    import re
    import tomllib
    from pathlib import Path

    from vla_studio.core.profile import parse_profile
    from vla_studio.devices.registry import config_class_for

    doc = (Path(__file__).resolve().parents[2] / "docs" / "teleop.md").read_text()
    block = re.search(r"```toml\n(.*?)```", doc, re.S).group(1)
    data = tomllib.loads('name = "doc"\ncontrol_rate_hz = 20\n[robot]\ntype = "null"\n' + block)
    profile = parse_profile(data, config_class_for, source="docs/teleop.md")
    pad, mouse, keys = (spec.config for spec in profile.teleops)
    assert pad.buttons["gripper"] == "rb" and pad.calibration["left_x"].center == 0.03
    assert mouse.full_scale == 350 and keys.motion["x"] == "up/down"
