"""Fixtures for the recording tests: dry-run stations built from the bundled profile (virtual
robot, synthetic cameras) with per-test changes, and helpers that wait on real threads."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pytest

from vla_studio.core.arbiter import FixedActionSource
from vla_studio.paths import resource
from vla_studio.station import Station
from tests.profiles import changed_profile

DRY_RUN = resource("stations", "dry_run.toml")
ACTION = np.array([0.0005, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


def dry_run_profile(tmp_path, *, rate: float | None = None, cameras: list[dict] | None = None,
                    recording: dict | None = None):
    """The dry-run profile with changes, recording into ``tmp_path``."""
    return changed_profile(DRY_RUN, tmp_path, rate=rate, cameras=cameras, recording=recording)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.01)


@pytest.fixture
def make_station(tmp_path):
    """Build, start and (at teardown) close a dry-run station with a fixed teleop action."""
    stations: list[Station] = []

    def make(**changes: Any) -> Station:
        station = Station.from_profile(dry_run_profile(tmp_path, **changes))
        station.start()
        station.set_teleop_source(FixedActionSource(ACTION))
        for cam in station.cameras.values():
            assert cam.wait_for_frame(timeout_s=5.0) is not None, f"camera {cam.name} is silent"
        stations.append(station)
        return station

    yield make
    for station in stations:
        station.close()


@pytest.fixture
def events():
    """Collects AppEvents of a station: ``events(station)`` subscribes and returns the list."""
    collected: list = []

    def attach(station: Station) -> list:
        station.events.subscribe(collected.append)
        return collected

    return attach
