"""Housekeeping: nothing stray in the repository, no dead code, and the packaging comments, the
README and ``--help`` describe what exists."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from vla_studio import cli
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import resource
from vla_studio.station import Station

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_no_stray_wheel_at_the_repository_root():
    assert not list(ROOT.glob("*.whl"))


def test_the_station_has_no_unused_heartbeat():
    station = Station.from_profile(load_station_profile(resource("stations", "dry_run.toml")))
    assert not hasattr(station, "heartbeat")  # the loop's heartbeat is the GUI bridge's


def test_pyproject_entry_points_are_for_plugins_only():
    """Built-in kinds are registered in code; the entry-point groups are the plugins' way in."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    builtin = {group: targets for group, targets in data["project"].get("entry-points", {}).items()
               if group.startswith("vla_studio.")}
    assert not builtin, builtin
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "Built-in device kinds are registered through the same entry-point groups" not in text


def test_help_and_readme_name_only_commands_that_exist():
    commands = set(cli.COMMANDS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in re.findall(r"^\| `vla-studio (\w[\w-]*)", readme, flags=re.M):
        assert name in commands, f"the README documents `vla-studio {name}`, which does not exist"
    # What --help promises has its command (policy runs live in the window's Policy dock).
    for promise, command in (("replay", "replay"), ("train", "train"), ("openpi", "serve")):
        if command not in commands:
            assert promise not in cli.DESCRIPTION.lower(), f"--help promises {promise!r}"
