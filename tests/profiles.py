"""Station profiles with per-test changes (tests only)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vla_studio.core.profile import StationProfile, parse_profile
from vla_studio.devices.registry import config_class_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def changed_profile(path: Path, tmp_path: Path, *, rate: float | None = None,
                    cameras: list[dict] | None = None,
                    recording: dict | None = None) -> StationProfile:
    """The profile at ``path`` recording into ``tmp_path/dataset``, with these changes (its
    source and TOML text stay the bundled file's). Episodes stay JPEG (no background
    transcoding) unless ``recording`` asks for ``storage = "video"``."""
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    if rate is not None:
        data["control_rate_hz"] = rate
    if cameras is not None:
        data["cameras"] = cameras
    data.setdefault("recording", {})["dataset_dir"] = str(tmp_path / "dataset")
    data["recording"]["storage"] = "jpeg"
    data["recording"].update(recording or {})
    return parse_profile(data, config_class_for, source=str(path), path=path)
