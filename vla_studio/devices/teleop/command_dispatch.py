"""Runs station commands that device buttons ask for, off the device's reader thread.

A "record" or "success" button must not make the reader wait while the recorder saves an episode:
the reader only queues the command name and keeps reading (so the STOP button and the watchdog
stamps stay live). One named thread per device runs the queued commands in order.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger(__name__)
_STOP = object()


class CommandDispatcher:
    """A queue of command names and the thread that runs them.

    Args:
        name: used for the thread name (``teleop-commands-<name>``).
        maxsize: queued commands beyond this are dropped with a warning (a stuck handler must
            not grow memory without bound).
    """

    def __init__(self, name: str, maxsize: int = 64) -> None:
        self.name = name
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._handler: Callable[[str], None] | None = None
        self.dropped = 0
        self.ran = 0

    def set_handler(self, handler: Callable[[str], None] | None) -> None:
        """Where commands go (``TeleopContext.on_command``); None drops them."""
        self._handler = handler

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.is_running:
            return
        self._thread = threading.Thread(target=self._run, name=f"teleop-commands-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the commands already queued and join the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:  # a handler is stuck: drain so the stop marker fits
            self._drain()
            self._queue.put_nowait(_STOP)
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("command thread of %s did not stop within %.0f s (a command handler hangs)",
                      self.name, timeout_s)

    def submit(self, command: str) -> bool:
        """Queue ``command`` without blocking; False when it had to be dropped."""
        if not self.is_running:
            log.warning("%s: command %r ignored: the device is not connected", self.name, command)
            return False
        try:
            self._queue.put_nowait(command)
            return True
        except queue.Full:
            self.dropped += 1
            log.warning("%s: command %r dropped: earlier commands are still running",
                        self.name, command)
            return False

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            handler = self._handler
            if handler is None:
                log.warning("%s: command %r ignored: the device is not attached to a station",
                            self.name, item)
                continue
            try:
                handler(item)
                self.ran += 1
            except Exception:
                log.exception("%s: command %r failed", self.name, item)
