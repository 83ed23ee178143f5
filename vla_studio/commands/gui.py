"""Open the main window on a station (the default when no subcommand is given)."""

from __future__ import annotations

import argparse

NAME = "gui"
HELP = "open the main window (default)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reset-layout", action="store_true",
                        help="forget the saved window layout")


def run(args: argparse.Namespace) -> int:
    from vla_studio.commands import station_profile

    profile = station_profile(args)  # validate before Qt starts: errors print as one line
    from vla_studio.ui.app import run_app  # Qt is imported only for the GUI

    return run_app(profile, reset_layout=getattr(args, "reset_layout", False))
