"""Time stamps: host monotonic, a stamp from the future is invalid (DESIGN safety invariant 6)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from vla_studio.core.arbiter import FixedActionSource, Proposal, SourceArbiter
from vla_studio.core.clock import FUTURE_STAMP_TOLERANCE_S, host_stamp_from_remote
from vla_studio.core.safety import SafetyFlag, SafetyLimits
from vla_studio.core.session import ControlMode
from vla_studio.core.types import Observation, SourceKind

MOVE = np.array([0.001, 0, 0, 0, 0, 0, 1.0])
OBS = Observation(0, 0.0, {"ee_pos": np.zeros(3)})


class StampedSource(FixedActionSource):
    """Proposes MOVE with whatever stamp the test gives it."""

    def __init__(self, stamp: float) -> None:
        super().__init__(MOVE)
        self.stamp = stamp

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        return Proposal(MOVE, self.stamp)


def decide(stamp: float):
    arbiter = SourceArbiter(SafetyLimits())
    arbiter.set_teleop(StampedSource(stamp))
    return arbiter.decide(ControlMode.TELEOP, OBS, time.monotonic(), 0.05)


@pytest.mark.parametrize("stamp", [math.nan, math.inf, -math.inf])
def test_non_finite_stamp_is_invalid(stamp):
    d = decide(stamp)
    assert d.action is None and d.flags == SafetyFlag.STAMP_INVALID


def test_stamp_far_in_the_future_is_invalid_not_fresh():
    d = decide(time.monotonic() + 10 * FUTURE_STAMP_TOLERANCE_S)
    assert d.action is None and d.flags == SafetyFlag.STAMP_INVALID
    assert "future" in d.reason and "host monotonic" in d.reason


def test_stamp_taken_after_the_tick_started_is_fresh():
    arbiter = SourceArbiter(SafetyLimits())
    arbiter.set_teleop(StampedSource(0.0))
    tick_start = time.monotonic()
    arbiter.teleop.stamp = tick_start + 0.5 * FUTURE_STAMP_TOLERANCE_S + 0.001  # a device thread
    time.sleep(0.002)  # ... that read its device after the tick started
    d = arbiter.decide(ControlMode.TELEOP, OBS, tick_start, 0.05)
    assert d.source == SourceKind.TELEOP and d.flags == SafetyFlag.NONE


def test_remote_stamp_is_converted_by_its_age_never_by_its_clock():
    # the remote clock is a day ahead; the observation was 30 ms old when the reply was sent
    received = time.monotonic()
    host = host_stamp_from_remote(remote_stamp=86_400.0, remote_sent=86_400.03,
                                  host_received=received)
    assert host == pytest.approx(received - 0.03)
    assert decide(host).source == SourceKind.TELEOP


def test_remote_stamp_from_a_clock_that_jumped_back_is_never_in_the_future():
    received = time.monotonic()
    assert host_stamp_from_remote(10.0, 9.0, received) == received
    assert host_stamp_from_remote(math.nan, 9.0, received) == received
