"""The native checkpoint: a directory of plain data that loads without running any of its code.

```
my_policy/
  config.json          {"policy_type": "<registered type>", "config": {...}, ...}
  model.safetensors    weights (safetensors: a JSON header and raw tensor bytes, no pickle)
  normalization.json   {"<key>": {"mean": [...], "std": [...], "min": [...], "max": [...]}}
```
``policy_type`` names a class in the ``vla_studio.policies`` registry (built-in or an installed
plugin's entry point): the file chooses among installed code, it never names code to import. The
class builds itself from the checkpoint through :meth:`Policy.from_native`. A torch ``.pt``
weights file with a ``<stem>.json`` sidecar in the same layout as ``config.json`` loads the same
way, read with ``torch.load(weights_only=True)``.

Every file is checked before use (size, syntax, the safetensors header against the file length),
so a truncated or corrupt checkpoint gives one line naming the file, never a traceback.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

import numpy as np

from vla_studio.core.config import ConfigError, build
from vla_studio.policies.errors import PolicyLoadError, one_line

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
NORMALIZATION_FILE = "normalization.json"
TYPE_KEY = "policy_type"
# Checkpoints with a format of their own (``config.json``'s "format"): the policy type that
# reads them, which also parses their normalisation file itself.
OWN_FORMATS = {"vla-studio-vla": "vla"}
MAX_JSON_BYTES = 16 << 20
MAX_SAFETENSORS_HEADER = 100 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class NativeCheckpoint:
    """A checked native checkpoint, handed to :meth:`Policy.from_native`.

    Attributes:
        path: the directory (or the ``.pt`` file) it was read from.
        policy_type: the registry name from ``config.json``.
        config: the whole parsed ``config.json``.
        normalization: key -> statistic name -> array, from ``normalization.json``.
        weights_path: ``model.safetensors`` or the ``.pt`` file; None for a policy without weights.
    """

    path: Path
    policy_type: str
    config: Mapping[str, Any]
    normalization: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    weights_path: Path | None = None

    def tensors(self) -> dict[str, Any]:
        """The weights as ``name -> torch.Tensor`` on the CPU (imports torch).

        Raises:
            PolicyLoadError: no weights, or a file that cannot be read.
        """
        if self.weights_path is None:
            raise PolicyLoadError(f"{self.path}: has no {WEIGHTS_FILE}")
        try:
            if self.weights_path.suffix == ".pt":
                return _load_pt_weights(self.weights_path)
            from safetensors.torch import load_file

            return load_file(str(self.weights_path), device="cpu")
        except PolicyLoadError:
            raise
        except Exception as exc:  # any reader failure is a bad file, reported in one line
            raise PolicyLoadError(f"{self.weights_path}: cannot be read ({one_line(exc)})") from None

    def arrays(self) -> dict[str, np.ndarray]:
        """The weights as numpy arrays (no torch needed for safetensors files)."""
        if self.weights_path is not None and self.weights_path.suffix != ".pt":
            try:
                from safetensors.numpy import load_file

                return load_file(str(self.weights_path))
            except Exception as exc:
                raise PolicyLoadError(f"{self.weights_path}: cannot be read ({one_line(exc)})") from None
        return {k: v.numpy() for k, v in self.tensors().items()}

    def stat(self, key: str, name: str) -> np.ndarray | None:
        """One normalisation statistic, e.g. ``stat("action", "std")``, or None."""
        return self.normalization.get(key, {}).get(name)

    def flat_normalization(self) -> dict[str, np.ndarray]:
        """``{"<key>/<stat>": array}``, the layout :class:`PolicySpec.normalization` uses."""
        return {f"{k}/{s}": v for k, stats in self.normalization.items() for s, v in stats.items()}


def read_native(path: str | Path) -> NativeCheckpoint:
    """Read and check a native checkpoint directory, or a ``.pt`` file with its JSON sidecar.

    Raises:
        PolicyLoadError: a missing, truncated or malformed file, named with the fix.
    """
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".pt":
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise PolicyLoadError(f"{path}: a .pt weights file needs its sidecar {sidecar.name} "
                                  f"(the same layout as a native {CONFIG_FILE})")
        config = read_json(sidecar, "policy config")
        weights: Path | None = path
        norm_path = path.parent / NORMALIZATION_FILE
    elif path.is_dir():
        config_path = path / CONFIG_FILE
        if not config_path.is_file():
            raise PolicyLoadError(f"{path}: not a policy checkpoint (no {CONFIG_FILE}); expected "
                                  f"{CONFIG_FILE} + {WEIGHTS_FILE} + {NORMALIZATION_FILE}")
        config = read_json(config_path, "policy config")
        weights = path / WEIGHTS_FILE
        if weights.exists():
            check_safetensors(weights)
        else:
            weights = None
        norm_path = path / NORMALIZATION_FILE
    elif not path.exists():
        raise PolicyLoadError(f"{path}: no such file or directory")
    else:
        raise PolicyLoadError(f"{path}: not a checkpoint directory or a .pt file")
    if not isinstance(config, dict):
        raise PolicyLoadError(f"{path}: the policy config must be a JSON object")
    own_format = OWN_FORMATS.get(str(config.get("format", "")))
    policy_type = config.get(TYPE_KEY) or own_format
    if not isinstance(policy_type, str) or not policy_type:
        raise PolicyLoadError(f"{path}: the policy config has no '{TYPE_KEY}' (the registered "
                              "policy type that reads this checkpoint)")
    normalization = read_normalization(norm_path) if norm_path.is_file() and not own_format \
        else {}
    return NativeCheckpoint(path, policy_type, config, normalization, weights)


def read_json(path: Path, what: str) -> Any:
    """Parse a small JSON file; any failure is one line naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise PolicyLoadError(f"{path}: {what} of {size} bytes is over the "
                                  f"{MAX_JSON_BYTES >> 20} MiB limit")
        return json.loads(path.read_text(encoding="utf-8"))
    except PolicyLoadError:
        raise
    except UnicodeDecodeError:
        raise PolicyLoadError(f"{path}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PolicyLoadError(f"{path}: {what} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                              f"column {exc.colno}); the file may be truncated") from None
    except (OSError, RecursionError) as exc:
        raise PolicyLoadError(f"{path}: {what} cannot be read ({one_line(exc)})") from None


def read_normalization(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """``normalization.json`` as arrays; non-numeric or non-finite statistics are refused."""
    data = read_json(path, "normalisation statistics")
    if not isinstance(data, dict):
        raise PolicyLoadError(f"{path}: expected {{key: {{stat: [numbers]}}}}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, stats in data.items():
        if not isinstance(stats, dict):
            raise PolicyLoadError(f"{path}: '{key}' must map statistic names to number lists")
        out[key] = {}
        for name, values in stats.items():
            try:
                arr = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                raise PolicyLoadError(f"{path}: '{key}.{name}' is not a list of numbers") from None
            if not np.all(np.isfinite(arr)):
                raise PolicyLoadError(f"{path}: '{key}.{name}' contains NaN or infinity")
            out[key][name] = arr
    return out


def check_safetensors(path: Path) -> None:
    """Check a safetensors file's header and length without reading the tensors.

    The format is an 8-byte little-endian header length, a JSON header mapping each tensor to
    its dtype, shape and byte range, then the bytes. A truncated download fails here.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise PolicyLoadError(f"{path}: truncated ({size} bytes; not a safetensors file)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_SAFETENSORS_HEADER or 8 + n > size:
                raise PolicyLoadError(f"{path}: corrupt or truncated safetensors file (header of "
                                      f"{n} bytes in a {size}-byte file)")
            header = json.loads(f.read(n).decode("utf-8"))
    except PolicyLoadError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PolicyLoadError(f"{path}: corrupt safetensors file (its header is not JSON)") from None
    except OSError as exc:
        raise PolicyLoadError(f"{path}: cannot be read ({one_line(exc)})") from None
    if not isinstance(header, dict):
        raise PolicyLoadError(f"{path}: corrupt safetensors file (header is not a table)")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets) or offsets[0] > offsets[1]):
            raise PolicyLoadError(f"{path}: corrupt safetensors file (tensor '{name}')")
        end = max(end, offsets[1])
    if 8 + n + end != size:
        raise PolicyLoadError(f"{path}: truncated or padded safetensors file ({size} bytes, the "
                              f"header describes {8 + n + end}); copy the checkpoint again")


def build_config(config_class: type[T], checkpoint: NativeCheckpoint) -> T:
    """Build ``config_class`` from the checkpoint's ``config`` table, errors in one line."""
    table = checkpoint.config.get("config", {})
    if not isinstance(table, dict):
        raise PolicyLoadError(f"{checkpoint.path}: 'config' in the policy config must be a table")
    table = dict(table)
    table.setdefault("name", checkpoint.policy_type)
    try:
        return build(config_class, table, source=str(checkpoint.path), prefix="config.")
    except ConfigError as exc:
        raise PolicyLoadError(str(exc)) from None


def _load_pt_weights(path: Path) -> dict[str, Any]:
    import torch

    # weights_only=True: torch's restricted unpickler, which builds tensors and plain containers
    # only and refuses any other class, so a .pt file cannot run code on load.
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise PolicyLoadError(f"{path}: expected a state dict (names -> tensors)")
    return obj

