"""Export options and the plan: which episodes go where, and the one schema they all share.

RLDS needs a single static schema, but a dataset folder can hold episodes recorded with different
stations or camera settings. The plan takes the layout most episodes share (cameras and their
sizes, state keys and shapes, action size); episodes that differ are skipped with a message that
names the difference. The val split is chosen by a hash of each episode's id, so an episode keeps
its split when the dataset grows and is exported again.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vla_studio.data.dagger import DEFAULT_PRE_INTERVENTION_S
from vla_studio.data.rlds.episode_source import EpisodeSummary, json_attr, text_attr
from vla_studio.data.rlds.errors import ExportError
from vla_studio.data.rlds.features import EpisodeSchema
from vla_studio.data.rlds.meanings import (ActionMeaning, StateMeaning, action_meaning,
                                           state_meanings)
from vla_studio.data.rlds.naming import (CameraMap, as_camera_map, check_camera_map,
                                         check_state_keys, check_unique_feature_names,
                                         with_named_streams)
from vla_studio.data.rlds.schema import build_schema
from vla_studio.data.rlds.selection import (OUTCOMES, check_filters, nothing_left_message,
                                            select)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# Octo and OpenVLA validate on train[95%:] when there is no val split; tfds rounds the boundary
# to the nearest episode, so that slice is empty below this many episodes.
OCTO_MIN_EPISODES_FOR_VAL = 10


def snake_case(name: str) -> str:
    """A tfds-compatible dataset name derived from ``name`` (for suggestions in errors)."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    s = re.sub(r"[^a-zA-Z0-9]+", "_", s).strip("_").lower()
    if not s or not s[0].isalpha():
        s = "dataset_" + s
    return s


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how.

    Attributes:
        name: dataset name, lowercase snake_case starting with a letter (``tfds.builder(name)``).
        version: ``X.Y.Z``.
        image_size: ``(width, height)`` to resize every colour camera to; None keeps the recorded
            size and passes the encoded frames through unchanged.
        success_only: export only episodes marked successful.
        val_fraction: share of episodes written to a ``val`` split (0 writes no val split).
        include_depth: also export depth streams (16-bit PNG).
        jpeg_quality: quality for frames that must be re-encoded (resize, format change).
        shard_mb: target shard size in MB (shards are closed once they pass it).
        workers: episodes encoded in parallel; 0 chooses: 1 when frames pass through unchanged,
            else one per CPU core (at most 4).
        overwrite: replace an existing export of the same name and version.
        camera_map: recorded camera -> exported name (``{"front": "image", "wrist":
            "wrist_image"}`` or pairs); only the mapped cameras are exported, in this order.
            None exports every camera under its recorded name.
        state_keys: the state keys concatenated into ``observation/state``, in this order
            (``("ee_pos", "ee_quat", "gripper")``); only these are exported. None exports every
            key, sorted by name.
        outcomes: export only episodes whose (annotated) outcome is one of these
            (``"success"``, ``"failure"``, ``"unknown"``); None: every outcome.
            ``success_only`` is ``outcomes=("success",)``.
        min_quality: leave out episodes rated below this (1..5); unrated episodes stay.
        subtasks: write the subtask segments: per step ``language_subtask`` (the label of the
            segment holding the step, '' outside segments), ``subtask_index`` (-1 outside) and
            ``is_subtask_first``, and the segments as ``episode_metadata/subtask_segments``.
        dagger: write the DAgger labels per step (``intervention``, ``pre_intervention``,
            ``policy_action``, ``confidence``) and ``episode_metadata/dagger_round`` and
            ``interventions``; None: when any exported episode is a policy run.
        pre_intervention_s: the window before each takeover labelled ``pre_intervention``.
    """

    name: str
    version: str = "1.0.0"
    image_size: tuple[int, int] | None = None
    success_only: bool = False
    val_fraction: float = 0.0
    include_depth: bool = False
    jpeg_quality: int = 95
    shard_mb: float = 128.0
    workers: int = 0
    overwrite: bool = False
    camera_map: CameraMap | None = None
    state_keys: tuple[str, ...] | None = None
    outcomes: tuple[str, ...] | None = None
    min_quality: int | None = None
    subtasks: bool = False
    dagger: bool | None = None
    pre_intervention_s: float = DEFAULT_PRE_INTERVENTION_S

    def __post_init__(self) -> None:
        # Accept a dict or lists from callers (the export dialog); keep hashable tuples.
        object.__setattr__(self, "camera_map", as_camera_map(self.camera_map))
        if self.state_keys is not None:
            object.__setattr__(self, "state_keys", tuple(str(k) for k in self.state_keys))
        if self.outcomes is not None:
            object.__setattr__(self, "outcomes", tuple(str(o) for o in self.outcomes))

    @property
    def kept_outcomes(self) -> tuple[str, ...]:
        """The outcomes exported (``success_only`` and ``outcomes`` combined)."""
        if self.success_only:
            return ("success",)
        return self.outcomes or OUTCOMES

    def validate(self) -> None:
        """Raise :class:`ExportError` naming the first bad option and an accepted value."""
        if not _NAME.match(self.name):
            raise ExportError(f"dataset name {self.name!r} is not allowed: tfds needs lowercase "
                              f"snake_case starting with a letter, e.g. {snake_case(self.name)!r}")
        if not _VERSION.match(self.version):
            raise ExportError(f"version {self.version!r} must look like 1.0.0")
        if self.image_size is not None:
            w, h = self.image_size
            if not (8 <= w <= 4096 and 8 <= h <= 4096):
                raise ExportError(f"image size {w}x{h} is out of range: use 8 to 4096 pixels, "
                                  "e.g. 224 or 256x256")
        if not (0.0 <= self.val_fraction < 1.0) or math.isnan(self.val_fraction):
            raise ExportError(f"val fraction {self.val_fraction} must be at least 0 and below 1, "
                              "e.g. 0.05")
        if not 1 <= self.jpeg_quality <= 100:
            raise ExportError(f"JPEG quality {self.jpeg_quality} must be from 1 to 100")
        if not self.shard_mb > 0:
            raise ExportError(f"shard size {self.shard_mb} MB must be above 0 "
                              "(100-200 suits parallel readers)")
        if self.workers < 0:
            raise ExportError(f"workers {self.workers} must be 0 (automatic) or more")
        if self.camera_map is not None:
            check_camera_map(self.camera_map)
        if self.state_keys is not None:
            check_state_keys(self.state_keys)
        check_filters(self.outcomes, self.min_quality)
        if not (0.0 <= self.pre_intervention_s <= 60.0):
            raise ExportError(f"pre-intervention window {self.pre_intervention_s} s must be "
                              "from 0 to 60 seconds, e.g. 1")


def parse_image_size(text: str) -> tuple[int, int]:
    """``"224"`` -> (224, 224); ``"320x240"`` -> (320, 240) as (width, height)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not m:
        raise ExportError(f"image size {text!r} is not understood: give one number for a square "
                          "(224) or WIDTHxHEIGHT (320x240)")
    w = int(m.group(1))
    return (w, int(m.group(2)) if m.group(2) else w)


@dataclass(frozen=True)
class CameraOutput:
    """One exported colour camera: ``steps/observation/<name>``.

    Attributes:
        camera: the recorded camera.
        name: its exported name ('' = the recorded name).
    """

    camera: str
    width: int
    height: int
    encoding: str
    source_width: int
    source_height: int
    name: str = ""

    @property
    def exported_name(self) -> str:
        return self.name or self.camera

    @property
    def feature(self) -> str:
        return f"observation/{self.exported_name}"


@dataclass(frozen=True)
class DepthOutput:
    """One exported depth stream: ``steps/observation/<name>_depth``, uint16 PNG (H, W, 1)."""

    camera: str
    width: int
    height: int
    source_width: int
    source_height: int
    name: str = ""

    @property
    def exported_name(self) -> str:
        return f"{self.name or self.camera}_depth"

    @property
    def feature(self) -> str:
        return f"observation/{self.exported_name}"


@dataclass(frozen=True)
class StateLayout:
    """How state keys are concatenated into ``observation/state``: in the order asked for
    (``--state-keys``), else sorted by key name."""

    keys: tuple[tuple[str, tuple[int, ...]], ...]
    individual: tuple[str, ...] = ()  # keys also exported as observation/<key>
    meanings: tuple[StateMeaning, ...] = ()  # one per key: element names, unit, meaning
    sorted_by_name: bool = True  # False: the order was asked for (--state-keys)

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for _, shape in self.keys)

    def slices(self) -> dict[str, tuple[int, int]]:
        out, start = {}, 0
        for key, shape in self.keys:
            n = math.prod(shape)
            out[key] = (start, start + n)
            start += n
        return out


@dataclass(frozen=True)
class PlannedEpisode:
    summary: EpisodeSummary
    split: str


@dataclass(frozen=True)
class ExportPlan:
    """Everything decided before writing: the schema, the episodes and their splits."""

    options: ExportOptions
    cameras: tuple[CameraOutput, ...]
    depths: tuple[DepthOutput, ...]
    state: StateLayout
    action_dim: int
    action_names: tuple[str, ...]
    instruction_slots: int
    action: ActionMeaning
    episodes: tuple[PlannedEpisode, ...]
    skipped: tuple[tuple[Path, str], ...] = ()
    filtered_unsuccessful: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    left_out: tuple[tuple[str, int], ...] = ()  # (reason, episodes) the filters left out
    dagger: bool = False  # the DAgger step labels are written (see ExportOptions.dagger)

    @property
    def splits(self) -> tuple[str, ...]:
        names = {e.split for e in self.episodes}
        return tuple(s for s in ("train", "val") if s in names)

    @property
    def instruction_features(self) -> tuple[str, ...]:
        return ("language_instruction",) + tuple(
            f"language_instruction_{k}" for k in range(2, self.instruction_slots + 1))

    def schema(self) -> EpisodeSchema:
        """The tfds features every exported episode has, each with its meaning."""
        return build_schema(self)


def _signature(s: EpisodeSummary, options: ExportOptions) -> tuple:
    """What must match for episodes to share one schema: the exported cameras (and their sizes
    unless resizing), the exported state keys and shapes (in export order), the action size."""
    resize = options.image_size is not None
    wanted = dict(options.camera_map) if options.camera_map else None
    cams = tuple(sorted((name, None if resize else (c.width, c.height))
                        for name, c in s.cameras.items()
                        if c.image_format and (wanted is None or name in wanted)))
    if options.state_keys is None:
        state = tuple(sorted(s.state_shapes.items()))
    else:
        state = tuple((k, s.state_shapes[k]) for k in options.state_keys if k in s.state_shapes)
    return cams, state, s.action_dim


def _without_sizes(sig: tuple) -> tuple:
    cams, state, action_dim = sig
    return tuple(name for name, _ in cams), state, action_dim


def _describe(sig: tuple) -> str:
    cams, state, action_dim = sig
    cam_text = ", ".join(n if size is None else f"{n} {size[0]}x{size[1]}" for n, size in cams)
    state_text = ", ".join(f"{k}{list(shape)}" for k, shape in state)
    return f"cameras [{cam_text or 'none'}], state [{state_text or 'none'}], action size {action_dim}"


def make_plan(summaries: list[EpisodeSummary], skipped: list[tuple[Path, str]],
              options: ExportOptions,
              depth_shape: Callable[[EpisodeSummary, str], tuple[int, int]] | None = None
              ) -> ExportPlan:
    """Decide the schema and splits for ``summaries`` (episodes that could be read).

    Args:
        summaries: the readable episodes, in export order.
        skipped: episodes already skipped, with reasons (kept in the plan).
        options: export options.
        depth_shape: ``(H, W)`` of an episode's depth stream; asked once per depth camera
            (only for depth export).

    Raises:
        ExportError: nothing is left to export; the message lists why.
    """
    skipped = list(skipped)
    warnings: list[str] = []
    candidates, left_out, filtered = select(summaries, options.kept_outcomes,
                                            options.min_quality)
    if not candidates:
        why = (nothing_left_message(left_out, options.kept_outcomes, options.min_quality,
                                    options.success_only)
               if left_out else "no readable episodes")
        details = "; ".join(f"{p.name}: {r}" for p, r in skipped[:5])
        raise ExportError(f"nothing to export: {why}" + (f"; skipped: {details}" if details else ""))

    resize = options.image_size is not None
    candidates = with_named_streams(candidates, options.camera_map, options.state_keys, skipped)
    signatures = [_signature(s, options) for s in candidates]
    counts = collections.Counter(signatures)
    best = max(counts.values())
    majority = next(sig for sig in signatures if counts[sig] == best)
    included = []
    for s, sig in zip(candidates, signatures):
        if sig == majority:
            included.append(s)
            continue
        hint = ""
        if not resize and _without_sizes(sig) == _without_sizes(majority):
            hint = "; pass --image-size to resize every camera to one size"
        skipped.append((s.path, f"its layout ({_describe(sig)}) differs from the {best} "
                                f"episode(s) being exported ({_describe(majority)}){hint}"))

    cameras = _camera_outputs(included, majority, options)
    depths = _depth_outputs(included, options, warnings, depth_shape)
    check_unique_feature_names(
        [(c.exported_name, f"camera '{c.camera}'") for c in cameras]
        + [(d.exported_name, f"the depth of camera '{d.camera}'") for d in depths])
    if options.camera_map:
        unmapped = sorted({n for s in included for n, c in s.cameras.items()
                           if c.image_format} - {c.camera for c in cameras})
        if unmapped:
            warnings.append(f"camera(s) {', '.join(unmapped)} are not exported: they are not in "
                            "the camera map")
    state = _state_layout(majority, cameras, depths, warnings, options)
    state = dataclasses.replace(state, meanings=state_meanings(state.keys, included[0].attrs))
    action_names = tuple(str(n) for n in json_attr(included[0].attrs.get("action_names"), []))
    if len(action_names) != majority[2]:
        action_names = tuple(f"a{i}" for i in range(majority[2]))
    action = action_meaning(text_attr(included[0].attrs, "action_space_kind"), action_names)
    slots = max(1, max(len(s.instructions) for s in included))
    no_text = sum(1 for s in included if not s.instructions)
    if no_text:
        warnings.append(f"{no_text} episode(s) have no language instruction; their "
                        "language_instruction is empty (label them in the episode browser)")
    if not cameras:
        warnings.append("no colour camera is exported (none is shared by the episodes)")
    episodes = _assign_splits(included, options, warnings)
    dagger = options.dagger if options.dagger is not None else \
        any(text_attr(s.attrs, "policy_id") for s in included)
    return ExportPlan(options=options, cameras=cameras, depths=depths, state=state,
                      action_dim=majority[2], action_names=action_names, instruction_slots=slots,
                      action=action,
                      episodes=episodes, skipped=tuple(skipped), filtered_unsuccessful=filtered,
                      warnings=tuple(warnings), left_out=tuple(sorted(left_out.items())),
                      dagger=dagger)


def _camera_outputs(included: list[EpisodeSummary], majority: tuple,
                    options: ExportOptions) -> tuple[CameraOutput, ...]:
    out = []
    exported_as = dict(options.camera_map or ())
    order = list(exported_as) if exported_as else [name for name, _ in majority[0]]
    for name in order:
        layouts = [s.cameras[name] for s in included]
        formats = {c.image_format for c in layouts}
        encoding = formats.pop() if len(formats) == 1 else "jpeg"
        src_w, src_h = collections.Counter((c.width, c.height) for c in layouts).most_common(1)[0][0]
        w, h = options.image_size if options.image_size else (src_w, src_h)
        out.append(CameraOutput(name, w, h, encoding, src_w, src_h, exported_as.get(name, "")))
    return tuple(out)


def _depth_outputs(included: list[EpisodeSummary], options: ExportOptions, warnings: list[str],
                   depth_shape: Callable[[EpisodeSummary, str], tuple[int, int]] | None
                   ) -> tuple[DepthOutput, ...]:
    if not options.include_depth:
        return ()
    names = sorted({n for s in included for n, c in s.cameras.items() if c.has_depth})
    exported_as = dict(options.camera_map or ())
    if exported_as:  # only the mapped cameras' depth, in the map's order
        names = [n for n in exported_as if n in names]
    if not names:
        warnings.append("depth export was asked for, but no episode has a depth stream")
        return ()
    if depth_shape is None:
        raise ValueError("make_plan needs depth_shape to export depth")
    out = []
    for name in names:
        missing = sum(1 for s in included if not (name in s.cameras and s.cameras[name].has_depth))
        if missing:
            warnings.append(f"depth of camera '{name}' is not exported: {missing} episode(s) "
                            "have no depth for it")
            continue
        # The first episode's depth size is the export's (others are resized to it if needed).
        try:
            src_h, src_w = depth_shape(included[0], name)
        except Exception as exc:  # an unreadable stream costs the depth feature, not the export
            warnings.append(f"depth of camera '{name}' is not exported: {exc}")
            continue
        w, h = options.image_size if options.image_size else (src_w, src_h)
        out.append(DepthOutput(name, w, h, src_w, src_h, exported_as.get(name, "")))
    return tuple(out)


def _state_layout(majority: tuple, cameras: tuple[CameraOutput, ...],
                  depths: tuple[DepthOutput, ...], warnings: list[str],
                  options: ExportOptions) -> StateLayout:
    keys = tuple(majority[1])
    taken = {"state"} | {c.exported_name for c in cameras} | {d.exported_name for d in depths}
    clashes = [k for k, _ in keys if k in taken]
    if clashes:
        warnings.append(f"state key(s) {', '.join(clashes)} are only in observation/state: their "
                        "names are taken by cameras")
    if not keys:
        warnings.append("the episodes record no robot state: observation/state is not exported")
    return StateLayout(keys=keys, individual=tuple(k for k, _ in keys if k not in taken),
                       sorted_by_name=options.state_keys is None)


def _assign_splits(included: list[EpisodeSummary], options: ExportOptions,
                   warnings: list[str]) -> tuple[PlannedEpisode, ...]:
    n = len(included)
    n_val = min(round(options.val_fraction * n), n - 1)
    if options.val_fraction > 0 and n_val <= 0:
        warnings.append(f"the val split would be empty ({options.val_fraction:g} of {n} "
                        "episode(s) rounds to 0): no val split is written; record more episodes "
                        "or raise --val-fraction")
    elif options.val_fraction == 0 and n < OCTO_MIN_EPISODES_FOR_VAL:
        warnings.append(f"no val split and only {n} episode(s): Octo/OpenVLA then validate on "
                        "train[95%:], which is empty; pass --val-fraction to write a val split")
    by_hash = sorted(included, key=lambda s: hashlib.sha1(s.episode_id.encode()).hexdigest())
    val_ids = {s.episode_id for s in by_hash[:max(0, n_val)]}
    return tuple(PlannedEpisode(s, "val" if s.episode_id in val_ids else "train") for s in included)
