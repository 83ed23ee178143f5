"""Subcommands of the `vla-studio` command line (one module each; see :mod:`vla_studio.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vla_studio.core.profile import StationProfile
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import default_station_profile


def station_profile(args: argparse.Namespace) -> StationProfile:
    """The profile named by ``--station`` (or the default simulated tabletop), validated."""
    path = getattr(args, "station", None) or default_station_profile()
    return load_station_profile(Path(path))
