"""A policy that draws a horizontal circle with the end effector (no model, plugin example)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.config import option
from vla_studio.core.types import Observation
from vla_studio.policies.base import ActionChunk, Policy, PolicyConfig, PolicySpec


@dataclass(frozen=True)
class CircleConfig(PolicyConfig):
    radius: float = option(0.05, min=0.0, max=0.3, help="metres")
    period_s: float = option(4.0, min=0.5, help="seconds per revolution")
    rate_hz: float = option(20.0, min=1.0, help="control rate the chunk is timed for")
    chunk: int = option(8, min=1, max=100, help="actions per chunk")


class CirclePolicy(Policy):
    """Moves the end effector around a horizontal circle (plugin example)."""

    config_class = CircleConfig
    config: CircleConfig

    def __init__(self, config: CircleConfig | None = None) -> None:
        super().__init__(config or CircleConfig(name="circle"))
        self._phase = 0.0

    @property
    def spec(self) -> PolicySpec:
        return PolicySpec(cameras=(), image_size=(0, 0), state_features={},
                          action_space=ActionSpace.ee_delta(),
                          control_rate_hz=self.config.rate_hz, chunk_size=self.config.chunk)

    def reset(self, instruction: str) -> None:
        self._phase = 0.0

    def infer(self, observation: Observation) -> ActionChunk:
        t0 = time.monotonic()
        c = self.config
        dphi = 2 * math.pi / (c.period_s * c.rate_hz)
        speed = c.radius * dphi
        actions = np.zeros((c.chunk, 7))
        for i in range(c.chunk):
            phi = self._phase + i * dphi
            actions[i, 0] = -speed * math.sin(phi)
            actions[i, 1] = speed * math.cos(phi)
            actions[i, 6] = 1.0
        self._phase += c.chunk * dphi
        return ActionChunk(actions, np.ones(c.chunk), observation.t, t0, time.monotonic())
