"""Functions other threads hand to the control loop, run between ticks on its thread.

The loop thread owns the robot; anything else that must touch it (a simulator reset between
episodes) is queued here and run by the loop instead of racing it.
"""

from __future__ import annotations

import collections
import concurrent.futures
from typing import Callable, TypeVar

T = TypeVar("T")


class LoopCallQueue:
    """A FIFO of ``(fn, future)`` pairs; :meth:`run_all` runs them on the calling thread."""

    def __init__(self) -> None:
        self._calls: collections.deque[tuple[Callable[[], object], concurrent.futures.Future]] = \
            collections.deque()

    def __bool__(self) -> bool:
        return bool(self._calls)

    def post(self, fn: Callable[[], T]) -> "concurrent.futures.Future[T]":
        """Queue ``fn``; its future gets the result or exception once a loop thread runs it."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.append((fn, fut))
        return fut

    @staticmethod
    def run_now(fn: Callable[[], T]) -> "concurrent.futures.Future[T]":
        """Run ``fn`` on this thread and return a completed future."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        fut.set_running_or_notify_cancel()
        try:
            fut.set_result(fn())
        except BaseException as exc:  # handed to whoever reads the future
            fut.set_exception(exc)
        return fut

    def run_all(self) -> None:
        """Run every queued call, in order (on the loop thread)."""
        while self._calls:
            fn, fut = self._calls.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller
                fut.set_exception(exc)

    def fail_all(self, exc: BaseException) -> None:
        """Complete every queued call with ``exc`` without running it."""
        while self._calls:
            _, fut = self._calls.popleft()
            if fut.set_running_or_notify_cancel():
                fut.set_exception(exc)
