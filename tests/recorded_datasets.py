"""Datasets recorded the way a researcher's are: `vla-studio record` with the simulated expert
on the default station (real time, real recorder), in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vla_studio.paths import resource


def record_expert(dataset: Path, episodes: int, max_seconds: float,
                  task: str = "pick up the red cube", timeout_s: float = 600.0) -> list[Path]:
    """Record ``episodes`` expert episodes into ``dataset``; returns their files, oldest first.

    No ``--seed``: the recorder stores the seed the simulator chose (what a researcher gets).
    The default station, except that a camera going stale does not pause the episode: the
    rendered cameras run at low priority and may, when the test machine is loaded.
    """
    dataset.mkdir(parents=True, exist_ok=True)
    station = dataset.parent / f"{dataset.name}_station.toml"
    text = resource("stations", "sim_tabletop.toml").read_text(encoding="utf-8")
    station.write_text(text.replace("[recording]\n", "[recording]\non_camera_failure = "
                                    "\"continue\"\n"), encoding="utf-8")
    env = {**os.environ, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}
    proc = subprocess.run(
        [sys.executable, "-m", "vla_studio", "--log-level", "WARNING", "--station", str(station),
         "record",
         "--teleop", "expert", "--task", task, "--episodes", str(episodes),
         "--max-seconds", str(max_seconds), "--settle", "0.2", "--dataset", str(dataset)],
        capture_output=True, text=True, timeout=timeout_s, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = sorted((dataset / "episodes").glob("*.h5"))
    assert len(files) == episodes, (files, proc.stdout)
    return files
