"""Stand-in for ``vla_studio.data.episode_file.EpisodeReader`` (branch ``rec``) until it lands.

Implements only the reader API the RLDS exporter uses, over the layout written by
:mod:`tests.data.rlds_episode_files`; annotations win over root attributes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np


class StandInEpisodeReader:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._f: h5py.File | None = None

    def __enter__(self) -> "StandInEpisodeReader":
        self._f = h5py.File(self.path, "r")
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v)
                      for k, v in self._f.attrs.items()}
        self.attrs["cameras"] = json.loads(self.attrs.get("cameras", "{}"))
        self.num_steps = int(self._f["steps/timestamp"].shape[0])
        self.cameras = sorted(self._f.get("steps/observation/image", {}).keys())
        self.depth_cameras = sorted(self._f.get("steps/observation/depth", {}).keys())
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def image_format(self, camera: str) -> str:
        return str(self._f[f"steps/observation/image/{camera}"].attrs["format"])

    def image_size(self, camera: str) -> tuple[int, int]:
        a = self._f[f"steps/observation/image/{camera}"].attrs
        return int(a["width"]), int(a["height"])

    def iter_image_bytes(self, camera: str) -> Iterator[bytes]:
        g = self._f[f"steps/observation/image/{camera}"]
        data = g["data"][()]
        for offset, length in g["index"][()].tolist():
            yield data[offset:offset + length].tobytes()

    def depth(self, camera: str) -> np.ndarray | None:
        d = self._f.get(f"steps/observation/depth/{camera}")
        return None if d is None else d[()]

    def state(self) -> dict[str, np.ndarray]:
        return {k: v[()] for k, v in self._f["steps/observation/state"].items()}

    def step(self, name: str) -> np.ndarray:
        return self._f[f"steps/{name}"][()]

    def instructions(self) -> list[str]:
        ann = self._f["annotations"].attrs
        if "instructions" in ann:
            return json.loads(ann["instructions"])
        return json.loads(self.attrs.get("language_instructions", "[]"))

    def success(self) -> bool | None:
        ann = self._f["annotations"].attrs
        value = int(ann["success"]) if "success" in ann else int(self.attrs.get("success", -1))
        return None if value < 0 else bool(value)

    def trim(self) -> tuple[int, int]:
        ann = self._f["annotations"].attrs
        if "trim" in ann:
            start, end = (int(v) for v in ann["trim"])
            return start, end
        return 0, self.num_steps
