"""Find the cameras attached to this machine, or look at a station's cameras.

Examples:
  vla-studio cameras list                         # OpenCV indices and RealSense serials, with modes
  vla-studio cameras list --json
  vla-studio --station cell.toml cameras preview  # a window with every camera of the station
  vla-studio --station cell.toml cameras preview wrist front

`list` prints, for each camera, the modes it offers and a [[cameras]] table to paste into a
station profile. `preview` connects only the cameras (never a real robot or teleop devices), so
it is safe on a real cell; simulated cameras bring up the simulator they render, which holds still.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

NAME = "cameras"
HELP = "list attached cameras with their modes, or preview a station's cameras"
MAX_TIMEOUT_S = 600.0
MAX_PREVIEW_S = 24 * 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="OpenCV (V4L2) cameras and RealSense serials with modes")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.add_argument("--timeout", type=float, default=5.0,
                    help=f"seconds to wait for the drivers (more than 0, at most {MAX_TIMEOUT_S:g})")
    pv = sub.add_parser("preview", help="show the panes of the station's cameras (or some)")
    pv.add_argument("names", nargs="*", metavar="NAME", help="cameras to show (default: all)")
    pv.add_argument("--seconds", type=float, default=None,
                    help="close after this many seconds (default: when the window is closed; "
                         f"more than 0, at most {MAX_PREVIEW_S:g})")
    pv.add_argument("--screenshot", metavar="PNG", default=None,
                    help="with --seconds: save the window to this PNG before closing")


def run(args: argparse.Namespace) -> int:
    from vla_studio.commands import check_number

    if args.action == "list":
        check_number("--timeout", args.timeout, 0.0, MAX_TIMEOUT_S, low_open=True, unit="s")
        return list_cameras(args)
    check_number("--seconds", args.seconds, 0.0, MAX_PREVIEW_S, low_open=True, unit="s")
    return preview(args)


def list_cameras(args: argparse.Namespace) -> int:
    from vla_studio.devices.cameras.discovery import discover
    from vla_studio.devices.cameras.opencv import OpenCVCamera
    from vla_studio.devices.cameras.realsense import RealSenseCamera

    result = discover({"opencv": OpenCVCamera.enumerate, "realsense": RealSenseCamera.enumerate},
                      timeout_s=args.timeout)
    if args.json:
        print(json.dumps({"cameras": [dataclasses.asdict(c) | {"details": dict(c.details)}
                                      for c in result.cameras],
                          "problems": list(result.problems)}))
        return 0
    for kind, title in (("opencv", "OpenCV cameras"), ("realsense", "RealSense cameras")):
        cams = [c for c in result.cameras if c.kind == kind]
        print(f"{title}:")
        if not cams:
            print("  none found")
        for cam in cams:
            facts = ", ".join(f"{k} {v}" for k, v in cam.details.items() if v)
            where = f"  {cam.path}" if cam.path else ""
            print(f"  {cam.id:<14} {cam.name}{where}" + (f"  ({facts})" if facts else ""))
            for (stream, fmt), modes in cam.modes_by_format().items():
                print(f"      {stream} {fmt}: " + " ".join(m.describe() for m in modes))
            print(f"      profile: {profile_snippet(cam)}")
    for problem in result.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def profile_snippet(cam) -> str:
    """A [[cameras]] table selecting ``cam`` at a common mode (640x480 when offered)."""
    color = [m for m in cam.modes if m.stream == "color"]
    pick = next((m for m in color if (m.width, m.height) == (640, 480)), color[0] if color else None)
    if cam.kind == "opencv":
        fields = [f"source = {cam.id}"]
        if any(m.pixel_format == "MJPG" for m in color):
            fields.append('fourcc = "MJPG"')
    else:
        fields = [f'serial = "{cam.id}"']
        if any(m.stream == "depth" for m in cam.modes):
            fields.append("depth = true")
    if pick is not None:
        fields += [f"width = {pick.width}", f"height = {pick.height}"]
        if pick.fps:
            fields.append(f"fps = {30 if 30.0 in pick.fps else pick.fps[0]:g}")
    return f'[[cameras]] type = "{cam.kind}", ' + ", ".join(fields)


def preview(args: argparse.Namespace) -> int:
    from vla_studio.commands import station_profile
    from vla_studio.devices.base import DeviceError

    profile = station_profile(args)
    known = [spec.name for spec in profile.cameras]
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise DeviceError(f"{profile.path}: no camera named {unknown[0]!r}; this station has: "
                          f"{', '.join(known) or '(no cameras)'}")
    if not known:
        raise DeviceError(f"{profile.path}: this station has no cameras to preview")
    if args.screenshot and args.seconds is None:
        raise DeviceError("--screenshot needs --seconds (when to take it)")
    from vla_studio.station import Station
    from vla_studio.ui.camera_preview import run_preview  # Qt only now

    station = Station.from_profile(profile)  # no I/O: only the cameras (and a simulator) connect
    return run_preview(station, args.names or None, args.seconds, args.screenshot)
