"""Typed configuration dataclasses built from TOML with errors a user can act on.

Every config in VLA Studio (station profiles, device configs) is a dataclass. :func:`build` turns a
parsed TOML table into one, checking keys, types, ranges and choices, and raises
:class:`ConfigError` naming the file, the key, the bad value and what is allowed. No traceback
reaches the user for a bad profile.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, Union

T = TypeVar("T")
_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """A configuration value that cannot be used.

    Attributes:
        source: the file (or other origin) the value came from.
        key: dotted key, e.g. ``safety.speed_scale`` or ``cameras[1].fps``.
        value: the offending value (``None`` for a missing key).
        allowed: what would have been accepted, in words.
    """

    def __init__(self, source: str, key: str, value: Any, allowed: str) -> None:
        self.source, self.key, self.value, self.allowed = source, key, value, allowed
        if key.startswith("("):  # the file itself, not one key: "(file)", "(syntax)"
            super().__init__(f"{source}: {allowed}")
        elif value is _MISSING or value is None:
            super().__init__(f"{source}: '{key}' is missing ({allowed})")
        else:
            super().__init__(f"{source}: '{key}' = {value!r} is not allowed: {allowed}")


def option(
    default: Any = _MISSING,
    *,
    help: str = "",
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    default_factory: Any = _MISSING,
) -> Any:
    """A dataclass field with documentation and validation limits.

    Args:
        default: default value; omit for a required key.
        help: one line shown in error messages and ``--help`` style listings.
        min: inclusive lower bound for numbers (applied element-wise to tuples).
        max: inclusive upper bound for numbers.
        choices: the only values allowed.
        default_factory: like ``dataclasses.field``.
    """
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def build(cls: type[T], data: Mapping[str, Any], *, source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, validating every key.

    Raises:
        ConfigError: for an unknown key, a missing required key, a wrong type or a value out of
            range; the message says which file, key and value, and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(source, prefix.rstrip(".") or "(top level)", data, "expected a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            source, prefix + unknown[0], data[unknown[0]],
            f"unknown key; allowed keys here: {', '.join(sorted(fields))}",
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:
                raise ConfigError(source, key, _MISSING, f"required; {_describe(hints[name], f)}")
            continue
        value = _convert(hints[name], data[name], source=source, key=key, field=f)
        _check_limits(value, f, source=source, key=key, hint=hints[name])
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ cross-field checks
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(source, prefix.rstrip(".") or "(top level)", dict(data), str(exc)) from None


def field_help(cls: type) -> dict[str, str]:
    """Map each field of a config dataclass to its help line (for listings)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _describe(hint: Any, f: dataclasses.Field | None = None) -> str:
    meta = f.metadata if f is not None else {}
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    words = _type_words(hint)
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        words += f" from {lo} to {hi}"
    elif lo is not None:
        words += f" >= {lo}"
    elif hi is not None:
        words += f" <= {hi}"
    if meta.get("help"):
        words += f" ({meta['help']})"
    return words


def _type_words(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_words(a) for a in inner) + " (or omitted)"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_words(args[0])}s"
        return f"a list of {len(args)} values ({', '.join(_type_words(a) for a in args)})"
    if origin is list:
        return f"a list of {_type_words(args[0])}"
    if origin is dict:
        return f"a table of {_type_words(args[1])}"
    if dataclasses.is_dataclass(hint):
        return f"a table with keys {', '.join(f.name for f in dataclasses.fields(hint))}"
    if hint is Any:
        return "any value"
    return getattr(hint, "__name__", str(hint))


def _convert(hint: Any, value: Any, *, source: str, key: str, field: dataclasses.Field | None) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def fail() -> typing.NoReturn:
        raise ConfigError(source, key, value, f"expected {_describe(hint, field)}")

    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            fail()
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail()
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail()
        value = float(value)
        if value != value:  # NaN never makes sense in a profile
            fail()
        return value
    if hint is str:
        if not isinstance(value, str):
            fail()
        return value
    if origin is Literal:
        if value not in args:
            fail()
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for candidate in (a for a in args if a is not type(None)):
            try:
                return _convert(candidate, value, source=source, key=key, field=None)
            except ConfigError:
                continue
        fail()
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            fail()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, source=source, key=f"{key}[{i}]", field=None)
                         for i, v in enumerate(value))
        if len(value) != len(args):
            fail()
        return tuple(_convert(a, v, source=source, key=f"{key}[{i}]", field=None)
                     for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            fail()
        return [_convert(args[0], v, source=source, key=f"{key}[{i}]", field=None)
                for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            fail()
        return {str(k): _convert(args[1], v, source=source, key=f"{key}.{k}", field=None)
                for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build(hint, value, source=source, prefix=key + ".")
    raise TypeError(f"config type {hint!r} of {key} is not supported")


def _check_limits(value: Any, f: dataclasses.Field, *, source: str, key: str, hint: Any) -> None:
    meta = f.metadata
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(source, key, value, f"expected {_describe(hint, f)}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is None and hi is None:
        return
    numbers = value if isinstance(value, (tuple, list)) else (value,)
    for v in numbers:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ConfigError(source, key, value, f"expected {_describe(hint, f)}")
