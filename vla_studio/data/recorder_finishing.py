"""The writer thread's finishing half: sealing a stopped episode, settling its labels, and what
happens when writing fails or the disk fills.

Split from :mod:`vla_studio.data.recorder_writer` to keep that module about taking steps in;
:class:`EpisodeFinisher` is a mixin of :class:`~vla_studio.data.recorder_writer.RecorderWriter`
and runs on its thread only. It uses the writer's ``station``, ``dataset``, ``index``,
``history``, ``queue``, ``lock``, ``listener``, ``config``, ``_open``, ``_abandoned``,
``_stop``, ``post``, ``_commit`` and ``_commit_verdict``.

A stopped episode is committed one last time (verdict and trailing drops included), closed,
sealed (cut to the committed steps, final attributes, journal removed, disk reserve given
back), renamed to ``.h5`` and indexed. When the disk is full the file's own reserve (see
:mod:`vla_studio.data.file_space`) is what closing and sealing write into.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable

from vla_studio.data.dataset import EpisodeLock, describe_error, is_storage_error
from vla_studio.data.episode_file import SOURCE_LABELS, STATUS_COMPLETE
from vla_studio.data.episode_writer import (DiskFullError, EpisodeFileWriter, fsync_path,
                                            seal_episode, set_success)
from vla_studio.data.hdf5_superblock import SuperblockError, clear_write_flags
from vla_studio.data.recorder_backlog import EpisodeDrops
from vla_studio.data.recording import EpisodeRecording, EpisodeState
from vla_studio.data.step_encoder import StepEncoder

log = logging.getLogger(__name__)
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
    drops: EpisodeDrops = field(default_factory=EpisodeDrops)
    last_recorded_t: float | None = None
    oldest_pending_t: float | None = None  # the first step of the batch not yet committed
    gaps_reported: set[str] = field(default_factory=set)
    low_disk_warned: bool = False



class EpisodeFinisher:
    """Finishing, settling and failure handling of :class:`RecorderWriter` (a mixin)."""

    # ----- finishing -------------------------------------------------------------------------
    def _finish_ready(self, now: float) -> None:
        queue_empty = self.queue.qsize() == 0
        # In real time a step ticked before the end may still be on its way for a moment; in
        # lock-step every step ticked before ``now`` is already queued (the driver emits each
        # tick before the clock moves on).
        realtime = self.clock.realtime
        for o in list(self._open):
            ep = o.ep
            with self.lock:
                end = ep.t_end
            if end is None:
                continue
            quiet = (now - end > self.config.finish_grace_s) if realtime else now >= end
            if o.failed or o.saw_after_end or (queue_empty and quiet):
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
                        self._commit_verdict(o)
                        o.drops.close(o.encoder.steps if o.encoder else 0,
                                      ep.t_end or self.clock.now())
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
                 "worst_backlog_s": round(o.drops.worst_backlog_s, 4)}
        if ep.with_policy:  # what the Episodes list shows of a policy run
            attrs.update(encoder.policy_stats.attrs())
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
                self._index(lambda: self.index.forget([old]))
                with self.lock:
                    ep.state = EpisodeState.DISCARDED
            else:
                set_success(ep.path, success, source)
                ep.written_success = success
        if ep.path is not None:
            path = ep.path
            self._index(lambda: self.index.update(path))

    @staticmethod
    def _index(change: Callable[[], object]) -> None:
        """Update the dataset index, a cache of the files: a failure (a full disk) is logged and
        the index catches up from the files on its next refresh."""
        try:
            change()
        except Exception as exc:
            log.warning("the dataset index could not be updated (%s); it is rebuilt from the "
                        "episode files on its next refresh", exc)

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
                o.ep.t_end = self.clock.now()
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
                ep.t_end = self.clock.now()
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

