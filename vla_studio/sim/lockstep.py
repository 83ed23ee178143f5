"""A simulated station in lock-step: the same station, stepped as fast as the machine allows.

:class:`LockstepStation` is a :class:`~vla_studio.station.Station` whose clock is simulated
(:class:`~vla_studio.core.clocks.SimClock`), whose ``sim`` cameras render synchronously for each
tick, and whose control loop is ticked by a :class:`~vla_studio.core.lockstep.LockstepDriver` on
the thread that called :meth:`LockstepStation.start`. Everything else is the real station: the
arbiter, the safety filter and gate, the e-stop latch and relay, the recorder and its episode
files (marked ``clock = "sim"``), the policy runner.

Only simulated devices take part: the robot must be ``sim`` and every camera ``sim``. Teleop
devices other than the scripted expert are left out (a person cannot keep up with simulated
time running several times faster than real time)::

    station = LockstepStation.from_profile(profile)
    station.start()                    # this thread now ticks the loop
    station.use_teleop("expert")
    station.begin_episode("pick up the red cube", seed=3)
    station.session.start(ControlMode.TELEOP)
    station.clock.sleep(5.0)           # 100 ticks at 20 Hz, as fast as they compute
    station.close()                    # on the same thread (it owns the renderers)
"""

from __future__ import annotations

import dataclasses
import logging

from vla_studio.core.clocks import SimClock
from vla_studio.core.lockstep import LockstepDriver
from vla_studio.core.profile import StationProfile
from vla_studio.devices.base import DeviceError, Robot, Teleop
from vla_studio.devices.cameras.base import Camera
from vla_studio.devices.observers import StationObserver
from vla_studio.station import Station

log = logging.getLogger(__name__)
LOCKSTEP_TELEOPS = ("scripted",)


def lockstep_problem(profile: StationProfile) -> str:
    """Why ``profile`` cannot run in lock-step ('' when it can)."""
    if profile.robot.type != "sim":
        return (f"{profile.path}: lock-step needs the simulated robot (type \"sim\"); this "
                f"station's robot is {profile.robot.type!r}")
    other = [c.name for c in profile.cameras if c.type != "sim"]
    if other:
        return (f"{profile.path}: lock-step renders simulated cameras only; camera(s) "
                f"{', '.join(other)} are not of type \"sim\"")
    return ""


class LockstepStation(Station):
    """A simulated station ticked in lock-step (see the module docstring).

    Raises:
        DeviceError: a device of the profile cannot run in lock-step.
    """

    def __init__(self, profile: StationProfile, robot: Robot, cameras: dict[str, Camera],
                 teleops: dict[str, Teleop],
                 observers: dict[str, StationObserver] | None = None) -> None:
        not_sync = [n for n, c in cameras.items() if not hasattr(c, "capture")]
        if not getattr(robot, "simulated", False) or not_sync:
            raise DeviceError(f"{profile.path}: lock-step needs a simulated robot and cameras "
                              "that render on demand (type \"sim\")")
        super().__init__(profile, robot, cameras, teleops, observers)
        self.clock = SimClock(1.0 / profile.control_rate_hz)
        for cam in cameras.values():
            cam.synchronous = True  # type: ignore[attr-defined]
        self.driver = LockstepDriver(self.loop, self.clock, list(cameras.values()))

    @classmethod
    def from_profile(cls, profile: StationProfile) -> "LockstepStation":
        problem = lockstep_problem(profile)
        if problem:
            raise DeviceError(problem)
        kept = tuple(t for t in profile.teleops if t.type in LOCKSTEP_TELEOPS)
        station = super().from_profile(dataclasses.replace(profile, teleops=kept))
        return station  # type: ignore[return-value]

    def start(self) -> None:
        """Make the calling thread the one that ticks, and run a first tick (paused: the arm
        holds) so every camera has a frame before an episode starts."""
        if not self._connected:
            self.connect()
        if not self.driver.running:
            self.driver.start()
            self.driver.tick()

    def close(self) -> None:
        """Stop everything (call it on the thread that ticked: it owns the renderers)."""
        try:
            super().close()
        finally:
            self.driver.stop()
