"""Typed configuration dataclasses built from TOML with errors a user can act on.

Every config in VLA Studio (station profiles, device configs) is a dataclass. :func:`build` turns a
parsed TOML table into one, checking keys, types, ranges and choices, and raises
:class:`ConfigError` naming the file, the key, the bad value and what is allowed. No traceback
reaches the user for a bad profile.

Numbers are always finite (``nan`` and ``inf`` are refused) and always bounded: a field's
:func:`option` gives its documented ``min``/``max``; a bound it leaves open is
``±NUMBER_LIMIT`` (1e9), so that no value can overflow a dataset attribute or a device call.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, Union

T = TypeVar("T")
_MISSING = dataclasses.MISSING
# The bound of a number whose option() leaves one side open (see the module docstring).
NUMBER_LIMIT = 1e9
# Values in messages are shortened: a profile may hold a huge or deeply nested value.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 80, 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 8


def short_repr(value: Any) -> str:
    """``repr`` of a value, shortened for a one-line message."""
    try:
        return _SHORT.repr(value)
    except (RecursionError, ValueError):  # ValueError: int too long to print
        return f"<{type(value).__name__}>"


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
            super().__init__(f"{source}: '{key}' = {short_repr(value)} is not allowed: {allowed}")


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
        min: inclusive lower bound for numbers (applied element-wise to tuples); default
            ``-NUMBER_LIMIT``.
        max: inclusive upper bound for numbers; default ``NUMBER_LIMIT``.
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
    if _is_numeric(hint):
        lo, hi = _bounds(meta)
        words += f" from {_number(lo)} to {_number(hi)}"
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
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float range
            fail()
        if not math.isfinite(value):  # NaN or inf never makes sense in a profile
            raise ConfigError(source, key, value, f"expected a finite {_describe(hint, field)}"
                              .replace("finite a ", "finite "))
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
    lo, hi = _bounds(meta)
    numbers = value if isinstance(value, (tuple, list)) else (value,)
    for v in numbers:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not lo <= v <= hi:
                raise ConfigError(source, key, value, f"expected {_describe(hint, f)}")


def _bounds(meta: Mapping[str, Any]) -> tuple[float, float]:
    """A field's inclusive range, the open sides closed at ``±NUMBER_LIMIT``."""
    lo, hi = meta.get("min"), meta.get("max")
    return (-NUMBER_LIMIT if lo is None else lo), (NUMBER_LIMIT if hi is None else hi)


def _number(v: float) -> str:
    return str(v) if isinstance(v, int) or abs(v) < 1e6 else f"{v:.0e}"


def _is_numeric(hint: Any) -> bool:
    """Whether a field holds numbers (or a tuple/list of them, or optionally none)."""
    if hint in (int, float):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (tuple, list, Union, types.UnionType):
        inner = [a for a in args if a is not Ellipsis and a is not type(None)]
        return bool(inner) and all(_is_numeric(a) for a in inner)
    return False
