"""Where worker threads hand results to the replay view: queued signals only.

* :class:`FrameFeed`: the ``replay-frames`` thread's :class:`~vla_studio.data.frame_reader.FrameSet`
  (numpy arrays) becomes a queued signal; the view's slot paints on the GUI thread.
* :class:`SimJob`: re-execution in the simulator on a ``replay-sim`` thread
  (:class:`~vla_studio.ui.background.BackgroundJobs`: named, owned, joined when the view
  closes); its progress is a plain value the view polls, its result a queued outcome.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal

from vla_studio.data.frame_reader import FrameSet
from vla_studio.ui.background import BackgroundJobs, JobOutcome


class FrameFeed(QObject):
    """Re-emits frame sets from the decode thread on the GUI thread.

    Signals:
        ready(object): a FrameSet.
    """

    ready = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._slot: Callable[[FrameSet], None] | None = None
        self.ready.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def connect_to(self, slot: Callable[[FrameSet], None]) -> None:
        self._slot = slot

    def emit(self, frames: FrameSet) -> None:
        """Called on the decode thread: hand over, nothing else."""
        try:
            self.ready.emit(frames)
        except RuntimeError:  # the view was deleted meanwhile
            pass

    def _deliver(self, frames: FrameSet) -> None:
        if self._slot is not None:
            self._slot(frames)


class SimJob(QObject):
    """Re-executes episodes in the simulator, one at a time, off the GUI thread.

    Signals:
        done(object, object): the episode path and the JobOutcome (value: a Reexecution).
    """

    done = Signal(object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs = BackgroundJobs("replay-sim", self)
        self.progress: tuple[int, int] = (0, 0)  # set by the worker, read by a GUI timer
        self._stop = threading.Event()
        self.running: Path | None = None

    def start(self, path: Path, cameras: tuple[str, ...]) -> bool:
        """Start re-executing ``path``, rendering ``cameras``; False if one is running."""
        if self.running is not None:
            return False
        from vla_studio.sim.reexecute import reexecute  # MuJoCo only when asked for

        self.running = path
        self.progress = (0, 0)
        self._stop.clear()

        def work():
            return reexecute(path, cameras=cameras, progress=self._on_progress,
                             should_stop=self._stop.is_set)

        def finished(outcome: JobOutcome) -> None:
            self.running = None
            self.done.emit(path, outcome)

        return self.jobs.submit("re-executing", work, finished)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress = (done, total)

    def cancel(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Cancel any run and join the thread (the window closes)."""
        self._stop.set()
        self.jobs.stop()
