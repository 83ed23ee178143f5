"""A simulated episode for the storage benchmark: the scripted expert works on the tabletop, the
scene's cameras render every tick, and each step goes through the recorder's own step encoder
(JPEG q90) and episode writer, exactly as the recorder's writer thread does. The simulation
runs in lock-step, not in real time: rendering three 640x480 cameras takes longer than the
episode lasts on two cores, and only the recording path's own CPU time is measured.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SIM_CAMERAS = ("front", "side", "wrist")
TASKS = ("put the blue cube in the bowl", "pick up the red cube",
         "push the green cube to the left", "stack the yellow cube on the red cube")


@dataclass
class SimEpisode:
    """What :func:`record_sim_episode` made.

    Attributes:
        path: the sealed episode file (JPEG storage).
        steps: steps recorded.
        record_cpu_s: CPU time the recording path took (JPEG encoding, checksums, HDF5 writes
            and commits), this thread only; rendering and physics excluded.
        render_s: wall time spent simulating and rendering (excluded).
        raw: a sample of the rendered frames, ``{camera: {step: RGB}}``, to compare pictures
            with what the camera saw (not only with the JPEGs).
    """

    path: Path
    steps: int
    record_cpu_s: float
    render_s: float
    raw: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)


def record_sim_episode(path: Path, seconds: float, rate_hz: float = 30.0,
                       cameras: tuple[str, ...] = SIM_CAMERAS, size: tuple[int, int] = (640, 480),
                       seed: int = 0, keep_every: int = 30,
                       progress=None) -> SimEpisode:
    """Record ``seconds`` of the expert at ``rate_hz`` with ``cameras`` rendered at ``size``.

    Each finished task starts the next one on a new scene, so the cameras always see motion.
    """
    from vla_studio.core.types import Frame, Observation, SourceKind, StageTiming, Step
    from vla_studio.data.episode_writer import EpisodeFileWriter, seal_episode
    from vla_studio.data.step_encoder import CameraSchema, EpisodeSchema, StepEncoder
    from vla_studio.sim.expert import ScriptedExpert
    from vla_studio.sim.render import SceneRenderer
    from vla_studio.sim.scene import load_model
    from vla_studio.sim.world import SimWorld

    width, height = size
    world = SimWorld(load_model())
    world.reset(seed)
    expert = ScriptedExpert(world)
    task = 0
    expert.reset(TASKS[task])
    renderers = {c: SceneRenderer(world.model, c, width, height, shadows=False) for c in cameras}
    state0 = world.observation()
    schema = EpisodeSchema(
        action_names=("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"),
        action_space_kind="ee_delta", state={k: tuple(v.shape) for k, v in state0.items()},
        cameras=tuple(CameraSchema(c, "sim", True, width, height, None, rate_hz, 0.5,
                                   intrinsics=dataclasses.asdict(renderers[c].intrinsics))
                     for c in cameras))
    attrs = {"episode_id": f"bench-storage-{seed:04d}", "created": "2026-12-01T10:00:00.000Z",
             "language_instruction": TASKS[0], "language_instructions": [TASKS[0]],
             "task": "bench", "operator": "bench", "station_name": "bench storage",
             "robot_type": "sim", "action_space_kind": "ee_delta",
             "action_names": list(schema.action_names),
             "cameras": {c.name: c.metadata() for c in schema.cameras},
             "control_rate_hz": rate_hz, "start_time_unix": 1.8e9}
    path.parent.mkdir(parents=True, exist_ok=True)
    live = path.with_name(path.name + ".recording")
    writer = EpisodeFileWriter(live, schema, attrs)
    encoder = StepEncoder(schema)
    timing = StageTiming(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    n = int(round(seconds * rate_hz))
    dt = 1.0 / rate_hz
    t0 = 1000.0
    raw: dict[str, dict[int, np.ndarray]] = {c: {} for c in cameras}
    cpu = render = 0.0
    c0 = time.thread_time()
    writer.create()
    cpu += time.thread_time() - c0
    try:
        for i in range(n):
            r0 = time.perf_counter()
            action = expert.act(dt)
            if action is None or expert.done:
                task = (task + 1) % len(TASKS)
                world.reset(seed + i + 1)
                expert.reset(TASKS[task])
                action = np.zeros(7)
            world.step_ee_delta(np.asarray(action, np.float64), dt)
            world.publish()
            snapshot = world.snapshot()
            tick = t0 + i * dt
            frames = {}
            for c, renderer in renderers.items():
                rgb, _ = renderer.render(snapshot)
                frames[c] = Frame(c, i, tick - 0.01, color=rgb)
                if i % keep_every == 0:
                    raw[c][i] = rgb.copy()
            obs = Observation(i, tick, world.observation(), frames)
            render += time.perf_counter() - r0
            c0 = time.thread_time()
            encoder.add(Step(i, tick, obs, np.asarray(action, np.float32),
                             np.asarray(action, np.float32), SourceKind.TELEOP, 0, "", timing))
            if encoder.pending >= 8 or i == n - 1:  # the writer commits about 4x a second
                writer.append(encoder.take())
                writer.commit()
            cpu += time.thread_time() - c0
            if progress is not None and i % 30 == 0:
                progress(i, n)
        c0 = time.thread_time()
        writer.close()
        seal_episode(live, n, {"status": "complete", "num_steps": n,
                               "duration_s": (n - 1) * dt}, success=1)
        live.rename(path)
        cpu += time.thread_time() - c0
    finally:
        for renderer in renderers.values():
            renderer.close()
    return SimEpisode(path, n, cpu, render, raw)
