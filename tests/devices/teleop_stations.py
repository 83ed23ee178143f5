"""Stations for teleop tests: the counting ``null`` robot driven by real teleop devices."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from vla_studio.core.profile import parse_profile
from vla_studio.devices.registry import config_class_for
from vla_studio.station import Station


def null_station(teleops: list[dict[str, Any]], rate_hz: float = 50.0, **safety: Any) -> Station:
    """A station with the null robot (integrates ee deltas) and the given ``[[teleops]]`` tables."""
    limits = {"workspace_min": [-2.0, -2.0, -2.0], "workspace_max": [2.0, 2.0, 2.0],
              "max_delta_translation": 0.05, "max_linear_velocity": 1.0}
    limits.update(safety)
    data = {"name": "teleop test", "control_rate_hz": rate_hz, "robot": {"type": "null"},
            "teleops": teleops, "safety": limits}
    return Station.from_profile(parse_profile(data, config_class_for, source="test profile"))


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(0.002)


class Heartbeat:
    """Feeds a keyboard device's heartbeat from a thread, as the GUI's display timer would."""

    def __init__(self, keyboard, period_s: float = 0.02) -> None:
        self.keyboard, self.period_s = keyboard, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.keyboard.heartbeat()
