"""Random pushes on the simulated arm, for demonstrations that show recoveries (DART-style).

A policy trained by behaviour cloning drifts a little off the demonstrated paths and has never
seen how to come back (covariate shift). DART (Laskey et al., 2017) injects noise while the
expert demonstrates: the expert, closed-loop, corrects every disturbance, so the data holds the
expert's actions in the off-path states a learner will reach. Here the noise is an external
push on the arm, not part of the command: the simulator moves the arm's target by the push,
the robot reports (and the recorder keeps) the command the expert sent, and the expert sees
the displaced arm on the next tick. The recorded actions are the expert's clean labels.

A push is a half-sine velocity profile (zero at both ends, so no jerk) lasting 0.3-0.7 s, in a
random horizontal direction with a small upward part, and a turn about the vertical axis;
pushes start at random (``rate`` per second on average). Everything is seeded per episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DisturbanceSettings:
    """How hard and how often the arm is pushed.

    Attributes:
        speed: peak push speed, m/s (0: no pushes).
        turn: peak turn rate about the vertical axis, rad/s.
        rate: pushes started per second, on average.
        duration: shortest and longest push, seconds.
        lift: largest upward part of a push, as a share of ``speed`` (pushes never go down,
            so they never drive the gripper into the table or a cube).
    """

    speed: float = 0.0
    turn: float = 0.0
    rate: float = 0.4
    duration: tuple[float, float] = (0.3, 0.7)
    lift: float = 0.3

    @property
    def active(self) -> bool:
        return self.speed > 0.0 or self.turn > 0.0


class Disturbance:
    """The push process of one episode: ``step(dt)`` gives the displacement of one tick.

    Args:
        settings: push strength and frequency.
        seed: the episode's seed (the same seed gives the same pushes).
    """

    def __init__(self, settings: DisturbanceSettings, seed: int = 0) -> None:
        self.settings = settings
        self.pushes = 0
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Start an episode: no push under way, a new seeded draw."""
        self._rng = np.random.default_rng([int(seed), 0xD15])
        self._t = 0.0
        self._length = 0.0
        self._velocity = np.zeros(4)  # vx, vy, vz (m/s), yaw rate (rad/s) at the peak
        self.pushes = 0

    @property
    def pushing(self) -> bool:
        return self._t < self._length

    def step(self, dt: float) -> np.ndarray:
        """This tick's push ``[dx, dy, dz, dyaw]`` (metres, radians, base frame)."""
        st = self.settings
        if not st.active or dt <= 0.0:
            return np.zeros(4)
        if not self.pushing and self._rng.random() < 1.0 - math.exp(-st.rate * dt):
            self._start()
        if not self.pushing:
            return np.zeros(4)
        # Integral of the half-sine profile over this tick (exact, so a push's total is fixed).
        t0, t1 = self._t, min(self._t + dt, self._length)
        w = math.pi / self._length
        share = (math.cos(w * t0) - math.cos(w * t1)) / w
        self._t += dt
        return self._velocity * share

    def _start(self) -> None:
        st, rng = self.settings, self._rng
        self._length = float(rng.uniform(*st.duration))
        self._t = 0.0
        heading = rng.uniform(-math.pi, math.pi)
        speed = st.speed * rng.uniform(0.5, 1.0)
        up = speed * st.lift * rng.uniform(0.0, 1.0)
        turn = st.turn * rng.uniform(0.5, 1.0) * (1.0 if rng.random() < 0.5 else -1.0)
        self._velocity = np.array([speed * math.cos(heading), speed * math.sin(heading), up, turn])
        self.pushes += 1
