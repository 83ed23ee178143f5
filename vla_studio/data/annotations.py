"""Annotations: a researcher's edits to an episode, kept apart from the recorded data.

They live as attributes of the ``annotations/`` group of the episode file and never touch
``steps/`` or the root attributes, so the original recording is always there. Every edit is
appended to an edit log (attribute ``history``), which makes each one undoable.

Keys (all optional; absent = not annotated, readers fall back to the recording):

* ``instructions``: JSON list of strings, primary first.
* ``success``: int8, -1 unknown, 0 failure, 1 success.
* ``quality``: int 1..5 (operator's rating of the demonstration).
* ``notes``: free text.
* ``trim``: int64 ``[start, end)`` step range to keep.
* ``segments``: JSON list of ``{"start": int, "end": int, "label": str}`` subtask segments.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

GROUP = "annotations"
KEYS = ("instructions", "success", "quality", "notes", "trim", "segments")
_JSON_KEYS = ("instructions", "segments", "history")
_ABSENT = {"absent": True}  # marks "the key did not exist" in the edit log


class AnnotationError(ValueError):
    """An annotation value that cannot be stored; the message says what is expected."""


def read_annotations(group: h5py.Group) -> dict[str, Any]:
    """Decode the ``annotations`` group's attributes (without the edit log)."""
    out: dict[str, Any] = {}
    for key in KEYS:
        if key not in group.attrs:
            continue
        value = group.attrs[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if key in _JSON_KEYS:
            value = json.loads(value)
        elif key == "trim":
            value = [int(v) for v in np.asarray(value).reshape(-1)[:2]]
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def validate(key: str, value: Any, num_steps: int) -> Any:
    """Check one annotation value and return it in stored form (None deletes the key)."""
    if key not in KEYS:
        raise AnnotationError(f"unknown annotation {key!r}; allowed: {', '.join(KEYS)}")
    if value is None and key != "success":
        return None
    if key == "instructions":
        items = [value] if isinstance(value, str) else list(value)
        items = [str(s).strip() for s in items]
        if not items or not all(items):
            raise AnnotationError("instructions must be a non-empty list of non-empty strings")
        return json.dumps(items)
    if key == "success":
        return np.int8(-1 if value is None else int(bool(value)))
    if key == "quality":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 5:
            raise AnnotationError(f"quality must be a whole number from 1 to 5, got {value!r}")
        return int(value)
    if key == "notes":
        return str(value)
    if key == "trim":
        start, end = (int(v) for v in value)
        if not 0 <= start < end <= num_steps:
            raise AnnotationError(f"trim [{start}, {end}) must satisfy 0 <= start < end <= "
                                  f"{num_steps} (the episode's step count)")
        return np.array([start, end], np.int64)
    segments = []
    for i, seg in enumerate(value):
        try:
            start, end, label = int(seg["start"]), int(seg["end"]), str(seg["label"])
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(f"segment {i} must have integer start, end and a label, "
                                  f"got {seg!r}") from None
        if not 0 <= start < end <= num_steps:
            raise AnnotationError(f"segment {i} [{start}, {end}) is outside the episode "
                                  f"(0..{num_steps})")
        segments.append({"start": start, "end": end, "label": label})
    return json.dumps(segments)


def _stored_to_log(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _log_to_stored(key: str, value: Any) -> Any:
    if key == "trim":
        return np.array(value, np.int64)
    if key == "success":
        return np.int8(value)
    return value


def write_annotations(path: str | Path, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` (key -> value, None removes) as one undoable edit.

    Returns:
        The annotations after the edit.

    Raises:
        AnnotationError: an unknown key or an invalid value (nothing is written then).
        OSError: the file cannot be opened for writing (open elsewhere, read-only...).
    """
    with h5py.File(path, "r+") as f:
        num_steps = int(f["steps/timestamp"].shape[0])
        stored = {k: validate(k, v, num_steps) for k, v in changes.items()}
        group = f.require_group(GROUP)
        history = json.loads(group.attrs.get("history", "[]"))
        entry = {"t": time.time(), "changes": {}}
        for key, value in stored.items():
            old = _stored_to_log(group.attrs[key]) if key in group.attrs else _ABSENT
            if value is None:
                if key in group.attrs:
                    del group.attrs[key]
                new: Any = _ABSENT
            else:
                group.attrs[key] = value
                new = _stored_to_log(value)
            entry["changes"][key] = {"old": old, "new": new}
        history.append(entry)
        group.attrs["history"] = json.dumps(history)
        return read_annotations(group)


def undo_annotation(path: str | Path) -> bool:
    """Revert the most recent annotation edit. Returns False when there is nothing to undo."""
    with h5py.File(path, "r+") as f:
        group = f.get(GROUP)
        if group is None:
            return False
        history = json.loads(group.attrs.get("history", "[]"))
        if not history:
            return False
        entry = history.pop()
        for key, change in entry["changes"].items():
            old = change["old"]
            if old == _ABSENT:
                if key in group.attrs:
                    del group.attrs[key]
            else:
                group.attrs[key] = _log_to_stored(key, old)
        group.attrs["history"] = json.dumps(history)
        return True


def annotation_history(path: str | Path) -> list[dict[str, Any]]:
    """The edit log, oldest first (each entry: ``t`` and ``changes`` key -> old/new)."""
    with h5py.File(path, "r") as f:
        group = f.get(GROUP)
        return json.loads(group.attrs.get("history", "[]")) if group is not None else []
