"""``metadata.json``: what tfds's own files cannot hold (they reject unknown keys).

It documents the export for people and tools: the state layout (which slice of
``observation/state`` is which key, the name and unit of every element), the action's names,
units and frame, the quaternion order and gripper convention, cameras (recorded and exported
sizes, so intrinsics can be rescaled), the conventions used, every exported episode with its
split and position, and every skipped episode with the reason.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from vla_studio import __version__
from vla_studio.data.rlds.episode_source import json_attr, text_attr
from vla_studio.data.rlds.meanings import GRIPPER_CONVENTION, StateMeaning
from vla_studio.data.rlds.plan import ExportPlan
from vla_studio.data.rlds.schema import ACTION_SOURCES

CONVENTIONS = {
    "is_first": "true on the first exported step",
    "is_last": "true on the last exported step",
    "is_terminal": "true on the last exported step of an episode marked successful; false on "
                   "every step of a truncated episode (time limit, stopped without success, "
                   "outcome unknown), whose is_last is still true",
    "reward": "1.0 on the last step of an episode marked successful, else 0.0",
    "discount": "always 1.0",
    "language_instruction": "the episode's first instruction, repeated on every step",
    "language_instruction_N": "the episode's N-th instruction (paraphrase), cycling through its "
                              "own instructions when it has fewer",
    "missing_frames": "a step without a new camera frame repeats the previous frame (the first "
                      "frame for steps before it)",
    "timestamp": "host monotonic seconds since the first exported step (recorded tick times)",
    "trim": "only steps [trim_start, trim_start + num_steps) of the recording are exported",
    "annotations": "instructions, success, trim, quality, tags and subtask segments are the "
                   "episode's annotations (its .annotations.json sidecar) where it has them, "
                   "else what was recorded; each episode's 'edits' lists what they changed",
}
SUBTASK_CONVENTIONS = {
    "language_subtask": "the label of the subtask segment holding the step; '' outside every "
                        "segment",
    "subtask_index": "0-based index of the step's segment among the exported segments; -1 "
                     "outside every segment",
    "is_subtask_first": "true on the first exported step of each segment (a segment boundary)",
}


def metadata_json(plan: ExportPlan, dataset: Path, written: list[dict[str, Any]],
                  skipped: list[tuple[Path, str]], filled: dict[str, int]) -> dict[str, Any]:
    """The content of ``metadata.json``.

    Args:
        plan: the export plan.
        dataset: the source dataset folder.
        written: one entry per exported episode, in shard order.
        skipped: episodes not exported, with reasons.
        filled: per camera, steps that repeated an earlier frame.
    """
    opts = plan.options
    first = plan.episodes[0].summary if plan.episodes else None
    source_cameras = json_attr(first.attrs.get("cameras"), {}) if first else {}
    cameras = {}
    for cam in plan.cameras:
        cameras[cam.camera] = {
            "feature": f"steps/{cam.feature}",
            "exported_as": cam.exported_name,
            "recorded": source_cameras.get(cam.camera, {}),
            "recorded_size": [cam.source_width, cam.source_height],
            "exported_size": [cam.width, cam.height],
            "scale": [cam.width / cam.source_width if cam.source_width else None,
                      cam.height / cam.source_height if cam.source_height else None],
            "encoding": cam.encoding,
            "filled_steps": filled.get(cam.camera, 0),
        }
    depth = {d.camera: {"feature": f"steps/{d.feature}", "recorded_size": [d.source_width,
                                                                           d.source_height],
                        "exported_size": [d.width, d.height],
                        "depth_scale": source_cameras.get(d.camera, {}).get("depth_scale")}
             for d in plan.depths}
    slices = plan.state.slices()
    meanings = {m.key: m for m in plan.state.meanings}
    quaternions = {m.key: m.quaternion_order for m in plan.state.meanings if m.quaternion_order}
    action = plan.action
    return {
        "format": "vla-studio-rlds-export",
        "format_version": 1,
        "name": opts.name,
        "version": opts.version,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "software_version": __version__,
        "source_dataset": str(dataset.resolve()),
        "options": {
            "image_size": list(opts.image_size) if opts.image_size else None,
            "success_only": opts.success_only,
            "val_fraction": opts.val_fraction,
            "include_depth": opts.include_depth,
            "jpeg_quality": opts.jpeg_quality,
            "camera_map": dict(opts.camera_map) if opts.camera_map else None,
            "state_keys": list(opts.state_keys) if opts.state_keys else None,
            "outcomes": list(opts.kept_outcomes),
            "min_quality": opts.min_quality,
            "subtasks": opts.subtasks,
            "dagger": plan.dagger,
            "pre_intervention_s": opts.pre_intervention_s,
        },
        "annotations": _annotations_summary(written, plan),
        "robot_type": text_attr(first.attrs, "robot_type") if first else "",
        "action_space_kind": text_attr(first.attrs, "action_space_kind") if first else "",
        "control_rate_hz": float(first.attrs.get("control_rate_hz", 0.0)) if first else 0.0,
        "action": {"feature": "steps/action", "kind": action.kind,
                   "names": list(plan.action_names), "units": list(action.units),
                   "frame": action.frame, "description": action.description},
        "state": {
            "feature": "steps/observation/state",
            "order": ("state keys sorted by name" if plan.state.sorted_by_name
                      else "state keys in the order asked for (--state-keys)")
                     + ", each flattened row-major",
            "element_names": [f"{m.key}.{n}" if n != m.key else n
                              for m in plan.state.meanings for n in m.names],
            "keys": [_state_key(key, shape, slices[key], meanings.get(key),
                                key in plan.state.individual)
                     for key, shape in plan.state.keys],
        },
        "meanings": {
            "quaternion_order": quaternions or None,
            "gripper": f"{GRIPPER_CONVENTION}: the last action element is the commanded "
                       "opening; state 'gripper' is the measured one",
            "action": action.description,
        },
        "cameras": cameras,
        "depth": depth,
        "action_source": {str(k): v for k, v in ACTION_SOURCES.items()},
        "dagger": _dagger_summary(plan) if plan.dagger else None,
        "conventions": {**CONVENTIONS, **(SUBTASK_CONVENTIONS if opts.subtasks else {})},
        "warnings": list(plan.warnings),
        "episodes": written,
        "skipped": [{"file": str(p), "reason": r} for p, r in skipped],
        "filtered_unsuccessful": plan.filtered_unsuccessful,
        "left_out": dict(plan.left_out),
    }


def _dagger_summary(plan: ExportPlan) -> dict[str, Any]:
    """What the DAgger step labels are, and their LeRobot names."""
    return {
        "features": ["steps/intervention", "steps/pre_intervention", "steps/policy_action",
                     "steps/confidence", "episode_metadata/dagger_round",
                     "episode_metadata/interventions"],
        "pre_intervention_s": plan.options.pre_intervention_s,
        "intervention": "action_source == 3: the operator (or the automatic corrector) drove",
        "lerobot": {"steps/intervention": "complementary_info.is_intervention",
                    "steps/policy_action": "complementary_info.policy_action"},
    }


def _annotations_summary(written: list[dict[str, Any]], plan: ExportPlan) -> dict[str, Any]:
    """Which annotation edits the export applied, over all exported episodes."""
    applied: dict[str, int] = {}
    for entry in written:
        for key in entry.get("edits", {}):
            applied[key] = applied.get(key, 0) + 1
    opts = plan.options
    return {
        "source": "each episode's <stem>.annotations.json (the recordings are never edited)",
        "episodes_with_edits": sum(1 for e in written if e.get("edits")),
        "episodes_per_edit": dict(sorted(applied.items())),
        "filters": {"outcomes": list(opts.kept_outcomes), "min_quality": opts.min_quality},
        "left_out": dict(plan.left_out),
    }


def _state_key(key: str, shape: tuple[int, ...], span: tuple[int, int],
               meaning: StateMeaning | None, individual: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": key, "shape": list(shape), "slice": list(span),
                             "feature": f"steps/observation/{key}" if individual else None}
    if meaning is not None:
        entry.update(names=list(meaning.names), unit=meaning.unit, meaning=meaning.meaning,
                     names_from=meaning.source)
        if meaning.quaternion_order:
            entry["quaternion_order"] = meaning.quaternion_order
    return entry
