"""Records shared by the recorder and its writer thread: settings, per-episode state, status.

An :class:`EpisodeRecording` is the one object both sides touch. Its *window* fields
(``t_begin``, ``t_end``, ``pauses``) and labels are changed by the recorder (operator threads)
and read by the writer, always under the recorder's lock: that is what makes "which steps belong
to this episode" exact. Its progress counters are written by the writer thread only.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vla_studio import __version__
from vla_studio.core.config import option
from vla_studio.core.types import Step
from vla_studio.data.episode_file import SUCCESS_UNKNOWN, success_to_bool
from vla_studio.data.labels import EpisodeLabels
from vla_studio.data.step_encoder import CameraSchema, EpisodeSchema
from vla_studio.data.success_monitor import TaskVerdict

if TYPE_CHECKING:
    from vla_studio.station import Station


@dataclass(frozen=True)
class RecorderConfig:
    """Recorder tuning (the profile's ``[recording]`` table sets format, quality and policies).

    All defaults suit a 2-core machine with 3 cameras at 640x480 and 30 Hz.
    """

    queue_seconds: float = option(5.0, min=0.5, help="steps buffered between loop and writer")
    commit_interval_s: float = option(0.25, min=0.01, max=1.0,
                                      help="steps are flushed to the file this often")
    max_backlog_s: float = option(1.0, min=0.1, help="a step is committed within this long "
                                  "(what a crash may lose); older ones are shed and recorded "
                                  "as dropped")
    fsync_interval_s: float = option(1.0, min=0.0, max=1.0,
                                     help="data is forced to the disk this often (power cuts)")
    min_free_mb: float = option(200.0, min=0.0, help="stop recording below this much free disk")
    low_disk_minutes: float = option(5.0, min=0.0, help="warn when less recording time is left")
    finish_grace_s: float = option(1.0, min=0.05, help="wait this long for a stopped loop's steps")
    live_success: bool = option(True, help="ask the robot (simulator) for success at stop")
    space_guard: bool = option(True, help="check free space before each write (HDF5 cannot "
                               "recover from a failed write)")
    background_compaction: bool = option(
        False, help="with [recording] storage = \"video\": transcode saved episodes to video "
                    "while nothing is recorded (the app turns it on)")


class RecorderState(str, enum.Enum):
    """What the operator can do next."""

    IDLE = "idle"  # ready: start a new episode (earlier ones may still be saving)
    RECORDING = "recording"
    PAUSED = "paused"  # the episode is open but steps are not recorded (camera lost, operator)


class EpisodeState(str, enum.Enum):
    RECORDING = "recording"
    PAUSED = "paused"
    SAVING = "saving"  # stopped; the writer is finishing the file
    SAVED = "saved"
    DISCARDED = "discarded"  # in the trash
    EMPTY = "empty"  # stopped before any step: nothing written
    FAILED = "failed"  # could not be written; see ``error``


@dataclass(eq=False)
class EpisodeRecording:
    """One episode from start until its file is saved (see the module docstring)."""

    episode_id: str
    stem: str
    labels: EpisodeLabels
    seed: int | None
    created: dt.datetime
    t_begin: float
    start_time_unix: float
    with_policy: bool = False
    policy_id: str = ""
    t_end: float | None = None
    pauses: list[list[float | None]] = field(default_factory=list)
    state: EpisodeState = EpisodeState.RECORDING
    pause_reason: str = ""
    success: int | None = None  # -1/0/1 once decided; None = undecided
    success_source: str = ""  # "operator" or "robot"
    robot_verdict: bool | None = None  # the robot's latest live verdict on the task
    discard: bool = False
    path: Path | None = None
    error: str = ""
    flags: set[str] = field(default_factory=set)
    # progress, written by the writer thread only
    steps: int = 0
    frames: int = 0
    bytes_written: int = 0
    first_t: float | None = None
    last_t: float | None = None
    written_success: int | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def includes(self, t: float) -> bool:
        """Whether a step ticked at ``t`` belongs to this episode (call under the lock)."""
        if t < self.t_begin or (self.t_end is not None and t >= self.t_end):
            return False
        return not any(start <= t and (end is None or t < end) for start, end in self.pauses)

    @property
    def is_open(self) -> bool:
        return self.state in (EpisodeState.RECORDING, EpisodeState.PAUSED)

    @property
    def success_code(self) -> int:
        return SUCCESS_UNKNOWN if self.success is None else self.success

    @property
    def duration_s(self) -> float:
        if self.first_t is None or self.last_t is None:
            return 0.0
        return self.last_t - self.first_t


@dataclass(frozen=True)
class EpisodeInfo:
    """A snapshot of one episode for views and scripts."""

    episode_id: str
    state: EpisodeState
    labels: EpisodeLabels
    success: bool | None
    steps: int
    duration_s: float
    path: Path | None
    error: str
    flags: tuple[str, ...]
    t_begin: float  # host monotonic: steps ticked in [t_begin, t_end) belong to the episode
    t_end: float | None

    @classmethod
    def of(cls, ep: EpisodeRecording) -> "EpisodeInfo":
        return cls(ep.episode_id, ep.state, ep.labels, success_to_bool(ep.success_code), ep.steps,
                   ep.duration_s, ep.path, ep.error, tuple(sorted(ep.flags)), ep.t_begin, ep.t_end)


@dataclass(frozen=True)
class RecorderStatus:
    """A consistent snapshot of the recorder for the dock, the CLI and tests.

    Attributes:
        state: idle, recording or paused.
        episode: the open episode (None when idle).
        last: the most recently stopped episode (None before the first).
        next_labels: labels the next episode will use (proposed task included).
        saving: stopped episodes whose files are still being finished.
        saved: episodes saved since the recorder connected.
        queue_fraction: how full the step queue is now (0..1).
        queue_high_water: the fullest it has been (0..1).
        free_bytes: free disk space at the last check.
        minutes_left: recording time that space allows at the current rate.
        task: the robot's latest verdict on the open episode's task (see
            :meth:`Recorder.poll_task`).
        backlog_s: how old the oldest step not yet safe in a file is (a crash now would lose
            that much); kept under ``RecorderConfig.max_backlog_s``.
    """

    state: RecorderState
    episode: EpisodeInfo | None
    last: EpisodeInfo | None
    next_labels: EpisodeLabels
    saving: int
    saved: int
    queue_fraction: float
    queue_high_water: float
    free_bytes: int
    minutes_left: float
    task: TaskVerdict = TaskVerdict()
    backlog_s: float = 0.0


def new_episode(labels: EpisodeLabels, seed: int | None, stem_for, *, with_policy: bool,
                policy_id: str, episode_id: str, t_begin: float | None = None) -> EpisodeRecording:
    """An episode starting now (``stem_for(created, id)`` names its file); ``t_begin`` is now
    on the station's clock (default: host monotonic time)."""
    created = dt.datetime.now(dt.timezone.utc)
    return EpisodeRecording(
        episode_id=episode_id, stem=stem_for(created, episode_id), labels=labels, seed=seed,
        created=created, t_begin=time.monotonic() if t_begin is None else t_begin,
        start_time_unix=time.time(),
        with_policy=with_policy, policy_id=policy_id)


# A frame this much older than the tick means the camera is gone (a slow render or a busy CPU
# delays frames by a few periods; that is recorded honestly through the capture times instead).
CAMERA_LOST_MIN_S = 1.0


def camera_lost_after_s(camera) -> float:
    """How old a camera's latest frame may be before the recorder treats the camera as lost."""
    return max(float(camera.stale_after_s), CAMERA_LOST_MIN_S)


def build_schema(station: "Station", first: Step, with_policy: bool) -> EpisodeSchema:
    """The file layout for ``station``, with image sizes taken from the first step's frames
    (a camera may deliver another size than configured)."""
    profile, robot = station.profile, station.robot
    types = {spec.name: spec.type for spec in profile.cameras}
    cameras = []
    for name, cam in station.cameras.items():
        cfg = cam.config
        frame = first.observation.frames.get(name)
        width, height = cfg.width, cfg.height
        if frame is not None and frame.color is not None and frame.color.ndim == 3:
            height, width = frame.color.shape[:2]
        depth_shape = None
        if cfg.depth:
            depth_shape = (cfg.height, cfg.width)
            if frame is not None and frame.depth is not None and frame.depth.ndim == 2:
                depth_shape = tuple(frame.depth.shape)
        intr = cam.intrinsics
        cameras.append(CameraSchema(
            name=name, type=types.get(name, type(cam).__name__), color=bool(cfg.color),
            width=int(width), height=int(height), depth_shape=depth_shape, fps=float(cfg.fps),
            stale_after_s=camera_lost_after_s(cam),
            intrinsics=intr.as_dict() if intr is not None else None,
            depth_scale=intr.depth_scale if intr is not None else None))
    return EpisodeSchema(
        action_names=tuple(robot.action_space.names), action_space_kind=robot.action_space.kind,
        state={k: tuple(f.shape) for k, f in robot.observation_features.items()},
        cameras=tuple(cameras), image_format=profile.recording.image_format,
        jpeg_quality=profile.recording.jpeg_quality, with_policy=with_policy)


def start_attrs(station: "Station", ep: EpisodeRecording, schema: EpisodeSchema,
                profile_text: str) -> dict:
    """Root attributes written when the episode file is created."""
    profile, labels = station.profile, ep.labels
    return {
        "episode_id": ep.episode_id,
        "created": ep.created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "language_instruction": labels.instruction,
        "language_instructions": labels.instructions,
        "task": labels.task,
        "success": SUCCESS_UNKNOWN,
        "success_source": "",
        "operator": labels.operator,
        "teleop_device": labels.device,
        "notes": labels.notes,
        "scene_id": labels.scene_id,
        "dagger_round": -1 if labels.dagger_round is None else int(labels.dagger_round),
        "station_id": profile.recording.station_id,
        "station_name": profile.name,
        "station_profile": profile_text,
        "robot_type": profile.robot.type,
        "action_space_kind": schema.action_space_kind,
        "action_names": list(schema.action_names),
        "cameras": {c.name: c.metadata() for c in schema.cameras},
        "control_rate_hz": float(profile.control_rate_hz),
        "software_version": __version__,
        "policy_id": ep.policy_id,
        "seed": -1 if ep.seed is None else int(ep.seed),
        "num_steps": 0,
        "duration_s": 0.0,
        "start_time_unix": ep.start_time_unix,
        "start_time_monotonic": ep.t_begin,
        # "host": stamps are host monotonic seconds; "sim": seconds of simulated time (lock-step)
        "clock": getattr(getattr(station, "clock", None), "kind", "host"),
        "safety_counts": {},
        "camera_stats": {},
        "source_counts": {},
        "flags": [],
        "dropped_steps": 0,
        "worst_backlog_s": 0.0,
    }


class WriterListener(Protocol):
    """What the writer tells the recorder (called on the writer thread, lock not held)."""

    def on_camera_lost(self, ep: EpisodeRecording, cameras: list[str]) -> None: ...
    def on_camera_gap(self, ep: EpisodeRecording, camera: str) -> None: ...
    def on_steps_dropped(self, ep: EpisodeRecording, count: int) -> None: ...
    def on_writer_behind(self, ep: EpisodeRecording, lag_s: float, dropped: int) -> None: ...
    def on_disk_low(self, ep: EpisodeRecording, free_bytes: int, minutes: float, stop: bool) -> None: ...
    def on_write_failed(self, ep: EpisodeRecording, message: str, storage: bool) -> None: ...
    def on_finished(self, ep: EpisodeRecording) -> None: ...
