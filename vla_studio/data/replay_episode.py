"""One episode opened for replay: its time base, plot series, timeline events and annotations.

The Qt-free model behind the replay view. Opening reads the per-step arrays (timestamps,
actions, state, sources, safety flags, per-camera timing): a few bytes per step, never an
image (frames come from a :class:`~vla_studio.data.frame_source.FrameSource`). Annotations are
read through :mod:`vla_studio.data.annotations` and re-read after every edit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_studio.core.safety import SafetyFlag
from vla_studio.data.annotations import AnnotationState, load_annotations
from vla_studio.data.episode_file import (HOLD, INTERVENTION, PAUSED, SOURCE_LABELS,
                                         EpisodeReader, success_to_bool)
from vla_studio.data.frame_source import FrameSource, frame_gaps
from vla_studio.data.video_storage import open_frame_source
from vla_studio.data.rlds.meanings import action_meaning, state_meanings
from vla_studio.data.segments import boundaries

log = logging.getLogger(__name__)

CLAMP_FLAGS = SafetyFlag.CLIPPED_WORKSPACE | SafetyFlag.CAPPED_DELTA | SafetyFlag.CAPPED_VELOCITY
WATCHDOG_FLAGS = (SafetyFlag.TELEOP_STALE | SafetyFlag.POLICY_STALE | SafetyFlag.HEARTBEAT_LOST
                  | SafetyFlag.REJECTED_NONFINITE | SafetyFlag.REJECTED_SHAPE)
# Timeline event kinds, in the order the timeline draws (and the help text lists) them.
EVENT_KINDS = {
    "intervention": "operator took over from the policy",
    "hold": "the robot was held (paused or stopped)",
    "clamp": "the safety filter clipped or capped the action",
    "estop": "e-stop latched",
    "watchdog": "stale input or rejected action: held",
    "camera_gap": "a camera delivered no new frame, or dropped frames",
    "dropped_steps": "steps the recorder could not keep",
    "success": "task accomplished",
}


@dataclass(frozen=True)
class Series:
    """One plotted quantity over the episode.

    Attributes:
        key: ``action``, ``requested_action``, ``state/<key>``, ``confidence``,
            ``action_source``.
        title: what it is, for people ("action sent (filtered)").
        names: one name per column (``dx``; ``ee_pos.x``).
        units: one unit per column ('' = none).
        values: float ``[T, k]`` (NaN where the step has no value, e.g. a held tick's request).
        group: the plot it belongs in: ``action``, ``state`` or ``source``.
    """

    key: str
    title: str
    names: tuple[str, ...]
    units: tuple[str, ...]
    values: np.ndarray
    group: str


@dataclass(frozen=True)
class TimelineEvent:
    """A marker or a span on the timeline: steps ``[start, end)`` of one kind."""

    kind: str
    start: int
    end: int
    label: str


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True in ``mask``."""
    if not mask.any():
        return []
    padded = np.concatenate(([False], mask.astype(bool), [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


class ReplayEpisode:
    """An episode file opened for replay (read-only; annotations live in the sidecar).

    Args:
        path: the episode file.

    Raises:
        EpisodeFileError: not a readable episode file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with EpisodeReader(self.path) as reader:
            self._load(reader)
        self.annotation_state = load_annotations(self.path)
        self.extra_events: list[TimelineEvent] = []  # added later (the simulator's success)

    def _load(self, reader: EpisodeReader) -> None:
        self.attrs: dict[str, Any] = {k: v for k, v in reader.attrs.items()
                                      if k != "station_profile"}
        self.profile_text = str(reader.attrs.get("station_profile", "") or "")
        self.num_steps = n = reader.num_steps
        stamps = reader.step("timestamp").astype(np.float64) if n else np.zeros(0)
        self.step_times = stamps  # host monotonic, what camera capture times are compared to
        self.times = stamps - stamps[0] if n else stamps  # seconds from the first step
        self.rate_hz = float(self.attrs.get("control_rate_hz", 0.0) or 0.0) or (
            (n - 1) / self.times[-1] if n > 1 and self.times[-1] > 0 else 1.0)
        self.recorded_instructions = list(reader.attrs.get("language_instructions") or []) or \
            [str(reader.attrs.get("language_instruction", ""))]
        self.recorded_success = success_to_bool(reader.attrs.get("success", -1))
        self.cameras = list(reader.cameras)
        self.depth_cameras = list(reader.depth_cameras)
        self.series = self._series(reader)
        self.sources = reader.step("action_source").astype(np.int64) \
            if reader.has_step("action_source") else np.ones(n, np.int64)
        self.flags = reader.step("safety_flags").astype(np.int64) \
            if reader.has_step("safety_flags") else np.zeros(n, np.int64)
        drops = reader.file.get("drops")
        self.drops = np.asarray(drops[:], np.float64).reshape(-1, 4) if drops is not None \
            else np.zeros((0, 4))
        self.state = {k: v for k, v in reader.state().items()}

    def _series(self, reader: EpisodeReader) -> list[Series]:
        out: list[Series] = []
        names = tuple(str(x) for x in (self.attrs.get("action_names") or ()))
        if reader.has_step("action"):
            action = reader.step("action").astype(np.float64)
            if len(names) != action.shape[1]:
                names = tuple(f"a{i}" for i in range(action.shape[1]))
            meaning = action_meaning(str(self.attrs.get("action_space_kind", "")), names)
            out.append(Series("action", "action sent (after the safety filter)", names,
                              meaning.units, action, "action"))
            if reader.has_step("requested_action"):
                out.append(Series("requested_action", "action requested by the source", names,
                                  meaning.units, reader.step("requested_action")
                                  .astype(np.float64), "action"))
        state = reader.state()
        keys = tuple((k, tuple(v.shape[1:])) for k, v in sorted(state.items()))
        attrs = {"station_profile": self.profile_text,
                 "action_space_kind": self.attrs.get("action_space_kind", "")}
        for meaning, (key, _) in zip(state_meanings(keys, attrs), keys):
            values = state[key].reshape(self.num_steps, -1).astype(np.float64)
            out.append(Series(f"state/{key}", f"state {key}", meaning.names,
                              (meaning.unit,) * values.shape[1], values, "state"))
        if reader.has_step("confidence"):
            conf = reader.step("confidence").astype(np.float64).reshape(self.num_steps, -1)
            out.append(Series("confidence", "policy confidence", ("confidence",), ("",),
                              conf[:, :1], "source"))
        if reader.has_step("action_source"):
            src = reader.step("action_source").astype(np.float64).reshape(-1, 1)
            out.append(Series("action_source", "who drove: " + ", ".join(
                f"{i} {s}" for i, s in enumerate(SOURCE_LABELS)), ("action_source",), ("",),
                src, "source"))
        return out

    def open_frames(self) -> FrameSource:
        """A frame source on this episode (its own file handle; the caller closes it)."""
        return open_frame_source(self.path)  # JPEG or video, per camera

    # ----- time -----------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return float(self.times[-1]) if self.num_steps else 0.0

    def step_at(self, t: float) -> int:
        """The step shown at ``t`` seconds from the start (the last step at or before it)."""
        if not self.num_steps:
            return 0
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        return max(0, min(i, self.num_steps - 1))

    def time_of(self, step: int) -> float:
        return float(self.times[max(0, min(step, self.num_steps - 1))]) if self.num_steps else 0.0

    # ----- annotations ---------------------------------------------------------------------
    def reload_annotations(self) -> AnnotationState:
        self.annotation_state = load_annotations(self.path)
        return self.annotation_state

    @property
    def annotations(self) -> dict[str, Any]:
        return self.annotation_state.annotations

    def instructions(self) -> list[str]:
        return [str(s) for s in self.annotations.get("instructions") or
                self.recorded_instructions if s]

    def success(self) -> bool | None:
        if "success" in self.annotations:
            return success_to_bool(self.annotations["success"])
        return self.recorded_success

    def success_source(self) -> str:
        if "success" in self.annotations:
            return str(self.annotations.get("success_source", ""))
        return str(self.attrs.get("success_source", ""))

    def trim(self) -> tuple[int, int] | None:
        trim = self.annotations.get("trim")
        return (int(trim[0]), int(trim[1])) if trim else None

    def segments(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.annotations.get("segments") or []]

    # ----- events --------------------------------------------------------------------------
    def events(self, frames: FrameSource | None = None) -> list[TimelineEvent]:
        """Every timeline event: sources, safety flags, camera gaps (when ``frames`` is given),
        recorder drops, the success moment."""
        out: list[TimelineEvent] = []
        for a, b in runs(self.sources == INTERVENTION):
            out.append(TimelineEvent("intervention", a, b, f"operator intervention "
                                     f"({(b - a) / self.rate_hz:.1f} s)"))
        for a, b in runs(self.sources == HOLD):
            out.append(TimelineEvent("hold", a, b, "robot held"))
        for a, b in runs(self.sources == PAUSED):
            out.append(TimelineEvent("hold", a, b, "run paused: robot held"))
        for a, b in runs((self.flags & int(CLAMP_FLAGS)) != 0):
            out.append(TimelineEvent("clamp", a, b, _flag_text(self.flags[a:b], CLAMP_FLAGS)))
        for a, b in runs((self.flags & int(SafetyFlag.ESTOP)) != 0):
            out.append(TimelineEvent("estop", a, b, "e-stop latched"))
        for a, b in runs((self.flags & int(WATCHDOG_FLAGS)) != 0):
            out.append(TimelineEvent("watchdog", a, b, _flag_text(self.flags[a:b],
                                                                   WATCHDOG_FLAGS)))
        queue_full = (self.flags & int(SafetyFlag.STEP_QUEUE_FULL)) != 0
        for step in np.flatnonzero(queue_full):
            out.append(TimelineEvent("dropped_steps", int(step), int(step) + 1,
                                     "the recorder could not keep up: steps were lost here"))
        for before, count, _, _ in self.drops:
            step = max(0, min(int(before), self.num_steps - 1))
            if not queue_full[step]:
                out.append(TimelineEvent("dropped_steps", step, step + 1,
                                         f"{int(count)} step(s) lost before this one"))
        if frames is not None:
            period = {c: 1.0 / float(m.get("fps") or 0) for c, m in
                      (self.attrs.get("cameras") or {}).items()
                      if isinstance(m, dict) and m.get("fps")}
            for cam in frames.cameras:
                for step, why in frame_gaps(frames.capture_times(cam),
                                            frames.sequence_numbers(cam), period.get(cam)):
                    out.append(TimelineEvent("camera_gap", step, step + 1, f"{cam}: {why}"))
        found = any(e.kind == "success" for e in self.extra_events)
        if self.success() is True and self.num_steps and not found:
            end = self.num_steps
            out.append(TimelineEvent("success", end - 1, end,
                                     "marked successful (the moment is not recorded; re-execute "
                                     "in the simulator to find it)"))
        out.extend(self.extra_events)
        return sorted(out, key=lambda e: (e.start, e.kind))

    def event_steps(self, events: list[TimelineEvent]) -> list[int]:
        """Steps the transport jumps between: event starts, segment boundaries, trim points."""
        steps = {e.start for e in events}
        steps.update(b for b in boundaries(self.segments()) if b < self.num_steps)
        trim = self.trim()
        if trim:
            steps.update((trim[0], max(0, trim[1] - 1)))
        return sorted(steps)


def _flag_text(flags: np.ndarray, mask: SafetyFlag) -> str:
    seen = int(np.bitwise_or.reduce(flags)) & int(mask) if flags.size else 0
    names = [f.name.lower().replace("_", " ") for f in SafetyFlag if f and seen & f]
    return ", ".join(names) or "safety"
