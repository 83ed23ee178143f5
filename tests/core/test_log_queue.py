"""Logging through a queue: a log call never waits for its handler (nothing slow on the loop)."""

from __future__ import annotations

import logging
import threading

from tests.waiting import wait_until
from vla_studio.core.log_queue import LISTENER_THREAD, install_log_queue, logging_through_queue


class BlockingHandler(logging.Handler):
    """A handler as slow as a stuck terminal: it blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.unblock = threading.Event()
        self.records: list[tuple[str, str]] = []  # (message, thread that wrote it)

    def emit(self, record: logging.LogRecord) -> None:
        self.unblock.wait(10.0)
        self.records.append((record.getMessage(), threading.current_thread().name))


def test_log_calls_return_while_the_handler_is_blocked_and_it_runs_on_the_named_thread():
    logger = logging.getLogger("vla_studio.test.log_queue")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = BlockingHandler()
    logger.addHandler(handler)
    try:
        with logging_through_queue(logger) as lq:
            assert lq.thread.name == LISTENER_THREAD and lq.thread.is_alive()
            def ticks() -> None:
                for i in range(50):
                    logger.warning("tick %d", i)

            caller = threading.Thread(target=ticks, name="control-loop")
            caller.start()
            caller.join(5.0)
            assert not caller.is_alive(), "a log call waited for a blocked handler"
            assert handler.records == []  # nothing written yet: all of it is queued
            handler.unblock.set()
            assert wait_until(lambda: len(handler.records) == 50)
            assert {thread for _, thread in handler.records} == {LISTENER_THREAD}
            assert handler.records[0][0] == "tick 0"
            thread = lq.thread
        assert not thread.is_alive()  # stopped and joined at the end
        assert logger.handlers == [handler]  # the handler is back where it was
    finally:
        logger.removeHandler(handler)


def test_install_is_idempotent_and_stop_writes_everything_queued():
    logger = logging.getLogger("vla_studio.test.log_queue_stop")
    logger.propagate = False
    handler = BlockingHandler()
    handler.unblock.set()
    logger.addHandler(handler)
    try:
        lq = install_log_queue(logger)
        assert install_log_queue(logger) is lq
        for i in range(200):
            logger.error("message %d", i)
        lq.stop()
        assert len(handler.records) == 200  # drained before the thread ended
        lq.stop()  # twice is harmless
        assert not any(t.name == LISTENER_THREAD and t is lq.thread for t in threading.enumerate())
    finally:
        logger.removeHandler(handler)


def test_flush_waits_until_everything_logged_so_far_is_written():
    from vla_studio.core.log_queue import flush_logs

    logger = logging.getLogger("vla_studio.test.log_queue_flush")
    logger.propagate = False
    handler = BlockingHandler()
    logger.addHandler(handler)
    try:
        with logging_through_queue(logger) as lq:
            logger.error("before the error line")
            releaser = threading.Timer(0.2, handler.unblock.set)
            releaser.start()
            flush_logs()  # returns only once the slow handler has written the record
            assert [m for m, _ in handler.records] == ["before the error line"]
            logger.error("after")
            assert wait_until(lambda: len(handler.records) == 2)
            assert lq.thread.is_alive() and lq.thread.name == LISTENER_THREAD
            releaser.join()
    finally:
        logger.removeHandler(handler)
