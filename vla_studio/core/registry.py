"""Registries of device and policy kinds, fed by built-ins and entry-point plugins.

A kind is registered as ``"module.path:ClassName"`` and imported only when first used, so listing
kinds (``vla-studio devices``) never imports pyrealsense2, mujoco or torch. Third-party packages
add kinds through the entry-point groups ``vla_studio.robots``, ``vla_studio.cameras``,
``vla_studio.teleops``, ``vla_studio.observers`` and ``vla_studio.policies``.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Generic, Mapping, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class RegistryError(LookupError):
    """A kind that is unknown or cannot be imported; the message says what to do."""


@dataclass(frozen=True)
class KindInfo:
    """Where a registered kind comes from.

    Attributes:
        name: the ``type`` used in station profiles.
        target: ``"module:attribute"`` that is imported on first use.
        origin: ``"built-in"`` or ``"plugin <distribution> <version>"``.
    """

    name: str
    target: str
    origin: str


class Registry(Generic[T]):
    """Maps kind names to classes, importing each lazily.

    Args:
        kind: human name of what is registered ("robot", "camera", ...), used in messages.
        group: entry-point group third-party packages register under.
        builtins: ``name -> "module:Class"`` for the kinds shipped with VLA Studio.
        base: the abstract base every registered class must subclass.
    """

    def __init__(self, kind: str, group: str, builtins: Mapping[str, str], base: type[T]) -> None:
        self.kind, self.group, self.base = kind, group, base
        self._builtins = dict(builtins)
        self._infos: dict[str, KindInfo] | None = None
        self._loaded: dict[str, type[T]] = {}
        self._lock = threading.Lock()

    def infos(self) -> dict[str, KindInfo]:
        """All registered kinds (built-ins first; a plugin cannot shadow a built-in)."""
        with self._lock:
            if self._infos is None:
                infos = {n: KindInfo(n, t, "built-in") for n, t in self._builtins.items()}
                for ep in _entry_points(self.group):
                    dist = getattr(ep, "dist", None)
                    origin = f"plugin {dist.name} {dist.version}" if dist else "plugin"
                    if ep.name in infos and infos[ep.name].target != ep.value:
                        log.warning("%s kind %r from %s ignored: the name is taken by %s",
                                    self.kind, ep.name, origin, infos[ep.name].origin)
                        continue
                    infos.setdefault(ep.name, KindInfo(ep.name, ep.value, origin))
                self._infos = infos
            return dict(self._infos)

    def names(self) -> list[str]:
        return sorted(self.infos())

    def register(self, name: str, target: str) -> None:
        """Register a kind at run time (tests, embedding applications)."""
        with self._lock:
            self._builtins[name] = target
            self._infos = None
            self._loaded.pop(name, None)

    def load(self, name: str) -> type[T]:
        """Import and return the class registered as ``name``.

        Raises:
            RegistryError: unknown name, import failure (with the missing module named), or a
                class that does not implement the expected base.
        """
        if name in self._loaded:
            return self._loaded[name]
        infos = self.infos()
        if name not in infos:
            raise RegistryError(
                f"unknown {self.kind} type {name!r}; installed {self.kind} types: "
                f"{', '.join(sorted(infos)) or '(none)'}. Plugins register under the "
                f"entry-point group '{self.group}'."
            )
        info = infos[name]
        module_name, _, attr = info.target.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            raise RegistryError(
                f"{self.kind} type {name!r} ({info.origin}) cannot be loaded: module "
                f"{missing!r} is missing ({exc}). Install it, e.g. `pip install {missing}`."
            ) from exc
        except AttributeError as exc:
            raise RegistryError(f"{self.kind} type {name!r}: {info.target} does not exist") from exc
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise RegistryError(
                f"{self.kind} type {name!r} ({info.target}) is not a {self.base.__name__} subclass"
            )
        self._loaded[name] = obj
        return obj


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    try:
        return list(metadata.entry_points(group=group))
    except Exception:  # a broken installed distribution must not stop the app
        log.exception("reading entry points of group %s failed", group)
        return []
