"""Small recorded episodes for the storage tests (the recorder's own writer, realistic frames),
and a check that two episode files hold the same recording."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from vla_studio.bench.replay_episode import CameraPlan, EpisodePlan, write_episode
from vla_studio.data.video_storage import open_frame_source

SMALL = (CameraPlan("front", 160, 120, depth=True),
         CameraPlan("wrist", 128, 96, fps=15.0, drop_every=20))


def small_episode(folder: Path, steps: int = 60, seed: int = 0, name: str = "",
                  cameras: tuple[CameraPlan, ...] = SMALL, **plan) -> Path:
    """A sealed episode in ``folder/episodes`` with two small cameras (one with depth, one at
    half the rate that drops frames), 30 Hz."""
    stem = name or f"20261201-10{seed:02d}00_{seed:08x}"
    return write_episode(folder / "episodes" / f"{stem}.h5",
                         EpisodePlan(steps=steps, rate_hz=30.0, cameras=cameras, seed=seed,
                                     episode_id=f"00000000-0000-4000-8000-{seed:012d}", **plan))


def step_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every per-step dataset that is not a colour image buffer, by path."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("observation/image/"):
                out[name] = obj[()]
        f["steps"].visititems(visit)
        for cam in f["steps/observation/image"]:
            for key in ("frame_index", "capture_time", "device_time"):
                name = f"observation/image/{cam}/{key}"
                out[name] = f[f"steps/{name}"][()]
    return out


def decoded_frames(path: Path) -> dict[str, list[np.ndarray | None]]:
    """Every step's colour frame of every camera, through the one frame source."""
    source = open_frame_source(path)
    try:
        return {cam: [frame for _, frame in source.iter_color(cam, list(range(source.num_steps)))]
                for cam in source.cameras}
    finally:
        source.close()
