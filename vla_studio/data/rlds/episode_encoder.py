"""One episode file -> one serialized RLDS episode (a framed ``tf.train.Example``).

RLDS conventions applied here (the ones Octo and OpenVLA expect): ``is_first`` on the first
exported step, ``is_last`` on the last, ``discount`` 1, ``reward`` 1 on the last step of a
successful episode and 0 elsewhere, the language instruction repeated on every step.
``is_terminal`` is True on the last step only when the episode really ended, i.e. it is marked
successful: an episode stopped without success (time limit, operator stop, unknown outcome) was
truncated, and offline RL must bootstrap past its last step rather than treat it as an end. Success, instructions and trim come from the episode's annotations when it has them (the
reader applies that rule), so an edited label reaches the export without touching recorded data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_studio.data.dagger import dagger_labels, window_steps
from vla_studio.data.rlds.episode_source import (EpisodeRows, EpisodeSkipped, EpisodeSource,
                                                 text_attr)
from vla_studio.data.rlds.example import ExampleBuilder
from vla_studio.data.rlds.features import EpisodeSchema, ImageFeature, TextFeature
from vla_studio.data.rlds.images import FrameEncoder, collect_frames, encode_depth
from vla_studio.data.rlds.plan import ExportPlan, PlannedEpisode
from vla_studio.data.rlds.tfrecord import frame_record
from vla_studio.data.segments import steps_labels, within

_METADATA_TEXT = {  # episode_metadata key -> root attribute
    "task": "task", "operator": "operator", "scene_id": "scene_id",
    "station_name": "station_name", "robot_type": "robot_type", "notes": "notes",
    "created": "created", "status": "status", "policy_id": "policy_id",
}


@dataclass(frozen=True)
class EpisodeFeatures:
    """One episode as flat feature values, before serialization.

    Attributes:
        planned: the episode and its split.
        values: tfds flattened key (``steps/action``, ``episode_metadata/success``) -> value:
            a numpy array (steps first), a list of encoded images or a list of strings.
        steps: steps exported.
        filled_frames: per camera, steps that repeated an earlier frame (no new image).
        reencoded_frames: frames decoded and encoded again (resize or format change).
    """

    planned: PlannedEpisode
    values: dict[str, Any]
    steps: int
    filled_frames: dict[str, int]
    reencoded_frames: int


@dataclass(frozen=True)
class EncodedEpisode:
    """A serialized episode, ready to append to a shard.

    Attributes:
        planned, steps, filled_frames, reencoded_frames: as in :class:`EpisodeFeatures`.
        parts: the ``tf.train.Example`` bytes, in pieces (frames are views of the data read
            from the episode file, written without being copied into one message first).
        framing: TFRecord header and footer for ``parts``.
    """

    planned: PlannedEpisode
    parts: list[Any]
    framing: tuple[bytes, bytes]
    steps: int
    filled_frames: dict[str, int]
    reencoded_frames: int

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts)


def encode_episode(plan: ExportPlan, planned: PlannedEpisode,
                   reader: EpisodeSource) -> EncodedEpisode:
    """Read ``planned`` through ``reader`` and serialize it following ``plan``'s schema.

    Raises:
        EpisodeSkipped: the episode's data cannot be exported (damaged arrays, a camera without
            any image, NaN actions); the message says which.
    """
    features = read_episode(plan, planned, reader)
    parts = serialize_episode(plan.schema(), features.values).parts()
    return EncodedEpisode(planned=planned, parts=parts, framing=frame_record(parts),
                          steps=features.steps, filled_frames=features.filled_frames,
                          reencoded_frames=features.reencoded_frames)


def serialize_episode(schema: EpisodeSchema, values: dict[str, Any]) -> ExampleBuilder:
    """The ``tf.train.Example`` of one episode; every schema feature must have a value."""
    expected = {f"steps/{k}": f for k, f in schema.steps.items()}
    expected.update({f"episode_metadata/{k}": f for k, f in schema.episode_metadata.items()})
    if set(values) != set(expected):
        raise ValueError(f"episode values do not match the schema: missing "
                         f"{sorted(set(expected) - set(values))}, extra "
                         f"{sorted(set(values) - set(expected))}")
    ex = ExampleBuilder()
    for key, feature in expected.items():
        value = values[key]
        if isinstance(feature, ImageFeature):
            ex.add_bytes(key, value)
        elif isinstance(feature, TextFeature):
            ex.add_text(key, value)
        elif feature.dtype == "float32":
            ex.add_floats(key, value)
        else:
            ex.add_ints(key, value)
    return ex


def read_episode(plan: ExportPlan, planned: PlannedEpisode,
                 reader: EpisodeSource) -> EpisodeFeatures:
    """Every feature value of ``planned`` (frames gap-filled and fitted, conventions applied).

    Raises:
        EpisodeSkipped: as :func:`encode_episode`.
    """
    summary = planned.summary
    start, end = summary.trim
    n = end - start
    rows = EpisodeRows(reader, start, end)
    values: dict[str, Any] = {}
    filled: dict[str, int] = {}
    reencoded = 0
    for cam in plan.cameras:
        frames, filled[cam.camera] = collect_frames(
            rows.frames(cam.camera, plan.options.jpeg_quality, (cam.width, cam.height)), start,
            end, cam.camera)
        encoder = FrameEncoder(cam.width, cam.height, cam.encoding, plan.options.jpeg_quality)
        values[f"steps/{cam.feature}"], converted = encoder.encode_all(frames)
        reencoded += converted
    for d in plan.depths:
        depth = reader.depth(d.camera)
        if depth is None:
            raise EpisodeSkipped(f"camera '{d.camera}' has no depth stream")
        depth = np.asarray(depth[start:end])
        if depth.ndim != 3 or depth.shape[0] != n:
            raise EpisodeSkipped(f"depth of camera '{d.camera}' has shape {depth.shape} for "
                                 f"{n} steps; the file is damaged")
        values[f"steps/{d.feature}"] = encode_depth(depth, d.width, d.height)

    if plan.state.keys:
        parts = []
        for key, shape in plan.state.keys:
            part = rows.array(f"observation/state/{key}", np.float32)
            if part.shape != (n, *shape):
                raise EpisodeSkipped(f"state '{key}' has shape {part.shape[1:]}, the export "
                                     f"declares {shape}")
            _require_finite(part, f"state '{key}'", start)
            parts.append(part.reshape(n, math.prod(shape)))
            if key in plan.state.individual:
                values[f"steps/observation/{key}"] = part
        values["steps/observation/state"] = np.concatenate(parts, axis=1)

    action = rows.array("action", np.float32)
    if action.shape != (n, plan.action_dim):
        raise EpisodeSkipped(f"steps/action has shape {action.shape}, expected "
                             f"({n}, {plan.action_dim}); the file is damaged")
    _require_finite(action, "action", start)
    values["steps/action"] = action
    reward = np.zeros(n, np.float32)
    if summary.success is True:
        reward[-1] = 1.0
    values["steps/reward"] = reward
    values["steps/discount"] = np.ones(n, np.float32)
    last = np.zeros(n, bool)
    last[-1] = True
    values["steps/is_first"] = last[::-1].copy()
    values["steps/is_last"] = last
    # Truncated unless it succeeded: the merged label (annotations first) decides, as for reward.
    values["steps/is_terminal"] = last & (summary.success is True)
    texts = summary.instructions or ("",)
    for k, key in enumerate(plan.instruction_features):
        values[f"steps/{key}"] = [texts[k % len(texts)]] * n
    if plan.options.subtasks:
        labels, index = steps_labels(summary.segments, start, end)
        values["steps/language_subtask"] = labels
        subtask = np.asarray(index, np.int32)
        values["steps/subtask_index"] = subtask
        values["steps/is_subtask_first"] = (subtask >= 0) & np.concatenate(
            ([True], subtask[1:] != subtask[:-1]))
        values["episode_metadata/subtask_segments"] = [
            json.dumps(within(summary.segments, start, end))]
    values["steps/action_source"] = rows.array("action_source", np.int32)
    if plan.dagger:
        _dagger_values(plan, summary, rows, values, n)
    stamps = rows.array("timestamp", np.float64)
    values["steps/timestamp"] = (stamps - stamps[0]).astype(np.float32)

    attrs = summary.attrs
    for key, attr in _METADATA_TEXT.items():
        values[f"episode_metadata/{key}"] = [text_attr(attrs, attr)]
    values["episode_metadata/episode_id"] = [summary.episode_id]
    values["episode_metadata/file_path"] = [str(summary.path.resolve())]
    values["episode_metadata/language_instructions"] = [json.dumps(list(summary.instructions))]
    success = {True: 1, False: 0, None: -1}[summary.success]
    values["episode_metadata/success"] = np.array([success], np.int32)
    values["episode_metadata/num_steps"] = np.array([n], np.int32)
    values["episode_metadata/trim_start"] = np.array([start], np.int32)
    rate = float(attrs.get("control_rate_hz", 0.0) or 0.0)
    values["episode_metadata/control_rate_hz"] = np.array([rate], np.float32)
    quality = summary.quality
    values["episode_metadata/quality"] = np.array([-1 if quality is None else quality], np.int32)
    values["episode_metadata/tags"] = [json.dumps(summary.tags)]
    return EpisodeFeatures(planned=planned, values=values, steps=n, filled_frames=filled,
                           reencoded_frames=reencoded)


def _dagger_values(plan: ExportPlan, summary, rows: EpisodeRows, values: dict[str, Any],
                   n: int) -> None:
    """The DAgger step labels and metadata of one episode (plan.dagger)."""
    rate = float(summary.attrs.get("control_rate_hz", 0.0) or 0.0)
    labels = dagger_labels(values["steps/action_source"],
                           window_steps(plan.options.pre_intervention_s, rate))
    values["steps/intervention"] = labels.intervention
    values["steps/pre_intervention"] = labels.pre_intervention
    values["steps/policy_action"] = rows.array("policy_action", np.float32) \
        if rows.has("policy_action") else np.full((n, plan.action_dim), np.nan, np.float32)
    values["steps/confidence"] = rows.array("confidence", np.float32).reshape(n) \
        if rows.has("confidence") else np.full(n, np.nan, np.float32)
    rnd = summary.attrs.get("dagger_round", -1)
    values["episode_metadata/dagger_round"] = np.array([-1 if rnd is None else int(rnd)],
                                                       np.int32)
    values["episode_metadata/interventions"] = np.array([len(labels.takeovers)], np.int32)


def _require_finite(values: np.ndarray, what: str, start: int) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        step = int(np.argwhere(bad)[0][0]) + start
        raise EpisodeSkipped(f"{what} is NaN or infinite at step {step}; trim the episode before "
                             "that step or discard it")
