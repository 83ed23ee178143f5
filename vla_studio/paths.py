"""Where VLA Studio's bundled resources live (themes, icons, scenes, station profiles)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The ``resources/`` folder: beside the package in a source checkout or editable install,
    inside it (``vla_studio/resources``) in a wheel install."""
    for candidate in (_PACKAGE_DIR.parent / "resources", _PACKAGE_DIR / "resources"):
        if (candidate / "stations").is_dir():
            return candidate
    raise FileNotFoundError("VLA Studio's resources folder is missing; reinstall the package")


def resource(*parts: str) -> Path:
    """Path of a bundled resource, e.g. ``resource("stations", "sim_tabletop.toml")``."""
    return resources_dir().joinpath(*parts)


def default_station_profile() -> Path:
    return resource("stations", "sim_tabletop.toml")
