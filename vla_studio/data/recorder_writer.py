"""The recorder's writer thread: steps in, episode files out.

```
 control loop --Step--> StepQueue --> recorder-writer thread
                                       | route: which open episode's window holds step.t?
                                       | camera check: missing/stale frame -> pause or gap
                                       | StepEncoder: JPEG/PNG once per frame, depth chunks
                                       | every commit interval: append + commit (flush, fsync)
                                       | episode over: seal, rename, index, settle labels
 recorder (any thread) --post(fn)-->   | deferred jobs: relabel or trash a saved episode
```
Only this thread opens episode files for writing, so the operator never waits for the disk: a
stopped episode is finished here while the next one is already being recorded.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from vla_studio.core.events import StepQueue
from vla_studio.core.types import Step
from vla_studio.data.dataset import Dataset, EpisodeLock, describe_error, is_storage_error
from vla_studio.data.dataset_index import DatasetIndex
from vla_studio.data.episode_file import SOURCE_LABELS, STATUS_COMPLETE
from vla_studio.data.episode_writer import (DiskFullError, EpisodeFileWriter, fsync_path,
                                            seal_episode, set_success)
from vla_studio.data.hdf5_superblock import SuperblockError, clear_write_flags
from vla_studio.data.labels import InstructionHistory
from vla_studio.data.recording import (EpisodeRecording, EpisodeState, RecorderConfig,
                                       WriterListener, build_schema, start_attrs)
from vla_studio.data.step_encoder import StepEncoder

log = logging.getLogger(__name__)
DISK_CHECK_INTERVAL_S = 2.0
SETTLE_RETRIES = 40  # a saved file held open by a reader: retry relabelling for ~10 s
SETTLE_RETRY_S = 0.25


@dataclass(eq=False)
class _Open:
    """Writer-side state of one episode (never touched by other threads)."""

    ep: EpisodeRecording
    encoder: StepEncoder | None = None
    file: EpisodeFileWriter | None = None
    lock: EpisodeLock | None = None
    saw_after_end: bool = False
    failed: bool = False
    out_of_space: bool = False
    last_commit: float = 0.0
    camera_start: dict[str, tuple[int, int]] = field(default_factory=dict)
    queue_dropped_start: int = 0
    gaps_reported: set[str] = field(default_factory=set)
    low_disk_warned: bool = False


class RecorderWriter:
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
        self.pause_on_camera_failure = station.profile.recording.on_camera_failure == "pause"
        self._open: list[_Open] = []
        self._abandoned: list[_Open] = []
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._delayed: list[tuple[float, Callable[[], None]]] = []  # writer thread only
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_disk_check = 0.0
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
        now = time.monotonic()
        for o in list(self._open):
            if o.encoder is not None and o.encoder.pending and not o.failed and \
                    now - o.last_commit >= self.config.commit_interval_s:
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
        target = None
        with self.lock:
            for o in self._open:
                ep = o.ep
                if ep.t_end is not None and step.t >= ep.t_end:
                    o.saw_after_end = True
                elif target is None and not o.failed and ep.includes(step.t):
                    target = o
        if target is None:
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
            o.queue_dropped_start = self.queue.dropped
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
        o.encoder.add(step, missing)
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
        o.last_commit = time.monotonic()

    def _commit(self, o: _Open) -> None:
        if o.file is None or o.encoder is None or o.failed:
            return
        if o.out_of_space:
            o.encoder.take()  # past the stop: nothing more fits
            return
        try:
            o.file.append(o.encoder.take())
            o.file.commit()
        except DiskFullError as exc:
            self._out_of_space(o, exc)
            return
        except Exception as exc:
            self._fail(o, exc)
            return
        o.last_commit = time.monotonic()
        o.ep.bytes_written = sum(o.file.data_bytes.values())
        dropped = self.queue.dropped - o.queue_dropped_start
        if dropped and "steps_dropped" not in o.ep.flags:
            o.ep.flags.add("steps_dropped")
            self.listener.on_steps_dropped(o.ep, dropped)

    # ----- finishing -------------------------------------------------------------------------
    def _finish_ready(self, now: float) -> None:
        queue_empty = self.queue.qsize() == 0
        for o in list(self._open):
            ep = o.ep
            with self.lock:
                end = ep.t_end
            if end is None:
                continue
            if o.failed or o.saw_after_end or (queue_empty and now - end > self.config.finish_grace_s):
                self._finish(o)

    def _finish(self, o: _Open) -> None:
        ep = o.ep
        try:
            if o.file is None:
                with self.lock:
                    ep.state = EpisodeState.FAILED if o.failed else \
                        EpisodeState.DISCARDED if ep.discard else EpisodeState.EMPTY
                    if o.failed:
                        ep.error = f"Nothing was saved. {ep.error}"
            else:
                if not o.failed:
                    try:
                        self._commit(o)
                        if not o.failed:
                            o.file.commit(force_fsync=True)
                            o.file.close()
                            self._seal(o, o.file.committed_steps)
                    except Exception as exc:
                        self._fail(o, exc)
                if o.failed:
                    self._salvage(o)
        except Exception as exc:
            log.exception("finishing episode %s failed", ep.episode_id)
            if o.lock:
                o.lock.release(remove=False)  # let recovery take the file
            with self.lock:
                ep.state = EpisodeState.FAILED
                ep.error = ep.error or f"could not finish the episode file: {exc}"
        finally:
            with self.lock:
                if o in self._open:
                    self._open.remove(o)
            ep.done.set()
            self.listener.on_finished(ep)

    def _seal(self, o: _Open, num_steps: int) -> None:
        ep, encoder = o.ep, o.encoder
        assert ep.path is not None and encoder is not None
        if num_steps == 0:
            ep.path.unlink(missing_ok=True)
            if o.lock:
                o.lock.release()
            with self.lock:
                ep.state = EpisodeState.DISCARDED if ep.discard else EpisodeState.EMPTY
            return
        camera_stats = {}
        for name, stats in encoder.camera_stats.items():
            entry = {"frames": stats.frames, "duplicates": stats.duplicates, "gaps": stats.gaps,
                     "shape_mismatches": stats.shape_mismatches, "drops": None, "late": None}
            cam = self.station.cameras.get(name)
            if cam is not None and name in o.camera_start:
                status = cam.status()
                entry["drops"] = status.dropped - o.camera_start[name][0]
                entry["late"] = status.late - o.camera_start[name][1]
            camera_stats[name] = entry
        with self.lock:
            success, success_source = ep.success_code, ep.success_source
            flags = set(ep.flags)
        if sum(encoder.safety_counts.values()):
            flags.add("safety_clamps")
        attrs = {"status": STATUS_COMPLETE, "flags": sorted(flags), "success_source": success_source,
                 "safety_counts": dict(encoder.safety_counts),
                 "source_counts": {label: encoder.source_counts.get(label, 0) for label in SOURCE_LABELS},
                 "camera_stats": camera_stats,
                 "dropped_steps": max(0, self.queue.dropped - o.queue_dropped_start)}
        seal_episode(ep.path, num_steps, attrs, success)
        ep.written_success = success
        if o.file is not None:
            ep.steps, ep.last_t = num_steps, o.file.committed_last_t
        final = self.dataset.final_path(ep.stem)
        os.replace(ep.path, final)
        fsync_path(final.parent)
        ep.path = final
        if o.lock:
            o.lock.release()
        if not ep.discard:
            for text in ep.labels.instructions:
                self.history.add(text)
        self.settle(ep)

    def settle(self, ep: EpisodeRecording, attempt: int = 0) -> None:
        """Bring a sealed episode's file in line with its labels: success marked after the
        stop, or a discard (moves it to the trash). Writer thread only; never raises. A file
        another reader holds open (replay, export) is retried for a while."""
        try:
            self._settle(ep)
        except Exception as exc:
            with self.lock:
                if ep.state == EpisodeState.SAVING:
                    ep.state = EpisodeState.SAVED
            if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and \
                    attempt < SETTLE_RETRIES and not self._stop.is_set():
                log.info("episode %s is busy (%s); retrying", ep.path, exc)
                self.post(lambda: self.settle(ep, attempt + 1), delay_s=SETTLE_RETRY_S)
                return
            log.exception("updating episode %s failed", ep.episode_id)
            with self.lock:
                ep.error = f"could not update the saved episode {ep.path}: {exc}"

    def _settle(self, ep: EpisodeRecording) -> None:
        while True:
            with self.lock:
                discard = ep.discard and ep.state != EpisodeState.DISCARDED
                success, source = ep.success_code, ep.success_source
                if not discard and success == ep.written_success:
                    if ep.state not in (EpisodeState.DISCARDED, EpisodeState.FAILED):
                        ep.state = EpisodeState.SAVED
                    break
            assert ep.path is not None
            if not ep.path.exists():  # moved by the dataset browser (trash / restore)
                for folder in (self.dataset.episodes_dir, self.dataset.trash_dir):
                    if (folder / ep.path.name).exists():
                        ep.path = folder / ep.path.name
                        break
            if discard and ep.path.parent == self.dataset.trash_dir:
                with self.lock:
                    ep.state = EpisodeState.DISCARDED
                continue
            if discard:
                old = ep.path
                ep.path = self.dataset.trash(old)
                self.index.forget([old])
                with self.lock:
                    ep.state = EpisodeState.DISCARDED
            else:
                set_success(ep.path, success, source)
                ep.written_success = success
        if ep.path is not None:
            self.index.update(ep.path)

    # ----- failures --------------------------------------------------------------------------
    def _fail(self, o: _Open, exc: BaseException) -> None:
        if o.failed:
            return
        o.failed = True
        storage = is_storage_error(exc)
        if storage:
            self.dataset.release_reserve()  # room to close the file cleanly
        log.error("recording episode %s failed: %s", o.ep.episode_id, exc, exc_info=not storage)
        reason = describe_error(exc)
        if storage:
            message = (f"Recording stopped: the disk refused a write ({reason}). What was "
                       "recorded up to the last second is kept. Free disk space or choose another "
                       "dataset folder before recording again.")
        else:
            message = f"Recording stopped: writing the episode failed ({reason})."
        with self.lock:
            o.ep.flags.add("write_failed")
            o.ep.error = message
            if o.ep.t_end is None:
                o.ep.t_end = time.monotonic()
        self.listener.on_write_failed(o.ep, message, storage)

    def _out_of_space(self, o: _Open, exc: DiskFullError) -> None:
        """The next batch would not fit: end the episode at its last commit (the file is intact
        and is saved normally)."""
        ep = o.ep
        o.out_of_space = True
        message = (f"Recording stopped: {exc.strerror}. What was recorded so far is kept. Free "
                   "disk space or choose another dataset folder before recording again.")
        log.error("%s", message)
        with self.lock:
            ep.flags.add("disk_full")
            ep.error = message
            if ep.t_end is None:
                ep.t_end = time.monotonic()
        self.listener.on_write_failed(ep, message, True)

    def _salvage(self, o: _Open) -> None:
        """Save what was committed of a failed episode; leave it to recovery if even that fails."""
        ep, writer = o.ep, o.file
        assert writer is not None and ep.path is not None
        if o.encoder is not None:
            o.encoder.take()  # not committed: dropped
        if writer.is_open and not writer.has_room():
            writer.abandon()
            self._abandoned.append(o)  # its lock stays held: recovery waits for the next start
            with self.lock:
                ep.state = EpisodeState.FAILED
                ep.error = (f"{ep.error} The recorded part is kept in {ep.path} and will be "
                            "recovered when the application is started again with free space.")
            return
        try:
            writer.close()
        except Exception as exc:  # the handle is parked either way
            log.warning("closing %s after a write failure: %s", ep.path, exc)
        try:
            try:
                clear_write_flags(ep.path)
            except SuperblockError as exc:
                log.warning("%s", exc)
            self._seal(o, writer.committed_steps)
        except Exception as exc:
            log.error("could not save %s after the failure: %s", ep.path, exc)
            if o.lock:
                o.lock.release(remove=False)
            with self.lock:
                ep.state = EpisodeState.FAILED
                ep.error = (f"{ep.error} The recorded part is kept in {ep.path} and will be "
                            f"recovered at the next start, once there is space.")

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
