"""Fixtures of the simulator tests: a compiled scene and fresh worlds on it."""

from __future__ import annotations

import mujoco
import pytest

from vla_studio.sim.scene import load_model
from vla_studio.sim.world import SimWorld


@pytest.fixture(scope="session")
def model() -> mujoco.MjModel:
    """The built-in tabletop, compiled once (worlds never modify their model)."""
    return load_model()


@pytest.fixture
def world(model: mujoco.MjModel) -> SimWorld:
    """A world reset to the layout of seed 0."""
    w = SimWorld(model)
    w.reset(0)
    return w
