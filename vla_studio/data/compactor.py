"""Background compaction: sealed JPEG episodes are transcoded to video while nothing is being
recorded, in a worker process that can be frozen at any instant.

```
 Recorder.start() --freeze()--> SIGSTOP the worker (microseconds; it goes on once the recorder
                                has been idle for idle_s)
 episode-compactor thread (owned by Compactor)
   picks the oldest JPEG episode (dataset index) --spawn--> python -m ...transcode_worker EP
   watches the recorder every 50 ms                          --no-commit, SCHED_IDLE, idle I/O,
   reads the worker's progress lines                         one core; dies with its parent
   on "ready": commit (rename under the folder lock) <------ writes + verifies EP.h5.compacting
   emits compactor.* events on the station's bus
```
The worker never commits: a stopped worker therefore never holds the episode folder's lock (the
recorder, trash and label edits take it), and the commit, a rename, happens here only while
the recorder is idle. Killing the worker or the whole application at any moment leaves every
episode valid (see :mod:`vla_studio.data.transcode`); the next start removes the unfinished
temporary file. The worker runs at ``SCHED_IDLE`` priority: it gets CPU time only when the
control loop, the cameras and the GUI leave some.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vla_studio.data.dataset import Dataset
from vla_studio.data.transcode import (MIN_FREE_AFTER_BYTES, OUTCOME_NO_SPACE, OUTCOME_READY,
                                       OUTCOME_TRANSCODED, TranscodeResult, commit_transcoded,
                                       discard_temporary, file_signature,
                                       remove_stale_temporaries, transcode_reason)
from vla_studio.data.video_codec import VideoSettings

log = logging.getLogger(__name__)

STATE_OFF, STATE_IDLE, STATE_WORKING, STATE_PAUSED = "off", "idle", "working", "paused"
NO_SPACE_RETRY_S = 300.0
EventSink = Callable[..., None]  # (kind, message, level, **data)


@dataclass(frozen=True)
class CompactorStatus:
    """A snapshot for the Episodes dock.

    Attributes:
        state: ``off`` (not started), ``idle`` (nothing to do), ``working`` or ``paused``
            (an episode is being recorded, or was just).
        episode: file name of the episode being transcoded ('' when none).
        frames_done, frames_total: progress within it.
        compacted: episodes transcoded since start.
        saved_bytes: disk space they gave back.
        waiting: JPEG episodes still to do (at the last look).
        failed: episodes left as they were, with the reason (not retried until they change).
    """

    state: str = STATE_OFF
    episode: str = ""
    frames_done: int = 0
    frames_total: int = 0
    compacted: int = 0
    saved_bytes: int = 0
    waiting: int = 0
    failed: dict[str, str] = field(default_factory=dict)


class Compactor:
    """Transcodes a dataset's JPEG episodes in the background (see the module docstring).

    Args:
        dataset: the dataset folder.
        settings: codec and quality.
        is_busy: True while an episode is being recorded or saved (the worker is paused).
        emit: ``emit(kind, message, level, **data)`` for operator news (the station's bus).
        idle_s: how long the recorder must have been idle before work resumes (a new Record
            press right after a stop does not find the worker running).
        reserve_bytes: free space the worker leaves for the recorder.
    """

    def __init__(self, dataset: Dataset, settings: VideoSettings, *,
                 is_busy: Callable[[], bool] = lambda: False, emit: EventSink | None = None,
                 idle_s: float = 2.0, poll_s: float = 0.05,
                 reserve_bytes: int = MIN_FREE_AFTER_BYTES) -> None:
        self.dataset, self.settings = dataset, settings
        self._is_busy, self._emit = is_busy, emit
        self.idle_s, self.poll_s, self.reserve_bytes = idle_s, poll_s, reserve_bytes
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._held = False  # pause() was called: paused until the recorder is idle again
        self._proc: subprocess.Popen | None = None
        self._frozen = False  # the worker is SIGSTOPped
        self._last_busy = 0.0
        self._state = STATE_OFF
        self._episode = ""
        self._progress = (0, 0)
        self._compacted = 0
        self._saved = 0
        self._waiting = 0
        self._failed: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._verdicts: dict[str, tuple[tuple[int, int, int], str]] = {}  # name -> (sig, why)
        self._no_space_until = 0.0
        self.pause_latencies_s: list[float] = []  # pause() call to SIGSTOP sent (statistics)

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._state = STATE_IDLE
            self._thread = threading.Thread(target=self._run, name="episode-compactor",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the worker (its unfinished file is removed) and join the thread."""
        with self._lock:
            self._stopping = True
            self._wake.set()
            proc = self._proc
        if proc is not None:
            _end_process(proc)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("episode-compactor did not stop within %.0f s", timeout_s)
            self._thread = None
        self._state = STATE_OFF

    # ----- control ---------------------------------------------------------------------------
    def freeze(self) -> None:
        """Freeze the worker now (Record was pressed): one signal, no waiting. Work goes on
        once ``is_busy`` has said False for ``idle_s``."""
        t0 = time.perf_counter()
        with self._lock:
            self._last_busy = time.monotonic()
            self._freeze_locked()
            self.pause_latencies_s.append(time.perf_counter() - t0)
        self._wake.set()

    def pause(self) -> None:
        """Hold compaction (the operator asked) until :meth:`resume`."""
        with self._lock:
            self._held = True
        self.freeze()

    def resume(self) -> None:
        """Undo :meth:`pause` (work starts once the recorder has been idle for ``idle_s``)."""
        with self._lock:
            self._held = False
        self._wake.set()

    def poke(self) -> None:
        """Look for new episodes now (one was saved)."""
        self._wake.set()

    def status(self) -> CompactorStatus:
        with self._lock:
            return CompactorStatus(self._state, self._episode, *self._progress, self._compacted,
                                   self._saved, self._waiting,
                                   {name: why for name, (_, why) in self._failed.items()})

    @property
    def worker_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # ----- the thread ------------------------------------------------------------------------
    def _busy(self) -> bool:
        try:
            busy = bool(self._is_busy())
        except Exception:  # noqa: BLE001 - a failing probe means: do not run
            log.exception("compactor: the recorder's state cannot be read")
            busy = True
        with self._lock:
            busy = busy or self._held
            if busy:
                self._last_busy = time.monotonic()
            return busy

    def _may_run(self) -> bool:
        return not self._busy() and time.monotonic() - self._last_busy >= self.idle_s

    def _run(self) -> None:
        try:
            for temp in remove_stale_temporaries(self.dataset.episodes_dir):
                log.info("removed %s left by an interrupted transcode", temp.name)
        except Exception:  # noqa: BLE001
            log.exception("compactor: cannot tidy the episodes folder")
        while not self._stopping:
            if not self._may_run():
                self._set_state(STATE_PAUSED if self._busy() else STATE_IDLE)
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            path = self._next()
            if path is None:
                self._set_state(STATE_IDLE)
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            try:
                self._compact(path)
            except Exception:  # noqa: BLE001 - one bad episode must not end compaction
                log.exception("compactor: transcoding %s failed", path.name)
                self._remember_failure(path, "the worker failed (see the log)")

    def _next(self) -> Path | None:
        if time.monotonic() < self._no_space_until:
            return None
        todo: list[Path] = []
        for path in self.dataset.episode_files():
            try:
                signature = file_signature(path)
            except OSError:
                continue
            failed = self._failed.get(path.name)
            if failed is not None and failed[0] == signature:
                continue
            known = self._verdicts.get(path.name)
            if known is None or known[0] != signature:  # opened once per version of a file
                known = self._verdicts[path.name] = (signature, transcode_reason(path))
            if not known[1]:
                todo.append(path)
        with self._lock:
            self._waiting = len(todo)
        return todo[0] if todo else None

    def _compact(self, path: Path) -> None:
        s = self.settings
        cmd = [sys.executable, "-m", "vla_studio.data.transcode_worker", str(path),
               "--no-commit", "--codec", s.codec, "--crf", str(s.crf), "--gop-s", str(s.gop_s),
               "--min-psnr", str(s.min_psnr_db), "--reserve-mb", str(self.reserve_bytes / 1e6)]
        if s.preset:
            cmd += ["--preset", s.preset]
        with self._lock:
            if self._stopping:
                return
            self._episode, self._progress = path.name, (0, 0)
            self._proc = proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                text=True, start_new_session=True, env=_worker_env())
            self._frozen = False
            self._state = STATE_WORKING
        result = self._watch(proc)
        with self._lock:
            self._proc, self._frozen = None, False
            self._episode, self._progress = "", (0, 0)
        if self._stopping:
            discard_temporary(path)
            return
        if result is None:
            self._remember_failure(path, f"the worker ended without a result "
                                         f"(exit status {proc.returncode})")
            discard_temporary(path)
            return
        if result.outcome == OUTCOME_READY:
            while not self._stopping and self._busy():  # rename only while nothing records
                self._set_state(STATE_PAUSED)
                time.sleep(self.poll_s)
            if self._stopping:
                discard_temporary(path)
                return
            result = commit_transcoded(result)
        self._report(path, result)

    def _watch(self, proc: subprocess.Popen) -> TranscodeResult | None:
        """Relay the worker's progress, freeze and thaw it with the recorder; its result."""
        result: TranscodeResult | None = None
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        pending = ""
        while True:
            busy = self._busy()
            with self._lock:
                if busy:
                    self._freeze_locked()
                elif self._frozen and time.monotonic() - self._last_busy >= self.idle_s:
                    _signal(proc, signal.SIGCONT)
                    self._frozen = False
                self._state = STATE_PAUSED if self._frozen else STATE_WORKING
            ready, _, _ = select.select([fd], [], [], self.poll_s)
            if ready:
                try:
                    chunk = os.read(fd, 65536).decode("utf-8", "replace")
                except BlockingIOError:
                    chunk = ""
                if not chunk and proc.poll() is not None:
                    break
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    result = self._line(line) or result
            elif proc.poll() is not None:
                rest = proc.stdout.read() or ""
                for line in (pending + rest).split("\n"):
                    result = self._line(line) or result
                break
        proc.wait()
        if proc.returncode and result is None:
            err = (proc.stderr.read() if proc.stderr else "") or ""
            log.warning("compactor worker exited %s: %s", proc.returncode, err.strip()[-500:])
        return result

    def _line(self, line: str) -> TranscodeResult | None:
        line = line.strip()
        if not line.startswith("{"):
            return None
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            return None
        if "progress" in message:
            with self._lock:
                self._progress = tuple(int(v) for v in message["progress"][:2])
            return None
        if "result" in message:
            return TranscodeResult.from_dict(message["result"])
        return None

    def _freeze_locked(self) -> None:
        proc = self._proc
        if proc is not None and not self._frozen and proc.poll() is None:
            _signal(proc, signal.SIGSTOP)
            self._frozen = True

    def _report(self, path: Path, result: TranscodeResult) -> None:
        if result.outcome == OUTCOME_TRANSCODED:
            saved = result.bytes_before - result.bytes_after
            with self._lock:
                self._compacted += 1
                self._saved += saved
            self._tell("compactor.compacted",
                       f"Stored as {self.settings.codec} video: {path.stem}, "
                       f"{result.bytes_before / 1e6:.1f} -> {result.bytes_after / 1e6:.1f} MB "
                       f"(PSNR {result.psnr_db_mean:.1f} dB)", logging.INFO,
                       episode=path.name, bytes_before=result.bytes_before,
                       bytes_after=result.bytes_after, psnr_db=result.psnr_db_mean)
        elif result.outcome == OUTCOME_NO_SPACE:
            self._no_space_until = time.monotonic() + NO_SPACE_RETRY_S
            self._tell("compactor.no_space", f"Compacting paused: {result.message}",
                       logging.WARNING, episode=path.name)
        elif result.outcome not in ("changed", "skipped", "cancelled"):
            self._remember_failure(path, result.message or result.outcome)

    def _remember_failure(self, path: Path, why: str) -> None:
        try:
            signature = file_signature(path)
        except OSError:
            return
        with self._lock:
            self._failed[path.name] = (signature, why)
        self._tell("compactor.failed", f"{path.name} stays JPEG: {why}", logging.WARNING,
                   episode=path.name)

    def _set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    def _tell(self, kind: str, message: str, level: int, **data: object) -> None:
        if self._emit is not None:
            try:
                self._emit(kind, message, level, **data)
            except Exception:  # noqa: BLE001
                log.exception("compactor: event %s not delivered", kind)
        else:
            log.log(level, "%s", message)


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    # One thread per library in the worker: it must leave the other core to the station.
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "SVT_LOG": "1"})
    return env


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass


def _end_process(proc: subprocess.Popen) -> None:
    """Kill a worker (frozen or not) and reap it."""
    if proc.poll() is None:
        _signal(proc, signal.SIGKILL)  # safe at any moment; SIGKILL ends a stopped process too
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            log.warning("compactor worker %d did not end", proc.pid)
