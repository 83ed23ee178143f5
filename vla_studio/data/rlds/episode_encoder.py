"""One episode file -> one serialized RLDS episode (a framed ``tf.train.Example``).

RLDS conventions applied here (the ones Octo and OpenVLA expect): ``is_first`` on the first
exported step, ``is_last`` and ``is_terminal`` on the last, ``discount`` 1, ``reward`` 1 on the
last step of a successful episode and 0 elsewhere, the language instruction repeated on every
step. Success, instructions and trim come from the episode's annotations when it has them (the
reader applies that rule), so an edited label reaches the export without touching recorded data.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass

import numpy as np

from vla_studio.data.rlds.episode_source import EpisodeSkipped, EpisodeSource, text_attr
from vla_studio.data.rlds.example import ExampleBuilder
from vla_studio.data.rlds.images import FrameEncoder, collect_frames, encode_depth
from vla_studio.data.rlds.plan import ExportPlan, PlannedEpisode
from vla_studio.data.rlds.tfrecord import frame_record

_METADATA_TEXT = {  # episode_metadata key -> root attribute
    "task": "task", "operator": "operator", "scene_id": "scene_id",
    "station_name": "station_name", "robot_type": "robot_type", "notes": "notes",
    "created": "created", "status": "status", "policy_id": "policy_id",
}


@dataclass(frozen=True)
class EncodedEpisode:
    """A serialized episode, ready to append to a shard.

    Attributes:
        planned: the episode and its split.
        data: the ``tf.train.Example`` bytes.
        framing: TFRecord header and footer for ``data``.
        steps: steps exported.
        filled_frames: per camera, steps that repeated an earlier frame (no new image).
        reencoded_frames: frames decoded and encoded again (resize or format change).
    """

    planned: PlannedEpisode
    data: bytes
    framing: tuple[bytes, bytes]
    steps: int
    filled_frames: dict[str, int]
    reencoded_frames: int


def encode_episode(plan: ExportPlan, planned: PlannedEpisode,
                   reader: EpisodeSource) -> EncodedEpisode:
    """Serialize ``planned`` (read through ``reader``) following ``plan``'s schema.

    Raises:
        EpisodeSkipped: the episode's data cannot be exported (damaged arrays, a camera without
            any image, NaN actions); the message says which.
    """
    summary = planned.summary
    start, end = summary.trim
    n = end - start
    ex = ExampleBuilder()
    filled: dict[str, int] = {}
    reencoded = 0
    for cam in plan.cameras:
        if cam.camera not in reader.cameras:
            raise EpisodeSkipped(f"camera '{cam.camera}' has no colour images in this episode")
        frames, filled[cam.camera] = collect_frames(
            itertools.islice(reader.iter_image_bytes(cam.camera), start, end), start, end,
            cam.camera)
        encoder = FrameEncoder(cam.width, cam.height, cam.encoding, plan.options.jpeg_quality)
        frames, converted = encoder.encode_all(frames)
        reencoded += converted
        ex.add_bytes(f"steps/{cam.feature}", frames)
    for d in plan.depths:
        depth = reader.depth(d.camera)
        if depth is None:
            raise EpisodeSkipped(f"camera '{d.camera}' has no depth stream")
        depth = np.asarray(depth[start:end])
        if depth.ndim != 3 or depth.shape[0] != n:
            raise EpisodeSkipped(f"depth of camera '{d.camera}' has shape {depth.shape} for "
                                 f"{n} steps; the file is damaged")
        ex.add_bytes(f"steps/{d.feature}", encode_depth(depth, d.width, d.height))

    if plan.state.keys:
        state = reader.state()
        parts = []
        for key, shape in plan.state.keys:
            values = np.asarray(state[key][start:end], np.float32)
            if values.shape != (n, *shape):
                raise EpisodeSkipped(f"state '{key}' has shape {values.shape[1:]}, the export "
                                     f"declares {shape}")
            _require_finite(values, f"state '{key}'", start)
            parts.append(values.reshape(n, math.prod(shape)))
            if key in plan.state.individual:
                ex.add_floats(f"steps/observation/{key}", values)
        ex.add_floats("steps/observation/state", np.concatenate(parts, axis=1))

    action = np.asarray(reader.step("action")[start:end], np.float32)
    if action.shape != (n, plan.action_dim):
        raise EpisodeSkipped(f"steps/action has shape {action.shape}, expected "
                             f"({n}, {plan.action_dim}); the file is damaged")
    _require_finite(action, "action", start)
    ex.add_floats("steps/action", action)
    reward = np.zeros(n, np.float32)
    if summary.success is True:
        reward[-1] = 1.0
    ex.add_floats("steps/reward", reward)
    ex.add_floats("steps/discount", np.ones(n, np.float32))
    last = np.zeros(n, bool)
    last[-1] = True
    ex.add_ints("steps/is_first", last[::-1])
    ex.add_ints("steps/is_last", last)
    ex.add_ints("steps/is_terminal", last)
    texts = summary.instructions or ("",)
    for k, key in enumerate(plan.instruction_features):
        ex.add_text(f"steps/{key}", [texts[k % len(texts)]] * n)
    ex.add_ints("steps/action_source", np.asarray(reader.step("action_source")[start:end]))
    stamps = np.asarray(reader.step("timestamp")[start:end], np.float64)
    ex.add_floats("steps/timestamp", stamps - stamps[0])

    attrs = summary.attrs
    for key, attr in _METADATA_TEXT.items():
        ex.add_text(f"episode_metadata/{key}", [text_attr(attrs, attr)])
    ex.add_text("episode_metadata/episode_id", [summary.episode_id])
    ex.add_text("episode_metadata/file_path", [str(summary.path.resolve())])
    ex.add_text("episode_metadata/language_instructions", [json.dumps(list(summary.instructions))])
    ex.add_ints("episode_metadata/success",
                np.array([{True: 1, False: 0, None: -1}[summary.success]]))
    ex.add_ints("episode_metadata/num_steps", np.array([n]))
    ex.add_ints("episode_metadata/trim_start", np.array([start]))
    rate = attrs.get("control_rate_hz", 0.0)
    ex.add_floats("episode_metadata/control_rate_hz", np.array([float(rate or 0.0)]))

    data = ex.serialize()
    return EncodedEpisode(planned=planned, data=data, framing=frame_record(data), steps=n,
                          filled_frames=filled, reencoded_frames=reencoded)


def _require_finite(values: np.ndarray, what: str, start: int) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        step = int(np.argwhere(bad)[0][0]) + start
        raise EpisodeSkipped(f"{what} is NaN or infinite at step {step}; trim the episode before "
                             "that step or discard it")
