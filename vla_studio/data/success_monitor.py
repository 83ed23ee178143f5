"""The robot's live verdict on the open episode's task, followed without blocking anyone.

Simulated stations can judge their tasks (``Robot.episode_success``); a real robot cannot (it
answers None) and the operator decides. The monitor asks on the loop thread, which owns the
robot, and never waits for the answer: each :meth:`SuccessMonitor.poll` takes the answer to the
previous question, if it has come, and asks again when the last answer is older than the poll
interval. Whoever pumps it (the recorder dock's timer, ``vla-studio record``) gets the latest
verdict and how long it has held, which is what "save when the task succeeds" needs.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
STALE_REQUEST_S = 2.0  # a question the loop never answered (it stopped) is asked again


@dataclass(frozen=True)
class TaskVerdict:
    """The latest verdict on one episode's task.

    Attributes:
        success: True (accomplished now), False (not yet, or undone), None (the robot cannot
            judge this instruction, or no answer yet).
        held_s: how long ``success`` has been True without interruption (0 otherwise).
        answered: whether the robot has answered for this episode yet.
    """

    success: bool | None = None
    held_s: float = 0.0
    answered: bool = False


class SuccessMonitor:
    """Follows ``judge(instruction)`` (e.g. ``robot.episode_success``) for the open episode.

    Args:
        loop: the control loop (``judge`` runs on its thread, between ticks).
        judge: instruction -> True / False / None (cannot judge).
        interval_s: how often to ask.
    """

    def __init__(self, loop, judge: Callable[[str], bool | None],
                 interval_s: float = POLL_INTERVAL_S) -> None:
        self.loop, self.judge, self.interval_s = loop, judge, interval_s
        self._episode: str | None = None
        self._instruction = ""
        self._request: concurrent.futures.Future | None = None
        self._asked_at = 0.0
        self._success: bool | None = None
        self._since: float | None = None
        self._warned = False
        self._answered = False
        self._lock = threading.Lock()  # begin (any thread) vs poll (the pumping thread)

    def begin(self, episode_id: str | None, instruction: str = "") -> None:
        """Follow a new episode (None: none is open); forgets the previous verdict."""
        with self._lock:
            self._episode, self._instruction = episode_id, instruction
            self._request, self._success, self._since = None, None, None
            self._asked_at, self._answered = 0.0, False

    @property
    def episode_id(self) -> str | None:
        return self._episode

    def verdict(self, now: float | None = None) -> TaskVerdict:
        """The latest verdict, without asking again."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._verdict(now)

    def _verdict(self, now: float) -> TaskVerdict:
        held = now - self._since if self._success and self._since is not None else 0.0
        return TaskVerdict(self._success, max(0.0, held), self._answered)

    def poll(self, now: float | None = None) -> TaskVerdict:
        """Take the answer that has come, ask again when due, and return the latest verdict."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._episode is None:
                return TaskVerdict()
            self._ask(now)
            return self._verdict(now)

    def _ask(self, now: float) -> None:
        request = self._request
        if request is not None and request.done():
            self._request = None
            self._take(request, now)
        elif request is not None and now - self._asked_at > STALE_REQUEST_S:
            self._request = None  # the loop stopped before answering: ask again
        if self._request is None and now - self._asked_at >= self.interval_s:
            episode, instruction = self._episode, self._instruction
            self._asked_at = now
            self._request = self.loop.post_to_loop(
                lambda: (episode, self.judge(instruction)))
            if self._request.done():  # the loop is not running: answered at once
                request, self._request = self._request, None
                self._take(request, now)

    def _take(self, request: concurrent.futures.Future, now: float) -> None:
        try:
            episode, success = request.result()
        except Exception as exc:  # a judgement is a bonus, never a reason to fail an episode
            if not self._warned:
                log.warning("the robot could not judge the task: %s", exc)
                self._warned = True
            episode, success = self._episode, None
        if episode != self._episode:
            return  # the answer about an episode that has ended
        success = None if success is None else bool(success)
        self._answered = True
        if success and not self._success:
            self._since = now
        elif not success:
            self._since = None
        self._success = success
