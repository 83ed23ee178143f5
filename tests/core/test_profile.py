"""Station profiles: the bundled ones load; every mistake names the file, key, value and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vla_studio.core.config import ConfigError
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import resource

GOOD = """
name = "Bench cell"
control_rate_hz = 30

[action_space]
kind = "ee_delta"

[robot]
type = "null"
send_delay_ms = 1.5

[[cameras]]
type = "synthetic"
name = "top"
width = 64
height = 48

[safety]
workspace_min = [0.0, -0.3, 0.0]
workspace_max = [0.6, 0.3, 0.5]
speed_scale = 0.5

[recording]
dataset_dir = "~/data/bench"
jpeg_quality = 80
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", sorted(resource("stations").glob("*.toml")), ids=lambda p: p.name)
def test_bundled_profiles_load(path):
    profile = load_station_profile(path)
    assert profile.name and profile.control_rate_hz > 0


def test_profile_values_reach_dataclasses(tmp_path):
    p = load_station_profile(write(tmp_path, GOOD))
    assert p.control_rate_hz == 30.0
    assert p.robot.type == "null" and p.robot.config.send_delay_ms == 1.5
    assert p.robot.name == "null"  # the name defaults to the type
    assert [c.name for c in p.cameras] == ["top"] and p.cameras[0].config.width == 64
    assert p.safety.speed_scale == 0.5 and p.safety.workspace_max == (0.6, 0.3, 0.5)
    assert p.recording.jpeg_quality == 80
    assert p.dataset_dir == Path("~/data/bench").expanduser()


@pytest.mark.parametrize("edit, key, fragment", [
    (lambda t: t.replace("speed_scale = 0.5", "speed_scale = 2.5"), "safety.speed_scale",
     "from 0.0 to 1.0"),
    (lambda t: t.replace('kind = "ee_delta"', 'kind = "cartesian"'), "action_space.kind",
     "'ee_delta', 'joint_position'"),
    (lambda t: t.replace('type = "null"', 'type = "ur5e"'), "robot.type",
     ("installed robot types: ", "null", "sim")),  # plus any robot plugins installed
    (lambda t: t.replace("send_delay_ms = 1.5", 'send_delay_ms = "fast"'), "robot.send_delay_ms",
     "expected a number"),
    (lambda t: t.replace("width = 64", "widht = 64"), "cameras[0].widht", "allowed keys here"),
    (lambda t: t.replace("control_rate_hz = 30", "control_rate_hz = 0"), "control_rate_hz",
     "from 1 to 1000"),
    (lambda t: t.replace('name = "top"', 'name = "Top Cam"'), "cameras[0].name", "lowercase"),
    (lambda t: t.replace("jpeg_quality = 80", "jpeg_quality = 101"), "recording.jpeg_quality",
     "from 1 to 100"),
    (lambda t: t.replace("workspace_max = [0.6, 0.3, 0.5]", "workspace_max = [0.6, 0.3]"),
     "safety.workspace_max", "a list of 3 values"),
    (lambda t: t.replace("workspace_max = [0.6, 0.3, 0.5]", "workspace_max = [0.6, -0.3, 0.5]"),
     "safety", "must be below workspace_max"),
    (lambda t: t + "\n[[cameras]]\ntype = \"synthetic\"\nname = \"top\"\n", "cameras[1].name",
     "unique"),
    (lambda t: "colour = \"red\"\n" + t, "colour", "allowed top-level keys"),
    (lambda t: t.replace('name = "Bench cell"', ""), "name", "'name' is missing (required"),
])
def test_bad_profile_error_names_file_key_value_and_what_is_allowed(tmp_path, edit, key, fragment):
    path = write(tmp_path, edit(GOOD))
    with pytest.raises(ConfigError) as info:
        load_station_profile(path)
    message = str(info.value)
    assert str(path) in message
    assert info.value.key == key
    for part in (fragment,) if isinstance(fragment, str) else fragment:
        assert part in message


def test_toml_syntax_error_and_missing_file_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_station_profile(write(tmp_path, "name = \n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_station_profile(tmp_path / "nope.toml")


def test_cli_reports_a_bad_profile_in_one_line_without_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("speed_scale = 0.5", "speed_scale = -1"))
    proc = subprocess.run([sys.executable, "-m", "vla_studio", "--station", str(path), "profile",
                           "check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "safety.speed_scale" in proc.stderr and str(path) in proc.stderr


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vla_studio", "profile", "check", str(path)],
                          capture_output=True, text=True, timeout=60)


SIM_GOOD = GOOD.replace('[robot]\ntype = "null"\nsend_delay_ms = 1.5', '[robot]\ntype = "sim"')


@pytest.mark.parametrize("text, words", [
    (GOOD.replace("speed_scale = 0.5", "speed_scale = 0.5\nmax_linear_velocity = inf"),
     "'safety.max_linear_velocity' = inf is not allowed: expected a finite number"),
    (GOOD.replace("speed_scale = 0.5", "speed_scale = 0.5\nmax_delta_rotation = nan"),
     "'safety.max_delta_rotation' = nan is not allowed"),
    (GOOD.replace("width = 64\nheight = 48", "width = 100000\nheight = 100000"),
     "'cameras[0].width' = 100000 is not allowed: expected a whole number from 1 to 16384"),
    (SIM_GOOD.replace('type = "sim"', 'type = "sim"\nseed = 100000000000000000000'),
     "'robot.seed' = 100000000000000000000 is not allowed: expected a whole number from 0 to "
     "4294967295"),
    (SIM_GOOD.replace('type = "sim"', 'type = "sim"\nseed = 1e20'),
     "'robot.seed' = 1e+20 is not allowed: expected a whole number"),
    ("name = \"caf\xe9 cell\"\n" + GOOD[GOOD.index("control_rate_hz"):],
     "is not UTF-8 text (byte 0xe9 on line 1); save the profile as UTF-8"),
    ("deep = " + "[" * 100_000 + "]" * 100_000 + "\n" + GOOD, "nested too deeply"),
    ("deep = " + "[" * 40 + "]" * 40 + "\n" + GOOD, "nested 17 levels deep"),
    (GOOD.replace('[robot]\ntype = "null"', '[robot]\ntype = "null"\nextra = '
                  + "{a = " * 30 + "1" + "}" * 30), "nested 17 levels deep"),
])
def test_profile_check_refuses_unusable_values_in_one_line(tmp_path, text, words):
    path = tmp_path / "station.toml"
    path.write_bytes(text.encode("latin-1"))  # latin-1: the non-UTF-8 case keeps its 0xe9
    proc = check(path)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert words in proc.stderr and str(path) in proc.stderr


def test_every_numeric_option_of_every_built_in_kind_is_finite_and_bounded():
    """A value no device or limit can use (a huge or infinite number) is refused for every
    numeric option of every built-in robot, camera and teleop kind, and of the profile's own
    tables: each has a documented range (its option's min/max, else +-1e9)."""
    import dataclasses
    import typing

    from vla_studio.core.config import build
    from vla_studio.core.profile import RecordingSettings
    from vla_studio.core.safety import SafetyLimits
    from vla_studio.devices.registry import REGISTRIES

    classes = [SafetyLimits, RecordingSettings]
    for registry in REGISTRIES.values():
        for name, info in registry.infos().items():
            if info.origin == "built-in":
                classes.append(registry.load(name).config_class)
    checked = 0
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if hint not in (int, float):
                continue
            for bad in ((10**20, -(10**20)) if hint is int else (1e300, -1e300, float("inf"))):
                with pytest.raises(ConfigError, match="is not allowed"):
                    build(cls, {f.name: bad}, source="test")
            checked += 1
    assert checked > 30
