"""Background jobs: a plain function runs on a worker thread, its outcome comes back to the GUI.

```
 GUI thread                         worker thread (<name>, owned by the BackgroundJobs)
 submit(label, fn, on_done) --queue--> fn()  (may block: a scene reset, a disk, a camera)
   busy_changed(label)                  |
 _deliver(outcome) <--queued signal-----+  JobOutcome(label, value, error): plain data
   on_done(outcome), finished(outcome), busy_changed("") once nothing is left
```
The worker never touches a widget: it only emits a queued signal carrying the outcome, and the
slot that handles it runs on the GUI thread. Jobs run one at a time in submission order, so an
operator's "start" then "stop" cannot overtake each other. The thread starts with the first job
and is stopped and joined by :meth:`BackgroundJobs.stop` (the owning widget's window closes).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    """What a finished job returned or raised.

    Attributes:
        label: the words the job was submitted with ("starting", "saving").
        value: the function's return value (None when it raised).
        error: the exception it raised, or None.
    """

    label: str
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_Job = tuple[str, Callable[[], Any], Callable[[JobOutcome], None] | None]


class BackgroundJobs(QObject):
    """One named worker thread running submitted functions in order.

    Signals:
        busy_changed(str): the label of the job now running, or "" when all are done.
        finished(object): a JobOutcome, on the GUI thread, after the job's own callback.

    Args:
        name: the worker thread's name (``recorder-jobs``).
        parent: the owning QObject.
    """

    busy_changed = Signal(str)
    finished = Signal(object)
    _done = Signal(object, object)  # (JobOutcome, callback) from the worker, delivered queued

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._labels: list[str] = []  # GUI thread only: labels of submitted, unfinished jobs
        self._stopped = False
        self._done.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        """A job is queued or running."""
        return bool(self._labels)

    @property
    def label(self) -> str:
        """The label of the job running now ("" when idle)."""
        return self._labels[0] if self._labels else ""

    def submit(self, label: str, fn: Callable[[], Any],
               on_done: Callable[[JobOutcome], None] | None = None) -> bool:
        """Run ``fn`` on the worker; ``on_done(outcome)`` is called on the GUI thread after.

        Returns False (and runs nothing) once :meth:`stop` was called.
        """
        if self._stopped:
            return False
        self._labels.append(label)
        if len(self._labels) == 1:
            self.busy_changed.emit(label)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._queue.put((label, fn, on_done))
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Refuse new jobs, let the queued ones finish and join the worker."""
        self._stopped = True
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("%s: a job is still running after %.0f s; leaving it", self.name,
                            timeout_s)
            self._thread = None

    # ----- worker thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            label, fn, on_done = job
            try:
                outcome = JobOutcome(label, fn())
            except Exception as exc:  # handed to the GUI, which says what went wrong
                outcome = JobOutcome(label, None, exc)
            try:
                self._done.emit(outcome, on_done)
            except RuntimeError:  # the owner was deleted meanwhile: nobody to tell
                log.debug("%s: outcome of %r dropped (owner gone)", self.name, label)

    # ----- GUI thread ----------------------------------------------------------------------
    def _deliver(self, outcome: JobOutcome, on_done: Callable[[JobOutcome], None] | None) -> None:
        if self._labels:
            self._labels.pop(0)
        if outcome.error is not None and on_done is None:
            log.error("%s: %s failed: %s", self.name, outcome.label, outcome.error)
        if on_done is not None:
            try:
                on_done(outcome)
            except Exception:
                log.exception("%s: handling the outcome of %r failed", self.name, outcome.label)
        self.finished.emit(outcome)
        self.busy_changed.emit(self.label)
