"""The tfds features of an export, each with its meaning as the feature's description.

tfds keeps a feature's ``description`` (and ``valueRange``) from ``features.json`` and exposes
them as ``builder.info.features[...].doc``: element names, units, frames, the quaternion order
and the gripper convention reach whoever loads the dataset, not only readers of
``metadata.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vla_studio.data.episode_file import SOURCE_LABELS
from vla_studio.data.rlds.features import (EpisodeSchema, Feature, ImageFeature, TensorFeature,
                                           TextFeature)
from vla_studio.data.rlds.meanings import GRIPPER_RANGE, StateMeaning

if TYPE_CHECKING:
    from vla_studio.data.rlds.plan import ExportPlan

ACTION_SOURCES = dict(enumerate(SOURCE_LABELS))  # 4 "paused": held while the run was paused


def build_schema(plan: "ExportPlan") -> EpisodeSchema:
    """The features every episode of ``plan`` has."""
    steps: dict[str, Feature] = {}
    for cam in plan.cameras:
        recorded = f" (recorded as camera '{cam.camera}')" if cam.exported_name != cam.camera \
            else f" (camera '{cam.camera}')"
        steps[cam.feature] = ImageFeature(
            cam.height, cam.width, 3, cam.encoding,
            doc=f"RGB image{recorded}, {cam.width}x{cam.height}, {cam.encoding}")
    for d in plan.depths:
        steps[d.feature] = ImageFeature(
            d.height, d.width, 1, "png", dtype="uint16",
            doc=f"depth of camera '{d.camera}' in device units (metres = value x depth_scale "
                "in metadata.json)")
    if plan.state.keys:
        order = "in the order asked for" if not plan.state.sorted_by_name else "sorted by key"
        steps["observation/state"] = TensorFeature(
            "float32", (plan.state.size,),
            doc=f"robot state, state keys concatenated {order}: "
                + "; ".join(m.describe() for m in plan.state.meanings))
    meanings = {m.key: m for m in plan.state.meanings}
    for key in plan.state.individual:
        shape = dict(plan.state.keys)[key]
        steps[f"observation/{key}"] = _state_feature(key, shape, meanings.get(key))
    action = plan.action
    units = ", ".join(f"{n} [{u}]" if u else n for n, u in zip(action.names, action.units))
    steps["action"] = TensorFeature("float32", (plan.action_dim,),
                                    doc=f"action sent to the robot after the safety filter, "
                                        f"{action.kind or 'kind not recorded'}: "
                                        f"{action.description}. Elements: {units}")
    steps["reward"] = TensorFeature("float32", doc="1 on the last step of an episode marked "
                                                   "successful, else 0", value_range="0 or 1")
    steps["discount"] = TensorFeature("float32", doc="always 1")
    steps["is_first"] = TensorFeature("bool", doc="true on the first exported step")
    steps["is_last"] = TensorFeature("bool", doc="true on the last exported step of every "
                                                 "episode")
    steps["is_terminal"] = TensorFeature(
        "bool", doc="true on the last step of an episode marked successful (it really ended); "
                    "false throughout a truncated one (time limit, stopped without success, "
                    "outcome unknown)")
    for i, key in enumerate(plan.instruction_features):
        steps[key] = TextFeature(doc="language instruction" if i == 0 else
                                 f"paraphrase {i + 1} (the episode's own instructions, cycled)")
    if plan.options.subtasks:
        steps["language_subtask"] = TextFeature(
            doc="label of the subtask segment holding the step ('' outside every segment)")
        steps["subtask_index"] = TensorFeature(
            "int32", doc="index of the step's subtask segment in the exported steps, -1 outside "
                         "every segment")
        steps["is_subtask_first"] = TensorFeature(
            "bool", doc="true on the first exported step of each subtask segment")
    steps["action_source"] = TensorFeature(
        "int32", doc=", ".join(f"{k} {v}" for k, v in ACTION_SOURCES.items()))
    steps["timestamp"] = TensorFeature("float32", doc="seconds since the first exported step "
                                                      "(host monotonic tick times)")
    if plan.dagger:
        steps.update(dagger_step_features(plan))
    meta: dict[str, Feature] = {
        key: TextFeature() for key in (
            "episode_id", "file_path", "task", "operator", "scene_id", "station_name",
            "robot_type", "notes", "created", "status", "policy_id")}
    meta["language_instructions"] = TextFeature(doc="all instructions, JSON list")
    meta["success"] = TensorFeature("int32", doc="1 success, 0 failure, -1 not marked")
    meta["num_steps"] = TensorFeature("int32", doc="steps exported (after trim)")
    meta["trim_start"] = TensorFeature("int32", doc="first recorded step exported")
    meta["control_rate_hz"] = TensorFeature("float32", doc="control steps per second")
    meta["quality"] = TensorFeature("int32", doc="rating of the demonstration 1..5, -1 not rated")
    meta["tags"] = TextFeature(doc="the episode's tags, JSON list")
    if plan.dagger:
        meta["dagger_round"] = TensorFeature("int32", doc="the DAgger round of a correction "
                                                          "session, -1 outside any round")
        meta["interventions"] = TensorFeature("int32", doc="takeovers during the policy run")
    if plan.options.subtasks:
        meta["subtask_segments"] = TextFeature(
            doc="subtask segments as a JSON list of {start, end, label}, steps counted from the "
                "first exported step, end exclusive")
    return EpisodeSchema(steps=steps, episode_metadata=meta)


def dagger_step_features(plan: "ExportPlan") -> dict[str, Feature]:
    """The per-step DAgger labels (see :mod:`vla_studio.data.dagger`)."""
    window = plan.options.pre_intervention_s
    return {
        "intervention": TensorFeature(
            "bool", doc="true where the operator (or the automatic corrector) drove during a "
                        "policy run (action_source 3); LeRobot records the same flag as "
                        "complementary_info.is_intervention"),
        "pre_intervention": TensorFeature(
            "bool", doc=f"true where the policy drove within {window:g} s before a takeover "
                        "(Sirius' pre-intervention samples)"),
        "policy_action": TensorFeature(
            "float32", (plan.action_dim,),
            doc="the action the policy proposed at the step, before speed scaling and the "
                "safety filter: beside the operator's action during an intervention (the "
                "policy kept planning in the shadow); NaN where it proposed none"),
        "confidence": TensorFeature("float32", doc="the policy's confidence in that action, "
                                                   "0..1; NaN where unknown or none"),
    }


def _state_feature(key: str, shape: tuple[int, ...], meaning: StateMeaning | None
                   ) -> TensorFeature:
    if meaning is None:
        return TensorFeature("float32", shape, doc=f"state '{key}'")
    value_range = GRIPPER_RANGE if key == "gripper" else ""
    return TensorFeature("float32", shape, doc=f"state {meaning.describe()}",
                         value_range=value_range)
