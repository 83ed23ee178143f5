"""Annotations: labels and edits of an episode, kept beside its (never edited) recording.

A sealed episode file is immutable. Everything decided about it afterwards — the operator's
success mark, a researcher's instructions, quality, notes, trim, subtask segments — lives in a
JSON *sidecar* beside it, with the edit log that makes every edit undoable::

    episodes/20261121-101502_3f2a9c1e.h5                 the recording (read-only from now on)
    episodes/20261121-101502_3f2a9c1e.annotations.json   its annotations and their edit log

Sidecar format (``vla-studio-annotations``, version 1)::

    {"format": "vla-studio-annotations", "version": 1, "episode": "<file name>",
     "annotations": {"success": 0, "quality": 4, ...},
     "history": [{"t": <unix time>, "source": "researcher",
                  "changes": {"success": {"old": {"absent": true}, "new": 0}}}, ...],
     "migrated": {"from": "annotations/ group of the episode file", "t": ..., "entries": N}}

The sidecar is replaced atomically (written to a temporary file, fsynced, renamed over the old
one, the folder fsynced), so a reader sees the old or the new version, never half of one, and an
edit needs no write access to the episode file: it works while another process has the episode
open (replay, export). Edits of one folder are serialised by an ``flock`` on the folder.

Files recorded before sidecars kept their annotations in an ``annotations/`` group inside the
episode file. Readers use that group while no sidecar exists; the first edit copies it (values and
edit log) into the sidecar, and the episode file is never written again.

Keys (all optional; absent = not annotated, readers fall back to the recording):

* ``instructions``: list of strings, primary first.
* ``success``: -1 unknown, 0 failure, 1 success (readers derive the final reward from it).
* ``success_source``: who set ``success`` (``operator``, ``robot``, ``researcher``).
* ``quality``: 1..5 (rating of the demonstration).
* ``notes``: free text.
* ``trim``: ``[start, end)`` step range to keep.
* ``segments``: list of ``{"start": int, "end": int, "label": str}`` subtask segments, sorted
  by start, never overlapping (:mod:`vla_studio.data.segments` edits them).
* ``tags``: list of distinct non-empty strings (``"wobbly grasp"``, ``"review"``).

Each history entry has an ``id`` (random hex), so an editor can undo exactly the edit it made
(:func:`undo_annotation` with ``expect``) and notice when someone else edited since. Keys this
version does not know are kept as they are when it writes the sidecar (a newer version's keys
survive an edit made with an older one); entries written before ids existed have none.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

log = logging.getLogger(__name__)

GROUP = "annotations"  # the legacy in-file group
SIDECAR_FORMAT = "vla-studio-annotations"
SIDECAR_VERSION = 1
SIDECAR_SUFFIX = ".annotations.json"
KEYS = ("instructions", "success", "success_source", "quality", "notes", "trim", "segments",
        "tags")
_JSON_KEYS = ("instructions", "segments", "tags", "history")
_ABSENT = {"absent": True}  # marks "the key did not exist" in the edit log
_EPISODE_SUFFIXES = (".h5.recording", ".h5")


class AnnotationError(ValueError):
    """An annotation value or sidecar that cannot be used; the message says what is expected."""


class AnnotationConflict(AnnotationError):
    """The edit to undo is no longer the latest: the episode was edited elsewhere since."""


@dataclass(frozen=True)
class AnnotationEdit:
    """One edit as written (see :func:`edit_annotations`).

    Attributes:
        path: the episode file.
        entry_id: the ``id`` of its history entry (what :func:`undo_annotation` expects).
        annotations: the annotations after the edit.
        changes: key -> stored value (None = removed), as applied.
    """

    path: Path
    entry_id: str
    annotations: dict[str, Any]
    changes: dict[str, Any]


@dataclass
class AnnotationState:
    """The annotations of one episode as read.

    Attributes:
        annotations: key -> value (JSON types; see the module docstring).
        history: the edit log, oldest first.
        origin: ``"sidecar"``, ``"legacy"`` (the episode file's ``annotations/`` group) or
            ``"none"``.
        problem: why the sidecar could not be used ('' when it could); readers then fall back
            to the legacy group, and edits are refused until the sidecar is fixed or moved aside.
        migrated: when, and from where, the legacy annotations were copied into the sidecar.
        extra: keys of the sidecar this version does not know (written back unchanged).
    """

    annotations: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    origin: str = "none"
    problem: str = ""
    migrated: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sidecar_path(episode: str | Path) -> Path:
    """The sidecar of an episode file: ``<stem>.annotations.json`` in the same folder."""
    episode = Path(episode)
    name = episode.name
    for suffix in _EPISODE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return episode.with_name(name + SIDECAR_SUFFIX)


def episode_name_of_sidecar(sidecar: str | Path) -> str:
    """The episode file name (``<stem>.h5``) a sidecar belongs to."""
    return Path(sidecar).name.removesuffix(SIDECAR_SUFFIX) + ".h5"


# ----- reading -------------------------------------------------------------------------------
def read_annotations(group: h5py.Group) -> dict[str, Any]:
    """Decode a legacy ``annotations`` group's attributes (without the edit log)."""
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


def _legacy_history(group: h5py.Group) -> list[dict[str, Any]]:
    """The legacy edit log with JSON-text values decoded (the sidecar stores plain values)."""
    raw = group.attrs.get("history", "[]")
    entries = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    for entry in entries:
        for key, change in entry.get("changes", {}).items():
            for side in ("old", "new"):
                value = change.get(side)
                if key in _JSON_KEYS and isinstance(value, str):
                    change[side] = json.loads(value)
    return entries


def read_legacy(h5file: h5py.File) -> AnnotationState:
    """The annotations stored inside an episode file by older versions (empty when none)."""
    group = h5file.get(GROUP)
    if not isinstance(group, h5py.Group):
        return AnnotationState()
    return AnnotationState(read_annotations(group), _legacy_history(group), "legacy")


def read_sidecar(path: Path) -> AnnotationState | None:
    """The sidecar at ``path`` (None when there is none).

    Raises:
        AnnotationError: the sidecar exists but is not a readable annotations file.
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnnotationError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AnnotationError(f"{path.name}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise AnnotationError(f"{path.name}: not a VLA Studio annotations file (format "
                              f"{data.get('format') if isinstance(data, dict) else None!r})")
    if data.get("version") != SIDECAR_VERSION:
        raise AnnotationError(f"{path.name}: annotations version {data.get('version')!r} is not "
                              f"supported (this VLA Studio reads version {SIDECAR_VERSION})")
    annotations, history = data.get("annotations"), data.get("history")
    if not isinstance(annotations, dict) or not isinstance(history, list):
        raise AnnotationError(f"{path.name}: 'annotations' must be a table and 'history' a list")
    migrated = data.get("migrated")
    return AnnotationState({k: v for k, v in annotations.items() if k in KEYS}, history,
                           "sidecar", migrated=migrated if isinstance(migrated, dict) else None,
                           extra={k: v for k, v in annotations.items() if k not in KEYS})


def load_annotations(episode: str | Path, h5file: h5py.File | None = None) -> AnnotationState:
    """The annotations every reader merges: the sidecar, else the legacy in-file group.

    A damaged sidecar is logged and reported in ``problem``; the legacy group (or nothing) is
    used then. Never raises for a damaged sidecar; the episode file is opened (read-only) only
    when there is no usable sidecar and ``h5file`` is not given.

    Raises:
        OSError: the episode file cannot be opened (only when it has to be read).
    """
    episode = Path(episode)
    problem = ""
    try:
        state = read_sidecar(sidecar_path(episode))
        if state is not None:
            return state
    except AnnotationError as exc:
        problem = str(exc)
        log.warning("annotations of %s ignored: %s", episode.name, problem)
    if h5file is not None:
        state = read_legacy(h5file)
    else:
        with h5py.File(episode, "r") as f:
            state = read_legacy(f)
    state.problem = problem
    return state


def annotation_history(path: str | Path) -> list[dict[str, Any]]:
    """The edit log, oldest first (each entry: ``t``, ``source`` and ``changes`` key ->
    old/new)."""
    return load_annotations(path).history


# ----- validation ----------------------------------------------------------------------------
def validate(key: str, value: Any, num_steps: int | None) -> Any:
    """Check one annotation value and return it as stored (None deletes the key).

    Args:
        key: one of :data:`KEYS`.
        value: the new value.
        num_steps: the episode's step count (needed for ``trim`` and ``segments`` only).
    """
    if key not in KEYS:
        raise AnnotationError(f"unknown annotation {key!r}; allowed: {', '.join(KEYS)}")
    if value is None and key != "success":
        return None
    if key == "instructions":
        if not isinstance(value, (str, list, tuple)):
            raise AnnotationError("instructions must be a non-empty list of non-empty strings")
        items = [value] if isinstance(value, str) else list(value)
        items = [str(s).strip() for s in items]
        if not items or not all(items):
            raise AnnotationError("instructions must be a non-empty list of non-empty strings")
        return items
    if key == "success":
        return -1 if value is None else int(bool(value))
    if key == "quality":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 5:
            raise AnnotationError(f"quality must be a whole number from 1 to 5, got {value!r}")
        return int(value)
    if key in ("notes", "success_source"):
        return str(value)
    if key == "tags":
        return _tags(value)
    assert num_steps is not None, "trim and segments need the episode's step count"
    if key == "trim":
        try:
            start, end = (int(v) for v in value)
        except (TypeError, ValueError):
            raise AnnotationError(f"trim must be two whole numbers [start, end), got {value!r}") \
                from None
        if not 0 <= start < end <= num_steps:
            raise AnnotationError(f"trim [{start}, {end}) must satisfy 0 <= start < end <= "
                                  f"{num_steps} (the episode's step count)")
        return [start, end]
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
        segments.append({"start": start, "end": end, "label": label.strip()})
    segments.sort(key=lambda seg: (seg["start"], seg["end"]))
    for a, b in zip(segments, segments[1:]):
        if b["start"] < a["end"]:
            raise AnnotationError(f"segments [{a['start']}, {a['end']}) and [{b['start']}, "
                                  f"{b['end']}) overlap; subtask segments must not overlap")
    return segments


def _tags(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise AnnotationError(f"tags must be a list of strings, got {value!r}")
    tags: list[str] = []
    for item in items:
        tag = " ".join(str(item).split())  # one space between words, none around
        if not tag:
            raise AnnotationError("a tag cannot be empty")
        if len(tag) > 64:
            raise AnnotationError(f"tag {tag[:20]!r}... is longer than 64 characters")
        if tag not in tags:
            tags.append(tag)
    return tags


# ----- editing -------------------------------------------------------------------------------
def write_annotations(path: str | Path, changes: Mapping[str, Any], *,
                      source: str = "researcher") -> dict[str, Any]:
    """Apply ``changes`` as one undoable edit; returns the annotations after it (see
    :func:`edit_annotations`, which also says which history entry the edit made)."""
    return edit_annotations(path, changes, source=source).annotations


def edit_annotations(path: str | Path, changes: Mapping[str, Any], *,
                     source: str = "researcher") -> AnnotationEdit:
    """Apply ``changes`` (key -> value, None removes) as one undoable edit, in the sidecar.

    Args:
        path: the episode file (never written).
        changes: the new values.
        source: who made the edit (``researcher``, ``operator``, ``robot``); a change of
            ``success`` also records it as ``success_source``.

    Returns:
        The edit: its history entry's id and the annotations after it.

    Raises:
        AnnotationError: an unknown key, an invalid value, a damaged sidecar or an unreadable
            episode file (nothing is written then).
        OSError: the sidecar cannot be written (read-only folder, disk full...).
    """
    path = Path(path)
    changes = dict(changes)
    if "success" in changes and "success_source" not in changes:
        changes["success_source"] = source
    with folder_lock(path.parent):
        state = _state_for_edit(path)
        num_steps = _num_steps(path) if {"trim", "segments"} & set(changes) else None
        stored = {k: validate(k, v, num_steps) for k, v in changes.items()}
        entry: dict[str, Any] = {"id": secrets.token_hex(6), "t": time.time(),
                                 "source": source, "changes": {}}
        for key, value in stored.items():
            old = state.annotations.get(key, _ABSENT)
            if value is None:
                state.annotations.pop(key, None)
                new: Any = _ABSENT
            else:
                state.annotations[key] = new = value
            entry["changes"][key] = {"old": old, "new": new}
        state.history.append(entry)
        _write_sidecar(path, state)
        return AnnotationEdit(path, entry["id"], dict(state.annotations), dict(stored))


def undo_annotation(path: str | Path, expect: str | None = None) -> bool:
    """Revert the most recent annotation edit. Returns False when there is nothing to undo.

    Args:
        path: the episode file.
        expect: the ``id`` of the edit the caller means to undo (an editor's own last edit);
            when the latest edit is another one, nothing is changed and
            :class:`AnnotationConflict` is raised. None undoes whatever edit is latest.

    Raises:
        AnnotationConflict: ``expect`` is not the latest edit (edited elsewhere since).
        AnnotationError: a damaged sidecar or an unreadable episode file.
        OSError: the sidecar cannot be written.
    """
    path = Path(path)
    with folder_lock(path.parent):
        state = _state_for_edit(path)
        latest = state.history[-1].get("id") if state.history else None
        if expect is not None and latest != expect:
            raise AnnotationConflict(f"{path.name}: its annotations were edited elsewhere since "
                                     "(another window or `vla-studio dataset`); that edit "
                                     "stays, reload the episode to see it")
        if not state.history:
            return False
        entry = state.history.pop()
        for key, change in entry.get("changes", {}).items():
            old = change.get("old", _ABSENT)
            if old == _ABSENT:
                state.annotations.pop(key, None)
            else:
                state.annotations[key] = old
        _write_sidecar(path, state)
        return True


def _state_for_edit(path: Path) -> AnnotationState:
    """The current annotations to edit: the sidecar, else the migrated legacy group."""
    if not path.exists():
        raise AnnotationError(f"{path.name}: no such episode file (moved or deleted)")
    state = read_sidecar(sidecar_path(path))  # a damaged sidecar refuses the edit (raises)
    if state is not None:
        return state
    try:
        with h5py.File(path, "r") as f:
            state = read_legacy(f)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise AnnotationError(f"{path.name}: the episode file cannot be read, so its earlier "
                              f"labels cannot be carried over ({_short(exc)})") from None
    if state.origin == "legacy":
        state.migrated = {"from": f"{GROUP}/ group of the episode file", "t": time.time(),
                          "entries": len(state.history)}
    return state


def _num_steps(path: Path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f["steps/timestamp"].shape[0])
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise AnnotationError(f"{path.name}: cannot read its step count ({_short(exc)})") from None


def _write_sidecar(path: Path, state: AnnotationState) -> None:
    data: dict[str, Any] = {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION,
                            "episode": path.name,
                            "annotations": {**state.extra, **state.annotations},
                            "history": state.history}
    if state.migrated:
        data["migrated"] = state.migrated
    write_atomically(sidecar_path(path), (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def write_atomically(target: Path, payload: bytes) -> None:
    """Replace ``target`` with ``payload`` so that a crash leaves the old or the new file:
    write a temporary file in the same folder, fsync it, rename it over ``target``, fsync the
    folder."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)


def fsync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a power cut (errors are logged)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        log.warning("cannot open %s to fsync it: %s", folder, exc)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.warning("fsync of %s failed: %s", folder, exc)
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` (serialises sidecar edits and the moves of
    episodes with their sidecars between processes; held for milliseconds)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
