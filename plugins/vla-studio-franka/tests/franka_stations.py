"""The example station profile pointed at the test's franky-sim (tests only)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from vla_studio.core.profile import StationProfile, parse_profile
from vla_studio.devices.registry import config_class_for

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "franka_sim.toml"


def franka_sim_profile(hostname: str, tmp_path: Path, **robot: object) -> StationProfile:
    """``examples/franka_sim.toml`` with the simulator's address, recording into ``tmp_path``."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["robot"].update(hostname=hostname, **robot)
    data["recording"]["dataset_dir"] = str(tmp_path / "dataset")
    return parse_profile(data, config_class_for, source=str(EXAMPLE), path=EXAMPLE)
