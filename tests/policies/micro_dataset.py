"""A micro-dataset for the VLA tests, written with the project's own episode writer.

A toy reaching task that needs vision *and* language: a red and a blue square lie at random
places on a grey table; the instruction names one; the "end effector" (a white dot, and the
``ee_pos`` state) moves towards the named square at a capped speed and closes the gripper once
there. Two cameras: a fixed ``front`` view and a ``wrist`` view centred on the end effector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from vla_studio.core.types import Frame, Observation, SourceKind, StageTiming, Step
from vla_studio.data.episode_writer import EpisodeFileWriter, seal_episode
from vla_studio.data.step_encoder import CameraSchema, EpisodeSchema, StepEncoder

SIZE = 48
COLOURS = {"red": (220, 30, 30), "blue": (30, 40, 220)}
SPEED = 0.06  # table units (0..1) per step
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
TIMING = StageTiming(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _draw(ee: np.ndarray, cubes: dict[str, np.ndarray], centre: np.ndarray | None) -> np.ndarray:
    """An RGB frame; ``centre`` None is the fixed front view, else a 2x zoom around it."""
    img = np.full((SIZE, SIZE, 3), 128, np.uint8)
    zoom = 1.0 if centre is None else 2.0
    origin = np.zeros(2) if centre is None else centre - 0.5 / zoom

    def px(p: np.ndarray) -> np.ndarray:
        return np.round((p - origin) * zoom * (SIZE - 1)).astype(int)

    for name, pos in cubes.items():
        x, y = px(pos)
        r = int(2 * zoom)
        img[max(0, y - r):max(0, y + r + 1), max(0, x - r):max(0, x + r + 1)] = COLOURS[name]
    x, y = px(ee)
    img[max(0, y - 1):max(0, y + 2), max(0, x - 1):max(0, x + 2)] = 255
    return img


def write_micro_dataset(root: Path, episodes: int = 8, steps: int = 20, seed: int = 0,
                        nan_state_in: int | None = None,
                        sources: Callable[[int, int], SourceKind] | None = None,
                        dagger_round: int | None = None) -> Path:
    """Write ``episodes`` successful episodes into the dataset folder ``root``; returns it.

    ``nan_state_in``: an episode whose state has a NaN at one step (a sensor glitch).
    ``sources``: who drove step ``i`` of episode ``e`` (default: teleop); with it the episodes
    are policy runs (``policy_action`` stored) of round ``dagger_round``; a HOLD is a pause."""
    rng = np.random.default_rng(seed)
    schema = EpisodeSchema(ACTION_NAMES, "ee_delta", {"ee_pos": (3,), "gripper": (1,)},
                           tuple(CameraSchema(n, "synthetic", True, SIZE, SIZE, None, 20.0, 0.2)
                                 for n in ("front", "wrist")), with_policy=sources is not None)
    out = root / "episodes"
    out.mkdir(parents=True, exist_ok=True)
    for e in range(episodes):
        colour = ("red", "blue")[e % 2]
        instruction = f"pick up the {colour} cube"
        cubes = {c: rng.uniform(0.15, 0.85, 2) for c in COLOURS}
        ee = rng.uniform(0.2, 0.8, 2)
        path = out / f"20260101-0000{e:02d}_{e:08x}.h5.recording"
        attrs = {"episode_id": f"micro-{e:04d}", "created": "2026-01-01T00:00:00Z",
                 "language_instruction": instruction, "language_instructions": [instruction],
                 "task": f"pick_{colour}", "operator": "test", "station_name": "micro",
                 "robot_type": "synthetic", "action_space_kind": "ee_delta",
                 "action_names": list(ACTION_NAMES),
                 "cameras": {c.name: c.metadata() for c in schema.cameras},
                 "control_rate_hz": 20.0, "start_time_unix": 1.8e9,
                 "dagger_round": -1 if dagger_round is None else dagger_round}
        writer = EpisodeFileWriter(path, schema, attrs)
        writer.create()
        encoder = StepEncoder(schema)
        gripper = 1.0
        for i in range(steps):
            t = 100.0 + i * 0.05
            frames = {"front": Frame("front", i, t, color=_draw(ee, cubes, None)),
                      "wrist": Frame("wrist", i, t, color=_draw(ee, cubes, ee))}
            state = {"ee_pos": np.array([ee[0], ee[1], 0.1], np.float32),
                     "gripper": np.array([gripper], np.float32)}
            if e == nan_state_in and i == steps // 2:
                state["ee_pos"][0] = np.nan
            delta = cubes[colour] - ee
            dist = float(np.linalg.norm(delta))
            move = delta if dist <= SPEED else delta / dist * SPEED
            gripper = 0.0 if dist < 0.05 else 1.0
            action = np.array([move[0], move[1], 0, 0, 0, 0, gripper], np.float32)
            source = SourceKind.TELEOP if sources is None else sources(e, i)
            held = source == SourceKind.HOLD
            encoder.add(Step(i, t, Observation(i, t, state, frames), action,
                             None if held else action, source, 0,
                             "paused: test" if held else "", TIMING,
                             {"policy_action": action, "confidence": 0.5}))
            ee = ee + move
        writer.append(encoder.take())
        writer.commit()
        writer.close()
        seal_episode(path, steps, {"status": "complete"}, success=1)
        path.rename(path.with_name(path.name.removesuffix(".recording")))
    return root
