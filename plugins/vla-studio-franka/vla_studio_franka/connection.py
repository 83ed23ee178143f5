"""Opening and closing franky's connection to a Franka, with a deadline and without leaks.

libfranka keeps one TCP connection per ``franky.Robot`` and closes it only when the object is
destroyed; franky has no ``close()``. A Franka (and franky-sim) serves one client at a time, and
libfranka's handshake waits without a deadline for the robot's answer: a connection left open
by an earlier driver (a reference kept alive by an exception's traceback is enough) makes the
next ``franky.Robot(...)`` wait for ever. So:

* :func:`open_robot` runs the handshake on a thread of its own (``franka-connect``; libfranka
  releases the GIL while it waits) and gives up after a deadline with ``TimeoutError``;
* :func:`keeps_no_robot` clears the locals of the driver frames an exception leaves through:
  a traceback kept by a log record or a future would otherwise keep the robot object (a local
  of those frames) and its connection alive after ``disconnect()``;
* :func:`release_connection` drops the driver's reference and, when something else still holds
  the object, runs the garbage collector so that the connection closes now, not some day.
"""

from __future__ import annotations

import functools
import gc
import logging
import sys
import threading
import traceback
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)


def open_robot(make: Callable[[], Any], timeout_s: float) -> Any:
    """``make()`` (franky's ``Robot(...)``) on the thread ``franka-connect``, within ``timeout_s``.

    Raises:
        TimeoutError: no answer in time; the thread is left to finish on its own and drops the
            robot object if it ever gets one (closing that connection again).
        Exception: whatever ``make()`` raised.
    """
    lock = threading.Lock()
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            robot = make()
        except BaseException as exc:  # handed to the caller (a franky.Exception, usually)
            with lock:
                box["error"] = exc
        else:
            with lock:
                if box.get("abandoned"):
                    return  # the caller gave up: the connection closes with ``robot``
                box["robot"] = robot
            del robot
        finally:
            done.set()

    thread = threading.Thread(target=run, name="franka-connect", daemon=True)
    thread.start()
    done.wait(timeout_s)
    with lock:
        if "robot" in box:
            return box.pop("robot")
        if "error" in box:
            error = box.pop("error")
            raise error
        box["abandoned"] = True
    raise TimeoutError(f"no answer within {timeout_s:g} s")


def keeps_no_robot(method: F) -> F:
    """Decorate a driver method: an exception it raises carries no frame locals of the driver.

    The message and the traceback's lines stay; only the finished frames' locals go.
    """
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except BaseException as exc:
            _clear_frames(exc)
            raise

    return wrapper  # type: ignore[return-value]


def _clear_frames(exc: BaseException) -> None:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        e = pending.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)  # skips frames still running (this wrapper's)
        pending += [e.__cause__, e.__context__]


def release_connection(robot: Any, name: str) -> None:
    """Drop the last reference to ``robot`` so that libfranka closes its connection now.

    Call with the driver's own reference already cleared; ``robot`` is then referenced by this
    frame and the caller's only. Anything else (a ControlException's traceback holding a driver
    frame, typically) is a reference cycle the collector can free.
    """
    if sys.getrefcount(robot) > 3:  # the caller's local, this argument, getrefcount's argument
        gc.collect()
    others = sys.getrefcount(robot) - 3
    if others > 0:
        log.warning("Franka %r: %d reference(s) to the robot object remain after disconnect; "
                    "its connection stays open until they go", name, others)
