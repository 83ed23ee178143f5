"""The scripted expert: solves a seeded set of every task family within the safety caps."""

from __future__ import annotations

import numpy as np
import pytest

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.safety import ActionFilter
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import default_station_profile
from vla_studio.sim.expert import ScriptedExpert
from vla_studio.sim.scene import cube_name
from vla_studio.sim.tasks import FAMILIES, Task, sample_task
from vla_studio.sim.world import SimWorld

PERIOD = 0.05
MAX_TICKS = 800  # 40 s of simulated time


def _run(world: SimWorld, expert: ScriptedExpert, task: Task,
         action_filter: ActionFilter | None = None) -> tuple[bool, int]:
    expert.reset(task)
    flags = 0
    for _ in range(MAX_TICKS):
        action = expert.act(PERIOD)
        if action is None:
            break
        if action_filter is not None:
            result = action_filter.apply(action, world.observation())
            flags |= int(result.flags)
        world.step_ee_delta(action, PERIOD)
    return task.success(world), flags


@pytest.mark.parametrize("family", list(FAMILIES))
def test_expert_solves_seeded_episodes_within_the_default_safety_caps(model, family):
    profile = load_station_profile(default_station_profile())
    action_filter = ActionFilter(profile.safety, ActionSpace.ee_delta(), PERIOD)
    world = SimWorld(model)
    expert = ScriptedExpert(world)
    for seed in (11, 12):
        task = sample_task(np.random.default_rng(seed), family)
        world.reset(seed, accept=task.accepts)
        ok, flags = _run(world, expert, task, action_filter)
        assert ok, f"{task.name} failed for seed {seed} (phase {expert.phase})"
        assert flags == 0, f"{task.name}: the safety filter had to clip the expert ({flags:#x})"
        assert expert.done and expert.act(PERIOD) is None


def test_expert_finishes_a_pick_it_takes_over_with_the_cube_already_in_hand(model):
    world = SimWorld(model)
    task = Task("place_in_bowl", "red")
    world.reset(5, accept=task.accepts)
    picker = ScriptedExpert(world)
    picker.reset(Task("pick", "red"))
    for _ in range(MAX_TICKS):  # someone else grasped and lifted the cube
        action = picker.act(PERIOD)
        if action is None:
            break
        world.step_ee_delta(action, PERIOD)
    assert world.grasped(cube_name("red"))
    ok, _ = _run(world, ScriptedExpert(world), task)
    assert ok


def test_expert_recovers_when_the_cube_is_moved_away_mid_approach(model):
    world = SimWorld(model)
    task = Task("pick", "green")
    world.reset(9, accept=task.accepts)
    expert = ScriptedExpert(world)
    expert.reset(task)
    while expert.phase != "descend":
        world.step_ee_delta(expert.act(PERIOD), PERIOD)
    for _ in range(5):  # on its way down to the cube
        world.step_ee_delta(expert.act(PERIOD), PERIOD)
    adr = world.index.objects[cube_name("green")].qpos
    world.data.qpos[adr:adr + 2] += np.array([0.05, -0.05])  # a hand moves the cube
    phases = []
    for _ in range(MAX_TICKS):
        action = expert.act(PERIOD)
        phases.append(expert.phase)
        if action is None:
            break
        world.step_ee_delta(action, PERIOD)
    assert "approach" in phases[:3]  # it noticed and went back
    assert task.success(world)


def test_expert_without_a_task_proposes_nothing(world):
    assert ScriptedExpert(world).act(PERIOD) is None
