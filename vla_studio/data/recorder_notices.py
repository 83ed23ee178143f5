"""What the recorder does when its writer thread reports news (the ``WriterListener`` side), and
how it tells the operator what recovery did.

Split from :mod:`vla_studio.data.recorder` to keep that module about the lifecycle; these methods
run on the writer thread (recovery news: the recorder's) and only pause the session, end the
episode and tell the operator.
"""

from __future__ import annotations

import logging

from vla_studio.data.recording import EpisodeRecording, EpisodeState
from vla_studio.data.recovery import RecoveryResult

log = logging.getLogger(__name__)


class WriterNotices:
    """Writer-thread notices of :class:`~vla_studio.data.recorder.Recorder` (a mixin: it uses
    the recorder's ``station``, ``dataset``, ``index``, ``config``, ``tasks``, ``_lock``,
    ``_saved``, ``_end`` and ``_emit``)."""

    def on_recovered(self, r: RecoveryResult) -> None:
        """Tell the outcome of recovering one file: ``recorder.recovered``,
        ``recovery.quarantined`` (it cannot be repaired and was moved to ``damaged/``; told
        once, as it is never retried) or ``recorder.recovery_failed`` (e.g. a full disk; retried
        at the next start)."""
        if r.outcome in ("recovered", "renamed") and r.path is not None:
            try:
                self.index.update(r.path)
            except Exception as exc:  # the index is a cache of the files; it catches up later
                log.warning("the dataset index could not be updated: %s", exc)
            self._emit("recorder.recovered", r.message, logging.WARNING, path=str(r.path))
        elif r.outcome == "quarantined":
            self._emit("recovery.quarantined", r.message, logging.WARNING, file=str(r.source),
                       path=str(r.path), reason=r.reason)
        elif r.outcome in ("failed", "no_space"):
            self._emit("recorder.recovery_failed", r.message, logging.ERROR, path=str(r.source))

    def on_camera_lost(self, ep: EpisodeRecording, cameras: list[str]) -> None:
        names = ", ".join(f"'{c}'" for c in cameras)
        self.station.session.pause(f"camera {names} lost")
        self._emit("recorder.paused", f"Camera {names} stopped delivering images: the episode is "
                   "paused and the robot holds. Reconnect it and resume, or stop or discard the "
                   "episode.", logging.WARNING, episode=ep.episode_id, cameras=cameras)

    def on_camera_gap(self, ep: EpisodeRecording, camera: str) -> None:
        self._emit("recorder.camera_gap", f"Camera '{camera}' has no image: recording continues "
                   "without it and the gap is flagged in the episode.", logging.WARNING,
                   episode=ep.episode_id, camera=camera)

    def on_steps_dropped(self, ep: EpisodeRecording, count: int) -> None:
        self._emit("recorder.steps_dropped", f"The recorder fell behind and {count} step(s) were "
                   "dropped; the episode is flagged. Close other programs or lower the camera "
                   "resolution.", logging.ERROR, episode=ep.episode_id, count=count)

    def on_writer_behind(self, ep: EpisodeRecording, lag_s: float, dropped: int) -> None:
        limit = self.config.max_backlog_s
        lost = (f"; {dropped} step(s) were dropped so that a crash never loses more than "
                f"{limit:g} s, and the episode records where") if dropped else ""
        self._emit("recorder.behind", f"The recorder fell {lag_s:.1f} s behind the robot{lost}. "
                   "Close other programs or lower the camera resolution or rate.",
                   logging.WARNING, episode=ep.episode_id, lag_s=round(lag_s, 3),
                   dropped=dropped)

    def on_disk_low(self, ep: EpisodeRecording, free_bytes: int, minutes: float, stop: bool) -> None:
        if not stop:
            self._emit("recorder.disk_low", f"Disk almost full: about {minutes:.1f} min of "
                       f"recording left ({free_bytes / 1e6:.0f} MB free).", logging.WARNING,
                       free_bytes=free_bytes)
            return
        self._end(ep)
        self.station.session.pause("disk full")
        self._emit("recorder.disk_full", f"Recording stopped: only {free_bytes / 1e6:.0f} MB free "
                   f"in {self.dataset.root}. The episode was saved. Free disk space or choose "
                   "another dataset folder before recording again.", logging.ERROR,
                   episode=ep.episode_id, free_bytes=free_bytes)

    def on_write_failed(self, ep: EpisodeRecording, message: str, storage: bool) -> None:
        self._end(ep)
        self.station.session.pause("recording failed")
        self._emit("recorder.disk_full" if storage else "recorder.write_failed", message,
                   logging.ERROR, episode=ep.episode_id)

    def on_finished(self, ep: EpisodeRecording) -> None:
        with self._lock:
            state, path, error = ep.state, ep.path, ep.error
            if state == EpisodeState.SAVED:
                self._saved += 1
        if state == EpisodeState.SAVED:
            self._emit("recorder.saved", f"Saved {path.name if path else ''}: {ep.steps} steps, "
                       f"{ep.duration_s:.1f} s", episode=ep.episode_id, path=str(path))
        elif state == EpisodeState.EMPTY:
            self._emit("recorder.empty", "The episode had no steps; nothing was saved.",
                       logging.WARNING, episode=ep.episode_id)
        elif state == EpisodeState.FAILED:
            self._emit("recorder.failed", error or "The episode could not be saved.",
                       logging.ERROR, episode=ep.episode_id)
        if state in (EpisodeState.EMPTY, EpisodeState.FAILED) and self.tasks is not None \
                and not ep.discard and ep.labels.task:
            self.tasks.mark_undone(ep.labels.task)
