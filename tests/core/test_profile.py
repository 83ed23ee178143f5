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
    (lambda t: t.replace('type = "null"', 'type = "ur5e"'), "robot.type", "installed robot types: null"),
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
    assert fragment in message


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
