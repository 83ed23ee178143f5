"""Check a station profile and show what it configures.

Examples:
  vla-studio profile check resources/stations/sim_tabletop.toml
  vla-studio --station my_cell.toml profile show
"""

from __future__ import annotations

import argparse
import dataclasses

NAME = "profile"
HELP = "check or show a station profile"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check", "show"], help="check: validate; show: print")
    parser.add_argument("file", nargs="?", help="profile file (default: --station or the sim)")


def run(args: argparse.Namespace) -> int:
    from vla_studio.commands import station_profile

    if args.file:
        args.station = args.file
    profile = station_profile(args)
    if args.action == "check":
        print(f"{profile.path}: OK ({profile.name})")
        return 0
    print(f"{profile.name}  [{profile.path}]")
    if profile.description:
        print(f"  {profile.description}")
    print(f"  control rate: {profile.control_rate_hz:g} Hz   action space: {profile.action_space.kind}")
    print(f"  robot:   {profile.robot.type} {_options(profile.robot.config)}")
    for spec in profile.cameras:
        print(f"  camera:  {spec.name} ({spec.type}) {_options(spec.config)}")
    for spec in profile.teleops:
        print(f"  teleop:  {spec.name} ({spec.type}) {_options(spec.config)}")
    s = profile.safety
    print(f"  workspace: {s.workspace_min} .. {s.workspace_max} m; caps: "
          f"{s.max_delta_translation} m/step, {s.max_linear_velocity} m/s, speed x{s.speed_scale}")
    print(f"  datasets: {profile.dataset_dir}")
    return 0


def _options(config: object) -> str:
    fields = [f for f in dataclasses.fields(config) if f.name != "name"]
    return ", ".join(f"{f.name}={getattr(config, f.name)!r}" for f in fields)
