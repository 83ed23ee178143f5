"""The recorder's writer thread: steps in, episode files out.

```
 control loop --Step--> StepQueue --> recorder-writer thread
                                       | route: which open episode's window holds step.t?
                                       | backlog: a step too old to commit in time is shed;
                                       |   shed and unqueued steps are recorded as holes
                                       | camera check: missing/stale frame -> pause or gap
                                       | StepEncoder: JPEG/PNG once per frame, depth chunks
                                       | every commit interval: append + commit (flush, fsync)
                                       |   and the verdict so far, into the file's journal
                                       | episode over: seal, rename, index, settle labels
 recorder (any thread) --post(fn)-->   | deferred jobs: relabel or trash a saved episode
```
Only this thread opens episode files for writing, so the operator never waits for the disk: a
stopped episode is finished here (:mod:`vla_studio.data.recorder_finishing`) while the next one
is already being recorded.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

from vla_studio.core.clocks import HOST_CLOCK
from vla_studio.core.events import StepQueue
from vla_studio.core.types import Step
from vla_studio.data.dataset import Dataset
from vla_studio.data.dataset_index import DatasetIndex
from vla_studio.data.episode_file import SUCCESS_SUCCESS, SUCCESS_UNKNOWN
from vla_studio.data.episode_writer import DiskFullError, EpisodeFileWriter
from vla_studio.data.labels import InstructionHistory
from vla_studio.data.recorder_backlog import BEHIND_ALARM_INTERVAL_S, BacklogPolicy, TickGaps
from vla_studio.data.recorder_finishing import EpisodeFinisher, _Open
from vla_studio.data.recording import (EpisodeRecording, EpisodeState, RecorderConfig,
                                       WriterListener, build_schema, start_attrs)
from vla_studio.data.step_encoder import StepEncoder

log = logging.getLogger(__name__)
DISK_CHECK_INTERVAL_S = 2.0


class RecorderWriter(EpisodeFinisher):
    """Owns the ``recorder-writer`` thread (started by :meth:`start`, joined by :meth:`stop`).

    Args:
        station: cameras, robot features and the profile's recording settings.
        dataset: where files go.
        index: updated after each save.
        history: instructions of saved episodes are added to it.
        queue: the loop's step queue for the recorder.
        lock: the recorder's lock guarding every episode's window and labels.
        listener: receives camera, disk and completion notices.
        config: recorder tuning.
        profile_text: the station profile's TOML text, stored with every episode.
    """

    def __init__(self, station, dataset: Dataset, index: DatasetIndex, history: InstructionHistory,
                 queue: StepQueue[Step], lock: threading.RLock, listener: WriterListener,
                 config: RecorderConfig, profile_text: str) -> None:
        self.station, self.dataset, self.index, self.history = station, dataset, index, history
        self.queue, self.lock, self.listener, self.config = queue, lock, listener, config
        self.profile_text = profile_text
        # Steps are stamped on the station's clock; their ages are measured on it too (host
        # time, or simulated time in lock-step). Deferred jobs wait on host time.
        self.clock = getattr(station, "clock", HOST_CLOCK)
        self.pause_on_camera_failure = station.profile.recording.on_camera_failure == "pause"
        self._open: list[_Open] = []
        self._abandoned: list[_Open] = []
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._delayed: list[tuple[float, Callable[[], None]]] = []  # writer thread only
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_disk_check = 0.0
        self.backlog = BacklogPolicy(config.max_backlog_s, config.commit_interval_s)
        self._gaps = TickGaps()
        self._last_taken_t: float | None = None
        self.free_bytes = 0
        self.bytes_per_second = 0.0

    # ----- lifecycle (recorder's thread) -----------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.free_bytes = self.dataset.free_bytes()
        self._thread = threading.Thread(target=self._run, name="recorder-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Finish every episode already stopped, then end the thread. Open episodes must have
        been stopped by the caller first."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("recorder writer did not finish within %.0f s", timeout_s)

    def add(self, ep: EpisodeRecording) -> None:
        """Start routing steps to ``ep`` (call under the lock)."""
        self._open.append(_Open(ep))

    def post(self, job: Callable[[], None], delay_s: float = 0.0) -> None:
        """Run ``job`` on the writer thread (relabel or trash a saved episode), after
        ``delay_s`` seconds."""
        if delay_s > 0:
            self._delayed.append((time.monotonic() + delay_s, job))
        else:
            self._jobs.append(job)

    def busy(self) -> int:
        """Episodes not finished yet."""
        with self.lock:
            return len(self._open)

    def backlog_s(self) -> float:
        """Age of the oldest step not yet committed to a file (what a crash would lose now)."""
        with self.lock:
            oldest = [o.oldest_pending_t for o in self._open if o.oldest_pending_t is not None]
            if self.queue.qsize() and self._last_taken_t is not None:
                oldest.append(self._last_taken_t)  # what is queued is newer than this
        return max(0.0, self.clock.now() - min(oldest)) if oldest else 0.0

    # ----- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                if self._iterate():
                    return
            except Exception:  # a bug must not silence the recorder: log it and keep going
                log.exception("recorder writer iteration failed")
                time.sleep(0.05)

    def _iterate(self) -> bool:
        """One pass: jobs, the next step, commits, finished episodes, disk. True when done."""
        step = self.queue.get(timeout=0.05)
        if self._delayed:
            due = [job for t, job in self._delayed if t <= time.monotonic() or self._stop.is_set()]
            self._delayed = [(t, job) for t, job in self._delayed if job not in due]
            self._jobs.extend(due)
        while self._jobs:
            self._run_job(self._jobs.popleft())
        if step is not None:
            self._on_step(step)
        now = self.clock.now()
        for o in list(self._open):
            if o.file is not None and not o.failed:
                self._commit_verdict(o)
            if o.encoder is not None and o.encoder.pending and not o.failed and \
                    self.backlog.commit_due(o.last_commit, o.oldest_pending_t, now):
                self._commit(o)
        self._finish_ready(now)
        if now >= self._next_disk_check:
            self._check_disk(now)
        return self._stop.is_set() and not self._open and not self._jobs \
            and not self._delayed and self.queue.qsize() == 0

    def _run_job(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            log.exception("recorder job failed")

    def _on_step(self, step: Step) -> None:
        now = self.clock.now()
        missed = self._gaps.missed(step)  # the loop's queue was full
        target = None
        with self.lock:
            self._last_taken_t = step.t
            for o in self._open:
                ep = o.ep
                if missed:
                    o.drops.lose(sum(1 for t in missed if ep.includes(t)), o.last_recorded_t,
                                 ep.t_begin)
                if ep.t_end is not None and step.t >= ep.t_end:
                    o.saw_after_end = True
                elif target is None and not o.failed and ep.includes(step.t):
                    target = o
        if target is None:
            return
        if self.backlog.is_stale(step, now):  # too old to be committed within the bound
            target.drops.lose(1, target.last_recorded_t, target.ep.t_begin)
            self._behind(target, now - step.t)
            return
        try:
            self._write_step(target, step)
        except Exception as exc:
            self._fail(target, exc)

    def _write_step(self, o: _Open, step: Step) -> None:
        ep = o.ep
        if o.encoder is None:
            schema = build_schema(self.station, step, ep.with_policy)
            o.encoder = StepEncoder(schema)
            o.camera_start = {n: (s.dropped, s.late) for n, s in
                              ((n, c.status()) for n, c in self.station.cameras.items())}
        missing = o.encoder.missing_cameras(step)
        if missing and self.pause_on_camera_failure:
            with self.lock:
                if not (ep.is_open and ep.includes(step.t)):
                    return
            self.listener.on_camera_lost(ep, missing)  # the robot holds first
            with self.lock:
                ep.pauses.append([step.t, None])
                if ep.is_open:
                    ep.state = EpisodeState.PAUSED
                    ep.pause_reason = f"camera {', '.join(missing)} lost"
            self._commit(o)
            return
        if o.file is None:
            self._create_file(o, step)
        for cam in missing:
            ep.flags.add("camera_gap")
            if cam not in o.gaps_reported:
                o.gaps_reported.add(cam)
                self.listener.on_camera_gap(ep, cam)
        step = o.drops.mark(step, o.encoder.steps)  # flags the step after a hole
        if o.encoder.pending == 0:
            o.oldest_pending_t = step.t
        o.encoder.add(step, missing)
        o.last_recorded_t = step.t
        ep.steps = o.encoder.steps
        ep.frames = sum(s.frames for s in o.encoder.camera_stats.values())
        if ep.first_t is None:
            ep.first_t = step.t
        ep.last_t = step.t

    def _create_file(self, o: _Open, step: Step) -> None:
        ep = o.ep
        assert o.encoder is not None
        path = self.dataset.recording_path(ep.stem)
        lock = self.dataset.lock_for(path)
        if not lock.acquire():
            raise RuntimeError(f"{path.name} is locked by another process")
        o.lock = lock
        writer = EpisodeFileWriter(path, o.encoder.schema,
                                   start_attrs(self.station, ep, o.encoder.schema, self.profile_text),
                                   fsync_interval_s=self.config.fsync_interval_s,
                                   min_free_bytes=int(self.config.min_free_mb * 1e6),
                                   space_guard=self.config.space_guard)
        ep.path = path
        try:
            writer.create()
        except BaseException:
            lock.release()
            o.lock = None
            raise
        o.file = writer
        o.last_commit = self.clock.now()

    def _commit(self, o: _Open) -> None:
        if o.file is None or o.encoder is None or o.failed:
            return
        batch, rows = o.encoder.take(), o.drops.take_rows()
        o.oldest_pending_t = None
        if o.out_of_space:
            return  # past the stop: nothing more fits
        try:
            o.file.append(batch)
            o.file.add_drops(rows)
            o.file.commit()
        except DiskFullError as exc:
            self._out_of_space(o, exc)
            return
        except Exception as exc:
            self._fail(o, exc)
            return
        o.last_commit = now = self.clock.now()
        o.ep.bytes_written = sum(o.file.data_bytes.values())
        if len(batch):
            backlog = now - batch.timestamp[0]  # how long its oldest step was at risk
            o.drops.worst_backlog_s = max(o.drops.worst_backlog_s, backlog)
            if backlog > self.backlog.max_backlog_s:
                self._behind(o, backlog)
        if o.drops.total and "steps_dropped" not in o.ep.flags:
            with self.lock:
                o.ep.flags.add("steps_dropped")
            self.listener.on_steps_dropped(o.ep, o.drops.total)

    def _commit_verdict(self, o: _Open) -> None:
        """Journal the verdict so far: the operator's (or the stop's) decision, else the robot's
        live judgement that the task is accomplished."""
        assert o.file is not None
        with self.lock:
            ep = o.ep
            if ep.success is not None:
                verdict = (ep.success, ep.success_source or "operator")
            elif ep.robot_verdict:
                verdict = (SUCCESS_SUCCESS, "robot")
            else:
                verdict = (SUCCESS_UNKNOWN, "")
        try:
            o.file.commit_verdict(*verdict)
        except Exception as exc:
            self._fail(o, exc)

    def _behind(self, o: _Open, lag_s: float) -> None:
        """The writer fell behind the bound: flag the episode and tell the operator (again
        every so often while it lasts)."""
        now = self.clock.now()
        with self.lock:
            o.ep.flags.add("writer_behind")
        if now - o.drops.alarmed_at >= BEHIND_ALARM_INTERVAL_S:
            o.drops.alarmed_at = now
            log.warning("recorder writer %.2f s behind; %d step(s) dropped", lag_s, o.drops.total)
            self.listener.on_writer_behind(o.ep, lag_s, o.drops.total)

    # ----- disk ------------------------------------------------------------------------------
    def _check_disk(self, now: float) -> None:
        self._next_disk_check = now + DISK_CHECK_INTERVAL_S
        try:
            self.free_bytes = self.dataset.free_bytes()
        except OSError as exc:
            log.warning("cannot check free disk space: %s", exc)
            return
        active = [o for o in self._open if o.ep.is_open and o.file is not None]
        if not active:
            return
        o = active[-1]
        ep = o.ep
        rate = ep.bytes_written / ep.duration_s if ep.duration_s > 1.0 else 0.0
        if rate > 0:
            self.bytes_per_second = rate
        reserve = self.config.min_free_mb * 1e6
        minutes = (self.free_bytes - reserve) / rate / 60.0 if rate > 0 else float("inf")
        if self.free_bytes < reserve:
            ep.flags.add("disk_full")
            self.listener.on_disk_low(ep, self.free_bytes, max(0.0, minutes), True)
        elif minutes < self.config.low_disk_minutes and not o.low_disk_warned:
            o.low_disk_warned = True
            self.listener.on_disk_low(ep, self.free_bytes, minutes, False)
