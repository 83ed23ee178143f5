"""Logging through a queue, so no log call waits for a terminal, a file or a slow handler.

```
 any thread (control loop, device readers, GUI)         "log-writer" thread
 log.warning(...) -> QueueHandler --queue.SimpleQueue--> QueueListener -> the real handlers
```
The control loop must never block on I/O, and a log call is I/O: a terminal that scrolls
slowly, a full pipe, a file on a busy disk. :func:`install_log_queue` moves the root logger's
handlers behind a :class:`logging.handlers.QueueListener` on one named thread and leaves a
:class:`logging.handlers.QueueHandler` in their place; the calling thread only formats the
message and appends it to the queue. The CLI installs it right after configuring logging;
benchmarks and tests use the same function (or :func:`logging_through_queue`). The listener is
stopped (the queue drained, the thread joined) at interpreter exit or by :meth:`LogQueue.stop`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import queue
import threading
from typing import Iterator

LISTENER_THREAD = "log-writer"

_installed: "dict[logging.Logger, LogQueue]" = {}  # logger -> its queue
_install_lock = threading.Lock()


class _NamedQueueListener(logging.handlers.QueueListener):
    """A QueueListener whose thread has a name (the standard one is anonymous)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._monitor, name=LISTENER_THREAD, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread


class LogQueue:
    """The installed queue: the root logger's former handlers run on the listener thread.

    Attributes:
        handlers: the handlers that now run behind the queue.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self.handlers = list(logger.handlers)
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.queue_handler = logging.handlers.QueueHandler(self._queue)
        self._listener = _NamedQueueListener(self._queue, *self.handlers,
                                             respect_handler_level=True)
        self._stopped = False

    @property
    def thread(self) -> threading.Thread | None:
        """The listener thread (named ``log-writer``), None once stopped."""
        return self._listener.thread

    def _start(self) -> None:
        for handler in self.handlers:
            self._logger.removeHandler(handler)
        self._logger.addHandler(self.queue_handler)
        self._listener.start()

    def flush(self) -> None:
        """Block until every record queued so far has been handled (before printing straight
        to a stream the handlers also write to, so the order on screen stays right)."""
        with _install_lock:
            if self._stopped:
                return
            self._listener.stop()  # drains the queue and joins the thread ...
            self._listener.start()  # ... and a fresh thread carries on

    def stop(self) -> None:
        """Write what is queued, join the listener thread, put the handlers back. Idempotent."""
        with _install_lock:
            if self._stopped:
                return
            self._stopped = True
            if _installed.get(self._logger) is self:
                del _installed[self._logger]
        self._logger.removeHandler(self.queue_handler)
        self._listener.stop()  # enqueues a sentinel, drains the queue and joins the thread
        for handler in self.handlers:
            self._logger.addHandler(handler)


def install_log_queue(logger: logging.Logger | None = None) -> LogQueue:
    """Route ``logger``'s (default: the root logger's) handlers through a queue.

    Idempotent: a second call returns the queue already installed. Handlers added to the logger
    afterwards are not moved (pytest's log capture, for instance, keeps working as before).
    """
    logger = logger or logging.getLogger()
    with _install_lock:
        if logger in _installed:
            return _installed[logger]
        handle = LogQueue(logger)
        handle._start()
        _installed[logger] = handle
    atexit.register(handle.stop)
    return handle


def stop_log_queues() -> None:
    """Stop every installed queue and put its handlers back (tests: a command run in-process
    installs one, which must not keep another test's log capture behind it)."""
    with _install_lock:
        queues = list(_installed.values())
    for lq in queues:
        lq.stop()


def flush_logs() -> None:
    """Wait until every installed queue has handled what was logged so far (cheap when none is
    installed). Call it before printing to the terminal directly, e.g. a last error line."""
    with _install_lock:
        queues = list(_installed.values())
    for lq in queues:
        lq.flush()


@contextlib.contextmanager
def logging_through_queue(logger: logging.Logger | None = None) -> Iterator[LogQueue]:
    """``with logging_through_queue(): ...`` installs the queue for the block (tests, benchmarks).

    A queue that was already installed stays installed after the block.
    """
    already = (logger or logging.getLogger()) in _installed
    handle = install_log_queue(logger)
    try:
        yield handle
    finally:
        if not already:
            handle.stop()
