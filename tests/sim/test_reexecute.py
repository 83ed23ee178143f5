"""Replay in the simulator: an expert demonstration recorded on the default station, re-executed
from its recorded seed with its recorded (filtered) actions, follows the recorded end-effector
path to within a millimetre, finds the moment the task was accomplished, and renders the
re-executed camera at the recorded size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vla_studio.data.episode_file import EpisodeReader
from vla_studio.sim.reexecute import ReexecutionError, can_reexecute, reexecute
from vla_studio.sim.world import world_names

from tests.recorded_datasets import record_expert


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return record_expert(tmp_path_factory.mktemp("expert") / "ds", 1, max_seconds=8.0)[0]


def test_the_recorder_stores_the_seed_the_simulator_chose(demo):
    with EpisodeReader(demo) as reader:
        assert int(reader.attrs["seed"]) >= 0 and reader.success() is True
        assert can_reexecute(dict(reader.attrs)) == ""


def test_recorded_actions_reproduce_the_demonstration(demo):
    with EpisodeReader(demo) as reader:
        steps = reader.num_steps
    result = reexecute(demo)
    assert result.steps == steps
    assert result.max_mm < 1.0, result.divergence_mm.max()
    # The expert's episode is saved once the verdict held for --settle 0.2 s (4 ticks at 20 Hz).
    assert result.success_step is not None and steps - 12 <= result.success_step < steps
    assert not [n for n in world_names() if n.startswith("reexecute-")]  # withdrawn again


def test_the_reexecuted_camera_is_rendered_at_the_recorded_size(demo):
    with EpisodeReader(demo) as reader:
        width, height = reader.image_size("front")
        recorded = cv2.imdecode(np.frombuffer(reader.image_bytes("front", 40), np.uint8),
                                cv2.IMREAD_COLOR)
    seen = []
    result = reexecute(demo, cameras=("front",), progress=lambda done, total: seen.append(done))
    frames = result.frames["front"]
    assert len(frames) == result.steps and seen[-1] == result.steps
    image = cv2.imdecode(np.frombuffer(frames[40], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (height, width, 3)
    # Same world, same moment: the re-rendered view looks like the recorded one.
    assert float(np.mean(np.abs(image.astype(int) - recorded.astype(int)))) < 12.0


def test_episodes_of_other_robots_are_refused_with_the_reason(tmp_path):
    from vla_studio.bench.replay_episode import CameraPlan, EpisodePlan, write_episode

    path = write_episode(tmp_path / "episodes" / "x.h5",
                         EpisodePlan(steps=20, cameras=(CameraPlan("front", 32, 24),)))
    with pytest.raises(ReexecutionError, match="only episodes recorded on the simulated station"):
        reexecute(path)
    assert "seed" in can_reexecute({"robot_type": "sim", "seed": -1, "station_profile": "x"})
