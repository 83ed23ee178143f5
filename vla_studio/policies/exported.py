"""A ``torch.export`` program (``.pt2``) with a JSON sidecar, run as a policy. Trusted files only.

An exported program is a whole model in one file, which is convenient for sharing a policy whose
Python code is not installed. Loading one deserialises a graph that may reference custom
operators and pickled constants, so it is not safe on a file from a stranger: the loader refuses
it unless the caller says the file is trusted.

The sidecar ``<stem>.json`` beside ``<stem>.pt2`` describes the program::

    {"format": "torch.export",
     "spec": {...PolicySpec as in vla_studio.policies.wire.spec_to_dict...},
     "inputs": ["observation/image/front", "observation/state/ee_pos"],
     "outputs": ["actions", "confidence"],
     "normalization": {"observation/state/ee_pos": {"mean": [...], "std": [...]},
                       "action": {"mean": [...], "std": [...]}}}

The program is called with one tensor per input, in order: images as float32 ``[1, 3, H, W]`` in
[0, 1], state as float32 ``[1, n]`` (standardised when the sidecar has its statistics). It returns
actions ``[1, H, D]`` (de-standardised with ``action`` statistics) and, when ``outputs`` lists it,
confidence ``[1, H]`` in [0, 1].
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_studio.core.config import option
from vla_studio.core.types import Observation
from vla_studio.policies.base import ActionChunk, Policy, PolicyConfig, PolicySpec
from vla_studio.policies.errors import PolicyLoadError, PolicyProtocolError, one_line
from vla_studio.policies.native import read_json
from vla_studio.policies.wire import IMAGE_PREFIX, STATE_PREFIX, spec_from_dict

FORMAT = "torch.export"
TRUST_NOTE = "trusted files only: a .pt2 program can run code when it is loaded"


@dataclass(frozen=True)
class ExportedProgramConfig(PolicyConfig):
    path: str = option("", help="the .pt2 file; its sidecar <stem>.json sits beside it")


class ExportedProgramPolicy(Policy):
    """Runs a ``torch.export`` program described by its sidecar (trusted files only)."""

    config_class = ExportedProgramConfig
    config: ExportedProgramConfig

    def __init__(self, config: ExportedProgramConfig) -> None:
        super().__init__(config)
        self.path = Path(config.path).expanduser()
        sidecar = read_sidecar(self.path)
        self._spec: PolicySpec = sidecar["spec"]
        self._inputs: list[str] = sidecar["inputs"]
        self._with_confidence = "confidence" in sidecar["outputs"]
        self._norm: dict[str, dict[str, np.ndarray]] = sidecar["normalization"]
        self._module: Any = None

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def load(self) -> None:
        import torch

        try:
            program = torch.export.load(str(self.path))
            self._module = program.module()
        except Exception as exc:  # a damaged zip, a graph for another torch: one line
            raise PolicyLoadError(f"{self.path}: cannot load the exported program "
                                  f"({one_line(exc)})") from None

    def reset(self, instruction: str) -> None:
        pass  # an exported program has no episode state

    def infer(self, observation: Observation) -> ActionChunk:
        import torch

        if self._module is None:
            raise RuntimeError("ExportedProgramPolicy.infer before load()")
        t0 = time.monotonic()
        args = [torch.from_numpy(self._input(key, observation)) for key in self._inputs]
        with torch.inference_mode():
            out = self._module(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        actions = outs[0].detach().cpu().numpy().astype(np.float64).reshape(
            -1, self._spec.action_space.dim)
        stats = self._norm.get("action", {})
        if "std" in stats and "mean" in stats:
            actions = actions * stats["std"] + stats["mean"]
        conf = None
        if self._with_confidence and len(outs) > 1:
            conf = np.clip(outs[1].detach().cpu().numpy().astype(np.float64).reshape(-1), 0.0, 1.0)
        return ActionChunk(actions, conf, observation.t, t0, time.monotonic())

    def _input(self, key: str, obs: Observation) -> np.ndarray:
        if key.startswith(IMAGE_PREFIX):
            frame = obs.frames.get(key[len(IMAGE_PREFIX):])
            if frame is None or frame.color is None:
                raise PolicyProtocolError(f"no image for '{key}'")
            img = np.asarray(frame.color, np.float32) / 255.0
            return np.ascontiguousarray(img.transpose(2, 0, 1)[None])
        value = np.asarray(obs.state[key[len(STATE_PREFIX):]], np.float32).reshape(1, -1)
        stats = self._norm.get(key, {})
        if "std" in stats and "mean" in stats:
            value = ((value - stats["mean"]) / np.maximum(stats["std"], 1e-8)).astype(np.float32)
        return value


def read_sidecar(path: Path) -> dict[str, Any]:
    """Read and check the sidecar of ``path`` (a ``.pt2`` file).

    Raises:
        PolicyLoadError: missing or malformed sidecar, inputs the spec does not provide.
    """
    if not path.is_file():
        raise PolicyLoadError(f"{path}: no such file")
    sidecar_path = path.with_suffix(".json")
    if not sidecar_path.is_file():
        raise PolicyLoadError(f"{path}: an exported program needs its sidecar {sidecar_path.name} "
                              "(spec, inputs, outputs)")
    data = read_json(sidecar_path, "exported-program sidecar")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PolicyLoadError(f"{sidecar_path}: expected \"format\": \"{FORMAT}\"")
    try:
        spec = spec_from_dict(data.get("spec"), f"{sidecar_path}: spec")
    except PolicyProtocolError as exc:
        raise PolicyLoadError(str(exc)) from None
    known = {IMAGE_PREFIX + c for c in spec.cameras} | {STATE_PREFIX + k for k in spec.state_features}
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(k, str) and k in known for k in inputs):
        raise PolicyLoadError(f"{sidecar_path}: 'inputs' must list keys of the spec "
                              f"({', '.join(sorted(known)) or 'none'}), got {inputs!r:.80}")
    outputs = data.get("outputs", ["actions"])
    if not isinstance(outputs, list) or not outputs or outputs[0] != "actions":
        raise PolicyLoadError(f"{sidecar_path}: 'outputs' must start with \"actions\"")
    norm: dict[str, dict[str, np.ndarray]] = {}
    for key, stats in dict(data.get("normalization", {})).items():
        try:
            norm[str(key)] = {str(s): np.asarray(v, np.float64) for s, v in dict(stats).items()}
        except (TypeError, ValueError):
            raise PolicyLoadError(f"{sidecar_path}: normalization '{key}' is not numbers") from None
    return {"spec": spec, "inputs": inputs, "outputs": outputs, "normalization": norm}
