"""Turn what a user names (a folder, a file, a plugin, a server URL) into a loaded policy.

| source                         | loader                                    | safe on untrusted files |
|--------------------------------|-------------------------------------------|-------------------------|
| folder with ``config.json``    | native: safetensors + JSON, class chosen  | yes                     |
|                                | by ``policy_type`` from the registry; a   |                         |
|                                | reference-VLA checkpoint (format          |                         |
|                                | ``vla-studio-vla``) or its training run   |                         |
|                                | folder (``best/``) by the ``vla`` type    |                         |
| ``file.pt`` + ``file.json``    | native layout, ``torch.load(weights_only)``| yes                    |
| ``file.pt2`` + ``file.json``   | ``torch.export`` program                  | no: trusted files only  |
| ``plugin:NAME`` or ``NAME``    | a registered policy type, default config  | installed code          |
| ``ws://host:port``             | remote openpi-protocol server             | yes (data only)         |
| ``untrained``                  | a freshly initialised reference VLA for   | yes (no file is read)   |
|                                | the default station (random weights)      |                         |

No loader executes code named by a file: checkpoints choose among installed policy types, and an
exported program (which can run code on load) is refused unless the caller passes
``trusted=True``. Every failure is a :class:`PolicyLoadError` of one line.

``untrained`` is a reserved word (a folder of that name is ``./untrained``): its actions are
meaningless but bounded, for trying the protocol, the panel and the benchmarks without a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from vla_studio.core.config import ConfigError, build
from vla_studio.core.registry import RegistryError
from vla_studio.policies.base import Policy
from vla_studio.policies.errors import PolicyError, PolicyLoadError, one_line
from vla_studio.policies.native import CONFIG_FILE, read_native
from vla_studio.policies.registry import POLICIES

log = logging.getLogger(__name__)

NATIVE, TORCH_WEIGHTS, EXPORTED, PLUGIN, REMOTE = "native", "pt", "pt2", "plugin", "remote"
UNTRAINED = "untrained"

# What the load dialog offers, with the trust label the panel must show next to each.
FORMATS: tuple[tuple[str, str, str], ...] = (
    (NATIVE, "checkpoint folder (config.json + model.safetensors + normalization.json)", "safe"),
    (TORCH_WEIGHTS, "torch weights (.pt, loaded with weights_only=True) + .json sidecar", "safe"),
    (EXPORTED, "torch.export program (.pt2) + .json sidecar", "trusted files only"),
    (PLUGIN, "installed policy plugin (plugin:NAME)", "installed code"),
    (REMOTE, "policy server (ws://host:port, openpi protocol)", "safe"),
    (UNTRAINED, "untrained reference VLA for the default station (random weights, for trying "
                "things)", "built-in"),
)


@dataclass(frozen=True)
class PolicySource:
    """A parsed policy source.

    Attributes:
        kind: one of ``native``, ``pt``, ``pt2``, ``plugin``, ``remote``.
        location: the path, plugin name or URL.
    """

    kind: str
    location: str

    def __str__(self) -> str:
        if self.kind == UNTRAINED:
            return UNTRAINED
        return f"plugin:{self.location}" if self.kind == PLUGIN else self.location


def parse_source(text: str) -> PolicySource:
    """Classify ``text``; a path must exist, a bare word must be a registered policy type.

    Raises:
        PolicyLoadError: nothing by that name.
    """
    text = str(text).strip()
    if not text:
        raise PolicyLoadError("no policy given: pass a checkpoint folder, a .pt/.pt2 file, "
                              "plugin:NAME, ws://host:port or untrained")
    if text == UNTRAINED:
        return PolicySource(UNTRAINED, "vla")
    if text.startswith(("ws://", "wss://")):
        return PolicySource(REMOTE, text)
    if text.startswith("plugin:"):
        return PolicySource(PLUGIN, text[len("plugin:"):])
    path = Path(text).expanduser()
    if path.is_dir():
        return PolicySource(NATIVE, str(path))
    if path.suffix == ".pt2":
        return PolicySource(EXPORTED, str(path))
    if path.suffix == ".pt":
        return PolicySource(TORCH_WEIGHTS, str(path))
    if path.exists():
        raise PolicyLoadError(f"{path}: not a policy: expected a checkpoint folder with "
                              f"{CONFIG_FILE}, a .pt or .pt2 file")
    if "/" not in text and text in POLICIES.names():
        return PolicySource(PLUGIN, text)
    raise PolicyLoadError(f"{text}: no such file or folder, and no policy type of that name "
                          f"(installed: {', '.join(POLICIES.names()) or 'none'})")


def load_policy(source: str | PolicySource, *, trusted: bool = False,
                options: Mapping[str, Any] | None = None, api_key: str | None = None) -> Policy:
    """Load ``source`` and return a ready policy (``load()`` already called).

    Args:
        source: see the module table.
        trusted: allow formats that can run code on load (``.pt2``).
        options: config values for a plugin policy (``plugin:NAME``).
        api_key: for a remote server.

    Raises:
        PolicyLoadError: one line naming the file and the problem.
        PolicyConnectionError: a remote server that cannot be reached or refuses the key.
    """
    src = source if isinstance(source, PolicySource) else parse_source(source)
    if src.kind == REMOTE:
        from vla_studio.policies.remote import RemotePolicy

        return RemotePolicy.connect(src.location, api_key=api_key)
    if src.kind == UNTRAINED:  # built and initialised in memory: nothing to load
        from vla_studio.policies.vla.policy import untrained_policy

        return untrained_policy()
    policy = build_policy(src, trusted=trusted, options=options)
    try:
        policy.load()
    except PolicyError:
        raise
    except (ValueError, OSError, RuntimeError, KeyError, TypeError) as exc:
        raise PolicyLoadError(f"{src}: cannot be loaded ({one_line(exc)})") from None
    return policy


def build_policy(src: PolicySource, *, trusted: bool = False,
                 options: Mapping[str, Any] | None = None) -> Policy:
    """The policy object of a local ``src``, not yet loaded (checks files, imports no weights)."""
    if src.kind == NATIVE and is_vla_checkpoint(src.location):
        cls = policy_class("vla", f"{src.location}: reference VLA checkpoint")
        return cls(cls.config_class(name=Path(src.location).name, checkpoint=src.location))
    if src.kind == NATIVE or src.kind == TORCH_WEIGHTS:
        ckpt = read_native(src.location)
        cls = policy_class(ckpt.policy_type, f"{src.location}: policy_type")
        if ckpt.weights_path is not None and cls.from_native.__func__ is Policy.from_native.__func__:
            raise PolicyLoadError(f"{src.location}: policy type '{ckpt.policy_type}' does not read "
                                  "weights, but the checkpoint has some (wrong policy_type?)")
        try:
            return cls.from_native(ckpt)
        except PolicyError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise PolicyLoadError(f"{src.location}: {one_line(exc)}") from None
    if src.kind == EXPORTED:
        from vla_studio.policies.exported import (TRUST_NOTE, ExportedProgramConfig,
                                                  ExportedProgramPolicy)

        if not trusted:
            raise PolicyLoadError(f"{src.location}: refused, {TRUST_NOTE}; load it only if you "
                                  "trust where it came from (--trusted)")
        return ExportedProgramPolicy(ExportedProgramConfig(name=Path(src.location).stem,
                                                           path=src.location))
    if src.kind == PLUGIN:
        cls = policy_class(src.location, "plugin")
        table = dict(options or {})
        table.setdefault("name", src.location)
        try:
            config = build(cls.config_class, table, source=f"plugin:{src.location}")
        except ConfigError as exc:
            raise PolicyLoadError(str(exc)) from None
        return cls(config)
    raise PolicyLoadError(f"{src}: cannot be built locally (kind {src.kind})")


# The reference VLA's own checkpoint format (vla_studio.policies.vla.checkpoint; not imported
# here: that pulls in torch). Its folders name no policy_type: the format says which class.
VLA_FORMAT, VLA_RUN_SUBDIRS = "vla-studio-vla", ("best", "last")


def is_vla_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a reference-VLA checkpoint folder, or a training run folder holding
    one (``best/`` or ``last/``). Reads its small ``config.json``, nothing else; an unreadable
    one is not (the native reader then names the problem)."""
    p = Path(path).expanduser()
    for folder in (p, *(p / sub for sub in VLA_RUN_SUBDIRS)):
        config = folder / CONFIG_FILE
        if config.is_file():
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
            return isinstance(data, dict) and data.get("format") == VLA_FORMAT
    return False


def policy_class(name: str, where: str) -> type[Policy]:
    """The registered class ``name``; an unknown type lists the installed ones."""
    try:
        return POLICIES.load(name)
    except RegistryError as exc:
        raise PolicyLoadError(f"{where}: {exc}") from None


def policy_id(src: str | PolicySource) -> str:
    """A stable identifier for episode metadata: kind, location and a content fingerprint.

    The fingerprint hashes the config and the first MiB of the weights with their size (reading a
    multi-GB checkpoint whole for an id would delay every start).
    """
    src = src if isinstance(src, PolicySource) else parse_source(src)
    if src.kind in (REMOTE, PLUGIN):
        return f"{src.kind}:{src.location}"
    if src.kind == UNTRAINED:
        return "untrained:vla#seed0"
    path = Path(src.location)
    if path.is_dir() and not (path / CONFIG_FILE).is_file():  # a training run: its checkpoint
        path = next((path / sub for sub in VLA_RUN_SUBDIRS
                     if (path / sub / CONFIG_FILE).is_file()), path)
    digest = hashlib.sha256()
    files = ([path / CONFIG_FILE, path / "model.safetensors", path / "normalization.json"]
             if path.is_dir() else [path, path.with_suffix(".json")])
    for f in files:
        try:
            with f.open("rb") as fh:
                digest.update(fh.read(1 << 20))
            digest.update(str(f.stat().st_size).encode())
        except OSError:
            continue
    return f"{src.kind}:{path.resolve()}#{digest.hexdigest()[:12]}"
