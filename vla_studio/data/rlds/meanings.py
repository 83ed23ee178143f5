"""What the exported numbers mean: state element names and units, action units and frame.

A training pipeline that reads ``observation/state`` as a bare float vector cannot tell a
``w x y z`` quaternion from an ``x y z w`` one, or whether gripper 1 is open. These meanings go
into ``features.json`` (tfds feature descriptions, which tfds loads and exposes as
``feature.doc``) and ``metadata.json``.

Where they come from, most trusted first:

1. the robot's own offline features (``Robot.observation_features``: element names and units,
   known before connecting), for the robot kind and configuration in the episode's recorded
   station profile;
2. VLA Studio's conventions for the standard state keys (``ee_pos``, ``ee_quat``, ``gripper``,
   ``joint_pos``, ``joint_vel``) and action kinds (``ee_delta``, ``joint_position``), the ones
   :mod:`vla_studio.core.action_space` and the built-in robots follow;
3. otherwise ``key[i]`` element names and no unit, said as such.
"""

from __future__ import annotations

import functools
import logging
import math
import tomllib
from dataclasses import dataclass
from typing import Any, Mapping

from vla_studio.core.action_space import EE_DELTA, JOINT_POSITION
from vla_studio.data.rlds.episode_source import text_attr

log = logging.getLogger(__name__)

GRIPPER_CONVENTION = "1 open, 0 closed"
GRIPPER_RANGE = "0 (closed) to 1 (open)"
BASE_FRAME = "robot base frame"


@dataclass(frozen=True)
class _KeyConvention:
    names: tuple[str, ...] | None  # None: one name per element, key[i]
    unit: str
    meaning: str


# The standard state keys (vla_studio.core.action_space STATE_* and the built-in robots).
STATE_CONVENTIONS: dict[str, _KeyConvention] = {
    "ee_pos": _KeyConvention(("x", "y", "z"), "m", f"end-effector position in the {BASE_FRAME}"),
    "ee_quat": _KeyConvention(("w", "x", "y", "z"), "",
                              f"end-effector orientation quaternion in the {BASE_FRAME}"),
    "gripper": _KeyConvention(("opening",), "", f"measured gripper opening, {GRIPPER_CONVENTION}"),
    "joint_pos": _KeyConvention(None, "rad", "joint positions"),
    "joint_vel": _KeyConvention(None, "rad/s", "joint velocities"),
}


@dataclass(frozen=True)
class StateMeaning:
    """One exported state key.

    Attributes:
        key: the state key.
        names: one name per element (flattened row-major).
        unit: physical unit of every element ('' when dimensionless or unknown).
        meaning: what it measures, in words ('' when unknown).
        source: ``"robot"`` (the robot's features), ``"convention"`` or ``"unknown"``.
    """

    key: str
    names: tuple[str, ...]
    unit: str
    meaning: str
    source: str

    @property
    def quaternion_order(self) -> str | None:
        """``"w x y z"`` (or the order the names give) for a quaternion key, else None."""
        if sorted(self.names) == ["w", "x", "y", "z"]:
            return " ".join(self.names)
        return None

    def describe(self) -> str:
        """``ee_quat [w, x, y, z] (end-effector orientation quaternion ..., order w x y z)``."""
        details = [d for d in (self.unit, self.meaning) if d]
        if self.quaternion_order:
            details.append(f"order {self.quaternion_order}")
        text = f"{self.key} [{', '.join(self.names)}]"
        return text + (f" ({'; '.join(details)})" if details else "")


@dataclass(frozen=True)
class ActionMeaning:
    """The action vector: kind, per-element units, frame and a description."""

    kind: str
    names: tuple[str, ...]
    units: tuple[str, ...]
    frame: str
    description: str


def state_meanings(keys: tuple[tuple[str, tuple[int, ...]], ...],
                   attrs: Mapping[str, Any]) -> tuple[StateMeaning, ...]:
    """The meaning of each exported state key of episodes recorded like ``attrs`` (an episode's
    root attributes: its station profile and action space)."""
    robot = robot_state_features(text_attr(attrs, "station_profile"),
                                 text_attr(attrs, "action_space_kind"))
    out = []
    for key, shape in keys:
        n = math.prod(shape)
        feature = robot.get(key)
        convention = STATE_CONVENTIONS.get(key)
        unit = (feature[1] if feature is not None else "") or (
            convention.unit if convention else "")
        if feature is not None and feature[0] and len(feature[0]) == n:
            names, source = feature[0], "robot"
        elif convention is not None and convention.names and len(convention.names) == n:
            names, source = convention.names, "convention"
        else:
            names = tuple(f"{key}[{i}]" for i in range(n)) if n > 1 else (key,)
            source = ("robot" if feature is not None else
                      "convention" if convention is not None else "unknown")
        out.append(StateMeaning(key, names, unit, convention.meaning if convention else "",
                                source))
    return tuple(out)


def action_meaning(kind: str, names: tuple[str, ...]) -> ActionMeaning:
    """Units, frame and description of an action vector of ``kind`` named ``names``."""
    if kind == EE_DELTA and len(names) == 7:
        return ActionMeaning(
            kind, names, ("m", "m", "m", "rad", "rad", "rad", ""), BASE_FRAME,
            f"end-effector displacement per control step in the {BASE_FRAME}: dx, dy, dz in "
            "metres, droll, dpitch, dyaw in radians (applied as Rz(dyaw) Ry(dpitch) Rx(droll) "
            f"R); gripper: absolute command, {GRIPPER_CONVENTION}")
    if kind == JOINT_POSITION and names:
        return ActionMeaning(
            kind, names, ("rad",) * (len(names) - 1) + ("",), "joint space",
            f"absolute joint position targets in radians ({', '.join(names[:-1])}), then the "
            f"gripper command, {GRIPPER_CONVENTION}")
    return ActionMeaning(kind, names, ("",) * len(names), "",
                         f"action sent to the robot ({kind or 'kind not recorded'}): "
                         + ", ".join(names))


def robot_state_features(profile_text: str, action_kind: str
                         ) -> dict[str, tuple[tuple[str, ...] | None, str]]:
    """``state key -> (element names, unit)`` from the robot a recorded station profile names.

    The robot is built from the profile's ``[robot]`` table without connecting (its features
    are known offline); an empty dict when that is not possible (no profile, a robot kind that
    is not installed, a configuration this version no longer accepts).
    """
    if not profile_text:
        return {}
    return dict(_robot_state_features(profile_text, action_kind or EE_DELTA))


@functools.lru_cache(maxsize=8)
def _robot_state_features(profile_text: str, action_kind: str
                          ) -> tuple[tuple[str, tuple[tuple[str, ...] | None, str]], ...]:
    # Imported here: the registry pulls in device modules, which only this lookup needs.
    from vla_studio.core.config import build
    from vla_studio.devices.registry import ROBOTS

    try:
        table = dict(tomllib.loads(profile_text)["robot"])
        kind = table.pop("type")
        robot_cls = ROBOTS.load(kind)
        table.setdefault("name", kind)
        config = build(robot_cls.config_class, table, source="recorded station profile",
                       prefix="robot.")
        features = robot_cls(config, action_kind).observation_features
    except Exception as exc:  # any failure only costs the robot's names: conventions remain
        log.info("state element names from conventions: the recorded robot cannot be "
                 "described (%s)", exc)
        return ()
    return tuple((key, (tuple(f.names) if f.names else None, f.unit))
                 for key, f in features.items())
