"""The native checkpoint directory of the reference VLA: JSON and safetensors, never pickle.

```
<checkpoint>/
  config.json           format, model architecture, policy spec (cameras, image size, state and
                        action features, control rate, chunk size), training summary, and the
                        size + SHA-256 of every other file
  model.safetensors     the weights
  normalization.json    action q01/q99 and bins, state mean/std
  tokenizer.json        the instruction vocabulary
  optimizer.safetensors + trainer_state.json      (resumable checkpoints only)
```
A training run directory (``vla-studio train --out RUN``) holds ``RUN/best`` (lowest validation
loss: the one to run) and ``RUN/last`` (the latest epoch, with optimizer state: the one to
resume); loaders accept the run directory and pick ``best``.

Every file is checked on load (sizes and checksums recorded in ``config.json``, JSON syntax,
safetensors structure, tensor names and shapes, finite values): a truncated or corrupt
checkpoint raises :class:`CheckpointError` with one line naming the file and the problem.
A checkpoint is written into a temporary sibling directory and renamed into place, so a crash
while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

from vla_studio.policies.vla.model import ModelConfig
from vla_studio.policies.vla.normalization import ActionBins, StateStats, normalization_json, \
    parse_normalization
from vla_studio.policies.vla.tokenizer import WordTokenizer

CHECKPOINT_FORMAT = "vla-studio-vla"
CHECKPOINT_VERSION = 1
POLICY_TYPE = "vla"  # the registered policy kind that reads it (vla_studio.policies registry)
CONFIG, WEIGHTS, NORMALIZATION, TOKENIZER = ("config.json", "model.safetensors",
                                             "normalization.json", "tokenizer.json")
OPTIMIZER, TRAINER_STATE = "optimizer.safetensors", "trainer_state.json"
BEST, LAST = "best", "last"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the one-line message names the file and why."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded, verified checkpoint (weights still as a state dict).

    Attributes:
        path: its directory.
        model: the architecture.
        spec: the policy spec as stored (see :func:`vla_studio.policies.vla.policy.spec_from_json`).
        tokenizer: the instruction tokenizer.
        actions: action normalisation and bins.
        state: state normalisation.
        weights: tensor name -> tensor.
        training: what training recorded (datasets, epochs, losses...).
    """

    path: Path
    model: ModelConfig
    spec: Mapping[str, Any]
    tokenizer: WordTokenizer
    actions: ActionBins
    state: StateStats
    weights: Mapping[str, torch.Tensor]
    training: Mapping[str, Any]


def resolve(path: str | Path, prefer: str = BEST) -> Path:
    """The checkpoint directory ``path`` names: itself, or its ``best``/``last`` subdirectory when
    ``path`` is a training run directory (``prefer`` first)."""
    p = Path(path).expanduser()
    if (p / CONFIG).is_file():
        return p
    for sub in (prefer, LAST if prefer == BEST else BEST):
        if (p / sub / CONFIG).is_file():
            return p / sub
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint directory")
    if p.is_file():
        raise CheckpointError(f"{p}: a checkpoint is a directory (with {CONFIG}, {WEIGHTS}, "
                              f"{NORMALIZATION}); give the directory")
    raise CheckpointError(f"{p}: not a VLA checkpoint (no {CONFIG}, and no best/ or last/ "
                          "checkpoint inside); train one with `vla-studio train`")


def save(path: str | Path, *, model: ModelConfig, weights: Mapping[str, torch.Tensor],
         spec: Mapping[str, Any], tokenizer: WordTokenizer, actions: ActionBins,
         state: StateStats, training: Mapping[str, Any],
         optimizer: Mapping[str, torch.Tensor] | None = None,
         trainer_state: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint directory at ``path`` (replacing one already there)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / WEIGHTS))
        _write_json(tmp / NORMALIZATION, normalization_json(actions, state))
        _write_json(tmp / TOKENIZER, tokenizer.to_json())
        if optimizer is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in optimizer.items()},
                      str(tmp / OPTIMIZER))
            _write_json(tmp / TRAINER_STATE, dict(trainer_state or {}))
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                 for p in sorted(tmp.iterdir())}
        _write_json(tmp / CONFIG, {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                                   "policy_type": POLICY_TYPE,
                                   "model": model.to_json(), "spec": dict(spec),
                                   "training": dict(training), "files": files})
        _fsync_dir(tmp)
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write(ckpt: Checkpoint, path: str | Path) -> Path:
    """Save a loaded (or in-memory) checkpoint at ``path``, without resume state."""
    return save(path, model=ckpt.model, weights=ckpt.weights, spec=ckpt.spec,
                tokenizer=ckpt.tokenizer, actions=ckpt.actions, state=ckpt.state,
                training=ckpt.training)


def load(path: str | Path, prefer: str = BEST) -> Checkpoint:
    """Read and verify a checkpoint (a checkpoint directory or a run directory)."""
    root = resolve(path, prefer)
    config = read_json(root / CONFIG)
    if config.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{root / CONFIG}: not a VLA Studio VLA checkpoint (format is "
                              f"{config.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{root / CONFIG}: format version {version!r} is newer than this "
                              f"VLA Studio reads ({CHECKPOINT_VERSION}); update VLA Studio")
    files = config.get("files")
    if not isinstance(files, dict):
        raise CheckpointError(f"{root / CONFIG}: has no 'files' table of sizes and checksums")
    for name in (WEIGHTS, NORMALIZATION, TOKENIZER):
        if name not in files:
            raise CheckpointError(f"{root / CONFIG}: does not list {name}")
    for name in files:
        if name in (OPTIMIZER, TRAINER_STATE) and not (root / name).exists():
            continue  # a best/ copy may leave resume state out
        _verify(root, name, files[name])
    try:
        model = ModelConfig.from_json(config["model"])
        spec = dict(config["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{root / CONFIG}: bad model or spec section ({exc})") from None
    try:
        actions, state = parse_normalization(read_json(root / NORMALIZATION))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{root / NORMALIZATION}: bad normalisation statistics ({exc})") from None
    try:
        tokenizer = WordTokenizer.from_json(read_json(root / TOKENIZER))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{root / TOKENIZER}: bad tokenizer ({exc})") from None
    if actions.dim != model.action_dim or actions.bins != model.bins:
        raise CheckpointError(f"{root / NORMALIZATION}: {actions.dim} action dimensions x "
                              f"{actions.bins} bins, but {CONFIG} says {model.action_dim} x {model.bins}")
    if state.dim != model.state_dim:
        raise CheckpointError(f"{root / NORMALIZATION}: state of size {state.dim}, but {CONFIG} "
                              f"says {model.state_dim}")
    if tokenizer.size != model.vocab_size or tokenizer.max_tokens != model.max_tokens:
        raise CheckpointError(f"{root / TOKENIZER}: {tokenizer.size} words x {tokenizer.max_tokens} "
                              f"tokens, but {CONFIG} says {model.vocab_size} x {model.max_tokens}")
    weights = _read_tensors(root / WEIGHTS)
    return Checkpoint(root, model, spec, tokenizer, actions, state, weights,
                      dict(config.get("training") or {}))


def load_resume_state(path: str | Path) -> tuple[Checkpoint, dict[str, torch.Tensor], dict]:
    """A resumable checkpoint (``RUN/last`` when given a run directory): the checkpoint, the
    optimizer tensors and the trainer state."""
    ckpt = load(path, prefer=LAST)
    if not (ckpt.path / OPTIMIZER).is_file() or not (ckpt.path / TRAINER_STATE).is_file():
        raise CheckpointError(f"{ckpt.path}: has no optimizer state to resume from; resume from "
                              f"the run's {LAST}/ checkpoint")
    return ckpt, _read_tensors(ckpt.path / OPTIMIZER), read_json(ckpt.path / TRAINER_STATE)


def check_weights(path: Path, expected: Mapping[str, torch.Tensor],
                  weights: Mapping[str, torch.Tensor]) -> None:
    """Raise CheckpointError unless ``weights`` has exactly the names and shapes of ``expected``."""
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:3])}"] if missing else []) + \
                ([f"unexpected {', '.join(extra[:3])}"] if extra else [])
        raise CheckpointError(f"{path / WEIGHTS}: weights do not match {CONFIG} ({'; '.join(parts)})")
    for name, ref in expected.items():
        if tuple(weights[name].shape) != tuple(ref.shape):
            raise CheckpointError(f"{path / WEIGHTS}: tensor {name} has shape "
                                  f"{tuple(weights[name].shape)}, {CONFIG} implies {tuple(ref.shape)}")


def _verify(root: Path, name: str, entry: Any) -> None:
    p = root / name
    if not p.is_file():
        raise CheckpointError(f"{p}: missing (the checkpoint is incomplete)")
    if not isinstance(entry, dict) or "bytes" not in entry or "sha256" not in entry:
        raise CheckpointError(f"{root / CONFIG}: bad 'files' entry for {name}")
    size = p.stat().st_size
    if size != entry["bytes"]:
        raise CheckpointError(f"{p}: truncated or replaced ({size} bytes, {CONFIG} recorded "
                              f"{entry['bytes']})")
    if _sha256(p) != entry["sha256"]:
        raise CheckpointError(f"{p}: corrupt (its SHA-256 does not match the one in {CONFIG})")


def _read_tensors(p: Path) -> dict[str, torch.Tensor]:
    try:
        tensors = load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types, and OSError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{p}: truncated or corrupt safetensors file ({reason})") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{p}: tensor {name} holds NaN or infinite values")
    return tensors


def read_json(p: Path) -> dict:
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{p}: missing (the checkpoint is incomplete)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{p}: unreadable ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p}: not valid JSON, truncated or corrupt ({exc.msg} at line "
                              f"{exc.lineno})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{p}: expected a JSON object")
    return data


def _write_json(p: Path, data: Mapping[str, Any]) -> None:
    with open(p, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def flatten_optimizer(state_dict: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer ``state_dict`` as safetensors-ready tensors plus its JSON-able rest (param
    groups, and scalars such as Adam's step count when they are plain numbers)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, state in state_dict["state"].items():
        for key, value in state.items():
            name = f"{idx}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value
            else:
                scalars[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: Mapping[str, torch.Tensor], rest: Mapping[str, Any]) -> dict:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in list(tensors.items()) + list(dict(rest.get("scalars") or {}).items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": list(rest["param_groups"])}
