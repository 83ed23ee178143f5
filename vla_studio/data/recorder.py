"""The recorder: a Qt-free session object that turns control-loop steps into episode files.

```
            start(labels)                     stop(success) / discard()
   IDLE  ---------------->  RECORDING  ----------------------------------> IDLE  (ready at once)
    ^                        |     ^                                          |
    |            pause()/    |     | resume()                                 | the writer finishes
    |        camera lost     v     |                                          v the file meanwhile
    +----- stop/discard --- PAUSED +                            mark_success(), discard() and
                                                                rerecord() still act on it
```
The GUI dock, gamepad buttons (station commands ``record.*``, ``episode.*``, ``task.next``) and
``vla-studio record`` all drive the same object. Every method returns quickly: file work happens
on the writer thread (:mod:`vla_studio.data.recorder_writer`), so between episodes the operator
waits for nothing. Operator-facing news (saved, recovered, disk low, camera lost) goes out as
:class:`~vla_studio.core.events.AppEvent` on the station's event bus, kinds ``recorder.*``.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from vla_studio.core.clocks import HOST_CLOCK
from vla_studio.core.session import SessionError
from vla_studio.data.dataset import Dataset, Preflight
from vla_studio.data.dataset_index import DatasetIndex, station_preflight
from vla_studio.data.episode_file import success_to_code
from vla_studio.data.labels import EpisodeLabels, InstructionHistory
from vla_studio.data.recorder_writer import RecorderWriter
from vla_studio.data.camera_readiness import cameras_without_fresh_frames, cameras_without_images
from vla_studio.data.recording import (EpisodeInfo, EpisodeRecording, EpisodeState,
                                       RecorderConfig, RecorderState, RecorderStatus, new_episode)
from vla_studio.data.recovery import RecoveryResult, recover_dataset
from vla_studio.data.recorder_commands import register_recorder_commands
from vla_studio.data.recorder_notices import WriterNotices
from vla_studio.data.success_monitor import SuccessMonitor, TaskVerdict
from vla_studio.data.tasks import TaskSampler

log = logging.getLogger(__name__)


class _NoIndex:
    """Stands in for an index that cannot be opened: no recent episodes to measure."""

    @staticmethod
    def list() -> list:
        return []


_NO_INDEX = _NoIndex()


class RecorderError(RuntimeError):
    """An operation that is not possible now; the message says why and what to do."""


class Recorder(WriterNotices):
    """Records episodes of one station into one dataset folder.

    Args:
        station: the station whose loop, cameras and session are used.
        dataset: the dataset folder (default: the profile's ``[recording] dataset_dir``).
        config: tuning; defaults suit the targets in the issue.
        tasks: a task sampler; it proposes the labels of each next episode.
        labels: initial labels (default: operator and station id from the profile).
    """

    def __init__(self, station, dataset: Dataset | str | Path | None = None, *,
                 config: RecorderConfig | None = None, tasks: TaskSampler | None = None,
                 labels: EpisodeLabels | None = None) -> None:
        self.station = station
        # Episode windows and "held for" timers are on the station's clock: host time, or
        # simulated time for a lock-step station (see vla_studio.core.clocks).
        self.clock = getattr(station, "clock", HOST_CLOCK)
        if not isinstance(dataset, Dataset):
            dataset = Dataset(dataset if dataset is not None else station.profile.dataset_dir)
        self.dataset = dataset
        self.config = config or RecorderConfig()
        self.index = DatasetIndex(dataset)
        self.history = InstructionHistory(dataset.history_path)
        self.tasks = tasks
        rec = station.profile.recording
        self._labels = labels or EpisodeLabels(operator=rec.operator, scene_id=rec.station_id)
        self._lock = threading.RLock()
        # connect/disconnect may be called from several threads (the dock runs start and stop
        # in the background; the window's close disconnects): one at a time.
        self._lifecycle = threading.RLock()
        self._active: EpisodeRecording | None = None
        self._last: EpisodeRecording | None = None
        self._episodes: dict[str, EpisodeRecording] = {}  # this session's, by id
        self._starting = False
        self._saved = 0
        self._queue = None
        self._writer: RecorderWriter | None = None
        self._commands_registered = False
        self.recovered: list[RecoveryResult] = []
        self._monitor = SuccessMonitor(station.loop,
                                       lambda text: self.station.robot.episode_success(text))
        #: With a value, :meth:`poll_task` saves an episode as a success once the robot has
        #: judged its task accomplished for this many seconds (None: the operator decides).
        self.save_on_success_s: float | None = None
        #: Transcodes saved episodes to video while nothing is recorded (see
        #: :meth:`_start_compactor`); None when the episodes stay JPEG.
        self.compactor = None

    # ----- lifecycle -------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._writer is not None

    @property
    def is_starting(self) -> bool:
        """:meth:`start` is under way (scene reset, waiting for fresh camera frames)."""
        return self._starting

    def connect(self) -> None:
        """Prepare the dataset, recover interrupted episodes, subscribe to the loop and start
        the writer thread.

        Raises:
            DatasetError: the dataset folder cannot be created or written.
        """
        with self._lifecycle:
            if self._writer is not None:
                return
            self.dataset.ensure()
            self.dataset.make_reserve()
            self.recover()
            profile = self.station.profile
            profile_text = ""
            if profile.path is not None:
                try:
                    profile_text = Path(profile.path).read_text(encoding="utf-8")
                except OSError as exc:
                    log.warning("cannot read the station profile %s: %s", profile.path, exc)
            maxsize = max(64, int(self.config.queue_seconds * profile.control_rate_hz))
            self._queue = self.station.loop.subscribe("recorder", maxsize)
            self._writer = RecorderWriter(self.station, self.dataset, self.index, self.history,
                                          self._queue, self._lock, self, self.config, profile_text)
            self._writer.start()
            self._start_compactor()
            if self.tasks is not None and not self.labels.instruction:
                self._propose(self.tasks.next())  # the first task, unless one is already proposed
            self.register_commands()

    def _start_compactor(self) -> None:
        """Background compaction (``[recording] storage = "video"``, when the config asks)."""
        recording = self.station.profile.recording
        if not self.config.background_compaction or recording.storage != "video" or \
                self.compactor is not None:
            return
        from vla_studio.data.compactor import Compactor
        from vla_studio.data.video_codec import VideoCodecError, VideoSettings, check_codec

        try:
            check_codec(recording.video_codec)
        except VideoCodecError as exc:
            self._emit("compactor.unavailable", f"Episodes stay JPEG: {exc}", logging.WARNING)
            return
        self.compactor = Compactor(
            self.dataset, VideoSettings(codec=recording.video_codec, crf=recording.video_crf),
            is_busy=self._compaction_blocked, emit=self.station.events.emit)
        self.compactor.start()

    def _compaction_blocked(self) -> bool:
        """True while an episode is being started, recorded or saved."""
        with self._lock:
            if self._active is not None or self._starting:
                return True
        writer = self._writer
        return writer is not None and writer.busy() > 0

    def register_commands(self) -> None:
        """Handle the station's ``record.*``, ``episode.*`` and ``task.next`` commands (once;
        also done by :meth:`connect`). Starting from a command connects the recorder first."""
        if not self._commands_registered:
            register_recorder_commands(self.station, self)
            self._commands_registered = True

    def disconnect(self) -> None:
        """Stop (and save) an open episode, finish every file, stop and join the writer."""
        with self._lifecycle:
            if self._writer is None:
                return
            if self._active is not None:
                self.stop()
            if self.compactor is not None:
                self.compactor.stop()
                self.compactor = None
            self._writer.stop()
            self._writer = None
            if self._queue is not None:
                self.station.loop.unsubscribe(self._queue)
                self._queue = None

    def __enter__(self) -> "Recorder":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def recover(self) -> list[RecoveryResult]:
        """Recover interrupted episodes of the dataset now (also done by :meth:`connect`); each
        outcome is told on the event bus (see :meth:`WriterNotices.on_recovered`)."""
        results = recover_dataset(self.dataset)
        for r in results:
            self.on_recovered(r)
        self.recovered.extend(results)
        return results

    # ----- labels ----------------------------------------------------------------------------
    @property
    def labels(self) -> EpisodeLabels:
        """Labels the next episode will be recorded with."""
        with self._lock:
            return self._labels

    def set_labels(self, labels: EpisodeLabels | None = None, **changes: object) -> EpisodeLabels:
        """Replace or change (``instruction=``, ``paraphrases=``, ``operator=``...) the labels of
        the next episode."""
        with self._lock:
            base = labels if labels is not None else self._labels
            self._labels = dataclasses.replace(base, **changes) if changes else base
            return self._labels

    def next_task(self) -> EpisodeLabels:
        """Skip to the next task of the task list ("task.next")."""
        if self.tasks is None:
            raise RecorderError("no task list is loaded: load a task file to get proposals")
        return self._propose(self.tasks.next())

    def _propose(self, task) -> EpisodeLabels:
        with self._lock:
            self._labels = dataclasses.replace(self._labels, instruction=task.instruction,
                                               paraphrases=tuple(task.paraphrases), task=task.task)
            labels = self._labels
        self._emit("recorder.task_proposed", f"Next task: {labels.instruction}", task=labels.task)
        return labels

    # ----- episode lifecycle -----------------------------------------------------------------
    def start(self, labels: EpisodeLabels | None = None, *, seed: int | None = None,
              reset_scene: bool = True, drive: bool = True) -> str:
        """Start recording an episode.

        Args:
            labels: labels of this episode (default: :attr:`labels`).
            seed: scene seed for simulated robots (stored with the episode).
            reset_scene: call ``station.begin_episode`` first (resets a simulated scene and
                tells every action source the instruction).
            drive: start the session so the operator (or expert) can move the robot.

        Returns:
            The new episode's id.

        Raises:
            RecorderError: already recording, a camera without images (when
                the profile pauses on camera failure), too little disk, or the e-stop latched.
            LabelError: no instruction.
        """
        if self.compactor is not None:
            self.compactor.freeze()  # first: a background transcode never competes with this
        labels = (labels if labels is not None else self.labels).validated()
        # Which device drives is part of what the episode is (not just "teleop").
        labels = dataclasses.replace(labels, device=self.station.active_teleop or "")
        if self._writer is None:
            self.connect()  # first episode: prepare the dataset folder now
        with self._lock:
            if self._active is not None or self._starting:
                raise RecorderError("an episode is already being recorded: stop or discard it first")
            self._starting = True
        try:
            self._check_cameras()
            self._check_disk()
            self.dataset.make_reserve()  # given back if the disk fills during the episode
            if reset_scene:
                self.station.begin_episode(labels.instruction, seed)
                if seed is None:  # the seed the simulator chose, so the episode can be replayed
                    seed = getattr(self.station.robot, "episode_seed", None)
            self._wait_for_fresh_frames(self.clock.now())
            policy = self.station.arbiter.policy
            ep = new_episode(labels, seed, self.dataset.episode_stem, with_policy=policy is not None,
                             policy_id=str(getattr(policy, "policy_id", "") or ""),
                             episode_id=str(uuid.uuid4()), t_begin=self.clock.now())
            with self._lock:
                self._active = ep
                self._labels = labels
                self._episodes[ep.episode_id] = ep
                self._writer.add(ep)
            self._monitor.begin(ep.episode_id, labels.instruction)
            if drive:
                try:
                    self.station.session.start(self.station.session.mode)
                except SessionError as exc:
                    self._end(ep, discard=True)
                    raise RecorderError(f"cannot start the episode: {exc}") from None
        finally:
            with self._lock:
                self._starting = False
        self._emit("recorder.started", f"Recording: {labels.instruction}", episode=ep.episode_id)
        return ep.episode_id

    def stop(self, success: bool | None = None, *, judged_by: str = "operator") -> str:
        """Stop the open episode and save it (in the background).

        Args:
            success: the outcome; None keeps what was marked, else asks the robot (simulators
                judge their tasks), else unknown.
            judged_by: who decided ``success`` (stored as ``success_source``).

        Returns:
            The episode's id.
        """
        with self._lock:
            ep = self._active
        if ep is None:
            raise RecorderError("no episode is being recorded")
        live = None
        if success is None and ep.success is None and self.config.live_success:
            live = self._live_success(ep.labels.instruction)
        with self._lock:
            if success is not None:
                ep.success, ep.success_source = success_to_code(success), judged_by
            elif ep.success is None and live is not None:
                ep.success, ep.success_source = success_to_code(live), "robot"
        self._end(ep)
        if self.tasks is not None:
            self.tasks.mark_done(ep.labels.task)
            self._propose(self.tasks.next())
        else:
            self.set_labels(notes="")
        return ep.episode_id

    def discard(self) -> str:
        """Throw away the open episode, or else the last stopped one (it goes to the trash, so a
        mistaken discard can be restored from the dataset browser). Returns its id."""
        with self._lock:
            ep = self._active or self._last
            if ep is None or ep.discard:
                raise RecorderError("there is no episode to discard")
            ep.discard = True
            state = ep.state
        if ep.is_open:
            self._end(ep, discard=True)
        elif state in (EpisodeState.SAVED, EpisodeState.FAILED) and self._writer is not None:
            self._writer.post(lambda: self._writer and self._writer.settle(ep))
        if self.tasks is not None and ep.labels.task:
            self.tasks.mark_undone(ep.labels.task)
        self._emit("recorder.discarded", f"Episode discarded (moved to the trash): "
                   f"{ep.labels.instruction}", episode=ep.episode_id)
        return ep.episode_id

    def mark_success(self, success: bool | None) -> str:
        """Label the open episode, or else the last stopped one, as a success or failure."""
        with self._lock:
            ep = self._active or self._last
            if ep is None:
                raise RecorderError("there is no episode to mark")
            ep.success, ep.success_source = success_to_code(success), "operator"
            saved = ep.state == EpisodeState.SAVED
        if saved and self._writer is not None:
            writer = self._writer
            writer.post(lambda: writer.settle(ep))
        word = "unknown" if success is None else ("success" if success else "failure")
        self._emit("recorder.marked", f"Episode marked {word}", episode=ep.episode_id)
        return ep.episode_id

    def rerecord(self) -> str:
        """Discard the open (or last) episode and record it again: same labels, same seed."""
        with self._lock:
            ep = self._active or self._last
        if ep is None:
            raise RecorderError("there is no episode to record again")
        if not ep.discard:
            self.discard()
        return self.start(ep.labels, seed=ep.seed)

    def pause(self, reason: str = "paused by the operator") -> None:
        """Stop recording steps (and pause the robot) without ending the episode."""
        with self._lock:
            ep = self._active
            if ep is None or ep.state != EpisodeState.RECORDING:
                raise RecorderError("no episode is recording")
            ep.pauses.append([self.clock.now(), None])
            ep.state, ep.pause_reason = EpisodeState.PAUSED, reason
        self.station.session.pause(reason)
        self._emit("recorder.paused", f"Recording paused: {reason}", episode=ep.episode_id)

    def resume(self) -> None:
        """Continue a paused episode (the robot's session is started again)."""
        with self._lock:
            ep = self._active
            if ep is None or ep.state != EpisodeState.PAUSED:
                raise RecorderError("no episode is paused")
        self._check_cameras()
        with self._lock:
            for interval in ep.pauses:
                if interval[1] is None:
                    interval[1] = self.clock.now()
            ep.state, ep.pause_reason = EpisodeState.RECORDING, ""
        try:
            self.station.session.start(self.station.session.mode)
        except SessionError as exc:
            raise RecorderError(f"recording resumed but the robot cannot move: {exc}") from None
        self._emit("recorder.resumed", "Recording resumed", episode=ep.episode_id)

    def _end(self, ep: EpisodeRecording, discard: bool = False) -> None:
        with self._lock:
            if ep.t_end is None:
                ep.t_end = self.clock.now()
            if discard:
                ep.discard = True
            if ep.is_open:
                ep.state = EpisodeState.SAVING
            if self._active is ep:
                self._active = None
            self._last = ep
        if self._monitor.episode_id == ep.episode_id:
            self._monitor.begin(None)

    def poll_task(self) -> bool:
        """Follow the robot's verdict on the open episode's task (call a few times a second:
        the recorder dock's timer, ``vla-studio record``); it never waits for the loop.

        With :attr:`save_on_success_s` set, a recording episode whose task the robot has judged
        accomplished for that long is stopped and saved as a success (``success_source``
        "robot"). Returns True when this call did that.
        """
        with self._lock:
            ep = self._active
            recording = ep is not None and ep.state == EpisodeState.RECORDING
        if ep is None:
            return False
        verdict = self._monitor.poll(self.clock.now())
        with self._lock:
            if self._active is ep:  # the writer journals it: a crash keeps the verdict
                ep.robot_verdict = verdict.success
        settle = self.save_on_success_s
        if not (recording and settle is not None and verdict.success and verdict.held_s >= settle):
            return False
        with self._lock:
            if self._active is not ep:
                return False  # stopped meanwhile by someone else
        try:
            self.stop(success=True, judged_by="robot")
        except RecorderError:
            return False
        self._emit("recorder.task_done", f"Task accomplished: {ep.labels.instruction}; saving "
                   "the episode", episode=ep.episode_id)
        return True

    def _live_success(self, instruction: str) -> bool | None:
        try:
            return self.station.loop.call_on_loop(
                lambda: self.station.robot.episode_success(instruction), timeout_s=1.0)
        except Exception as exc:  # a judgement is a bonus, never a reason to lose the stop
            log.warning("the robot could not judge success: %s", exc)
            return None

    # ----- checks ----------------------------------------------------------------------------
    def _check_cameras(self) -> None:
        problems = cameras_without_images(self.station)
        if problems:
            raise RecorderError(problems[0])

    def _wait_for_fresh_frames(self, since: float) -> None:
        """An episode never starts on a picture of the scene before the reset."""
        problems = cameras_without_fresh_frames(self.station, since)
        if problems:
            raise RecorderError(problems[0])

    def _check_disk(self) -> None:
        free = self.dataset.free_bytes()
        need = self.config.min_free_mb * 1e6
        if free < need:
            raise RecorderError(f"only {free / 1e6:.0f} MB free in {self.dataset.root}; recording "
                                f"needs at least {need / 1e6:.0f} MB. Free disk space or choose "
                                "another dataset folder.")

    def preflight(self) -> Preflight:
        """How many minutes of recording the free disk allows (measured from this station's
        recent episodes when there are some, else estimated from the cameras).

        Raises:
            OSError: the disk cannot even be asked for its free space.
        """
        reserve = int(self.config.min_free_mb * 1e6)
        try:
            return station_preflight(self.station, self.dataset, self.index, reserve)
        except (OSError, sqlite3.Error) as exc:  # e.g. a full disk: the index cannot be opened
            log.warning("the dataset index is unusable (%s); estimating the recording rate", exc)
            return station_preflight(self.station, self.dataset, _NO_INDEX, reserve)

    # ----- state -----------------------------------------------------------------------------
    def status(self) -> RecorderStatus:
        with self._lock:
            active, last, labels = self._active, self._last, self._labels
            if active is None:
                state = RecorderState.IDLE
            else:
                state = RecorderState.PAUSED if active.state == EpisodeState.PAUSED else RecorderState.RECORDING
            episode = EpisodeInfo.of(active) if active is not None else None
            last_info = EpisodeInfo.of(last) if last is not None else None
            saved = self._saved
        writer, q = self._writer, self._queue
        busy = writer.busy() if writer is not None else 0
        fraction = q.qsize() / q.maxsize if q is not None else 0.0
        high = q.high_water / q.maxsize if q is not None else 0.0
        free = writer.free_bytes if writer is not None else 0
        rate = writer.bytes_per_second if writer is not None else 0.0
        minutes = (free - self.config.min_free_mb * 1e6) / rate / 60.0 if rate > 0 else float("inf")
        task = self._monitor.verdict(self.clock.now()) if active is not None else TaskVerdict()
        backlog = writer.backlog_s() if writer is not None else 0.0
        return RecorderStatus(state, episode, last_info, labels, max(0, busy - (active is not None)),
                              saved, fraction, high, free, max(0.0, minutes), task, backlog)

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every stopped episode is finished on disk (scripts and tests)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                active = self._active
            writer = self._writer
            pending = (writer.busy() if writer is not None else 0) - (active is not None)
            if pending <= 0:
                return True
            if time.monotonic() >= deadline:
                return False
            self.clock.sleep(0.01)  # lock-step: the steps after the stop finish the file

    def episode(self, episode_id: str) -> EpisodeInfo | None:
        """An episode recorded since :meth:`connect`, by id."""
        with self._lock:
            ep = self._episodes.get(episode_id)
            return EpisodeInfo.of(ep) if ep is not None else None

    @property
    def last_episode(self) -> EpisodeInfo | None:
        with self._lock:
            return EpisodeInfo.of(self._last) if self._last is not None else None

    def _emit(self, kind: str, message: str, level: int = logging.INFO, **data: object) -> None:
        self.station.events.emit(kind, message, level, **data)
