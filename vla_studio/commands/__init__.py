"""Subcommands of the `vla-studio` command line (one module each; see :mod:`vla_studio.cli`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from vla_studio.core.profile import StationProfile
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import default_station_profile


class UsageError(ValueError):
    """A command-line value that cannot be used; the message names the option, the value and
    what is allowed (printed as one line by :mod:`vla_studio.cli`, exit status 2)."""


def station_profile(args: argparse.Namespace) -> StationProfile:
    """The profile named by ``--station`` (or the default simulated tabletop), validated."""
    path = getattr(args, "station", None) or default_station_profile()
    return load_station_profile(Path(path))


def check_number(option: str, value: float | None, low: float, high: float, *,
                 low_open: bool = False, unit: str = "") -> None:
    """Refuse a numeric option that is not finite or outside its documented range.

    Args:
        option: the option as typed, e.g. ``"--max-seconds"``.
        value: the parsed value (None = not given: nothing to check).
        low, high: the inclusive range (``low`` exclusive with ``low_open``).
        unit: appended to the allowed range in the message (``"s"``).

    Raises:
        UsageError: naming the option, the value and the allowed range.
    """
    if value is None:
        return
    whole = isinstance(value, int) and not isinstance(value, bool)
    finite = whole or math.isfinite(value)
    inside = finite and (low < value if low_open else low <= value) and value <= high
    if inside:
        return
    kind = "a whole number" if whole else "a number"
    above = f"greater than {low:g}" if low_open else f"from {_plain(low)}"
    upto = f"and at most {_plain(high)}" if low_open else f"to {_plain(high)}"
    shown = value if whole and abs(value) < 10**30 else (f"{value:.3g}" if whole else value)
    raise UsageError(f"{option} {shown} is not allowed: {kind} {above} {upto}"
                     + (f" {unit}" if unit else ""))


def _plain(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
