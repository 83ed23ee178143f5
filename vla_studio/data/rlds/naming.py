"""Exported names: which cameras and state keys an export carries, and under which names.

Open X-Embodiment datasets name their main camera ``image``, the wrist camera ``wrist_image`` and
concatenate a chosen set of state keys, in a chosen order, into ``state``; Octo and OpenVLA
configs expect those names. A camera map (``front=image,wrist=wrist_image``) and a state-key
list (``ee_pos,ee_quat,gripper``) make an export follow them without a conversion script: only
the mapped cameras and the listed keys are exported, in the order given.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from vla_studio.data.rlds.episode_source import EpisodeSummary
from vla_studio.data.rlds.errors import ExportError

CameraMap = tuple[tuple[str, str], ...]  # (recorded camera, exported name), in export order

# Exported feature names: plain identifiers (they become keys below steps/observation).
_FEATURE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RESERVED_OBSERVATION_NAMES = frozenset({"state"})
CAMERA_MAP_EXAMPLE = "front=image,wrist=wrist_image"
STATE_KEYS_EXAMPLE = "ee_pos,ee_quat,gripper"


def parse_camera_map(text: str) -> CameraMap:
    """``"front=image,wrist=wrist_image"`` -> ``(("front", "image"), ("wrist", "wrist_image"))``.

    Raises:
        ExportError: an entry is not ``CAMERA=NAME``, or the map fails :func:`check_camera_map`.
    """
    pairs = []
    for entry in _items(text, "--camera-map", CAMERA_MAP_EXAMPLE):
        camera, sep, name = (part.strip() for part in entry.partition("="))
        if not sep or not camera or not name:
            raise ExportError(f"camera map entry {entry!r} must look like CAMERA=NAME, e.g. "
                              f"--camera-map {CAMERA_MAP_EXAMPLE}")
        pairs.append((camera, name))
    result = tuple(pairs)
    check_camera_map(result)
    return result


def parse_state_keys(text: str) -> tuple[str, ...]:
    """``"ee_pos,ee_quat,gripper"`` -> ``("ee_pos", "ee_quat", "gripper")``.

    Raises:
        ExportError: an empty entry, or the list fails :func:`check_state_keys`.
    """
    keys = tuple(_items(text, "--state-keys", STATE_KEYS_EXAMPLE))
    check_state_keys(keys)
    return keys


def as_camera_map(value: Mapping[str, str] | Iterable[Sequence[str]] | None) -> CameraMap | None:
    """A camera map given as a dict or as pairs, as the tuple :class:`ExportOptions` keeps."""
    if value is None:
        return None
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(camera), str(name)) for camera, name in items)


def check_camera_map(pairs: CameraMap) -> None:
    """Raise :class:`ExportError` for an empty map, a camera mapped twice, a name given to two
    cameras, or a name that cannot be a feature key."""
    if not pairs:
        raise ExportError(f"the camera map is empty; give CAMERA=NAME pairs, e.g. "
                          f"--camera-map {CAMERA_MAP_EXAMPLE}")
    cameras: dict[str, str] = {}
    names: dict[str, str] = {}
    for camera, name in pairs:
        if camera in cameras:
            raise ExportError(f"camera map: camera {camera!r} is mapped twice ({cameras[camera]!r} "
                              f"and {name!r}); map each camera once")
        if name in names:
            raise ExportError(f"camera map: the name {name!r} is given to both {names[name]!r} "
                              f"and {camera!r}; each exported camera needs its own name")
        if not _FEATURE_NAME.match(name):
            raise ExportError(f"camera map: {name!r} (for {camera!r}) is not a usable feature "
                              "name: use letters, digits and _, starting with a letter (e.g. "
                              "image, wrist_image)")
        if name in RESERVED_OBSERVATION_NAMES:
            raise ExportError(f"camera map: {name!r} (for {camera!r}) is taken by the "
                              "concatenated robot state; choose another name, e.g. image")
        cameras[camera], names[name] = name, camera


def check_state_keys(keys: tuple[str, ...]) -> None:
    """Raise :class:`ExportError` for an empty list or a key listed twice."""
    if not keys:
        raise ExportError(f"the state key list is empty; give keys in order, e.g. "
                          f"--state-keys {STATE_KEYS_EXAMPLE}")
    seen = set()
    for key in keys:
        if key in seen:
            raise ExportError(f"state key {key!r} is listed twice in --state-keys; list each "
                              "key once, in the order it goes into observation/state")
        seen.add(key)


def with_named_streams(candidates: list[EpisodeSummary], camera_map: CameraMap | None,
                       state_keys: tuple[str, ...] | None,
                       skipped: list[tuple[Path, str]]) -> list[EpisodeSummary]:
    """The episodes that have every mapped camera and listed state key; the others are added
    to ``skipped`` with what they lack.

    Raises:
        ExportError: a mapped camera or listed key is in none of ``candidates`` (a typo: the
            message lists the names there are), or no episode has all of them.
    """
    cameras = [camera for camera, _ in camera_map or ()]
    keys = list(state_keys or ())
    if not cameras and not keys:
        return candidates
    colour = {n for s in candidates for n, c in s.cameras.items() if c.image_format}
    for camera in cameras:
        if camera not in colour:
            raise ExportError(f"camera {camera!r} in the camera map is not a colour camera of "
                              f"any episode being exported (cameras: "
                              f"{', '.join(sorted(colour)) or 'none'})")
    recorded = {k for s in candidates for k in s.state_shapes}
    for key in keys:
        if key not in recorded:
            raise ExportError(f"state key {key!r} in --state-keys is not recorded in any episode "
                              f"being exported (state keys: {', '.join(sorted(recorded)) or 'none'})")
    kept = []
    for s in candidates:
        lacks = [f"camera {c!r}" for c in cameras
                 if not (c in s.cameras and s.cameras[c].image_format)]
        lacks += [f"state key {k!r}" for k in keys if k not in s.state_shapes]
        if lacks:
            skipped.append((s.path, f"it has no {', '.join(lacks)} (asked for by the camera map "
                                    "or --state-keys)"))
        else:
            kept.append(s)
    if not kept:
        raise ExportError("no episode has all the cameras of the camera map and the keys of "
                          "--state-keys at once; export them in groups that share them")
    return kept


def check_unique_feature_names(names: Iterable[tuple[str, str]]) -> None:
    """Raise :class:`ExportError` when two exported streams would get the same feature name.

    Args:
        names: ``(feature name, what it holds)`` pairs, e.g. ``("image_depth", "depth of
            front")``.
    """
    seen: dict[str, str] = {}
    for name, what in names:
        if name in seen:
            raise ExportError(f"observation/{name} would hold both {seen[name]} and {what}; "
                              "give one of them another name in the camera map")
        seen[name] = what


def _items(text: str, option: str, example: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ExportError(f"{option} is empty; give a comma-separated list, e.g. "
                          f"{option} {example}")
    if not all(items):
        raise ExportError(f"{option} {text!r} has an empty entry; separate entries with single "
                          f"commas, e.g. {option} {example}")
    return items
