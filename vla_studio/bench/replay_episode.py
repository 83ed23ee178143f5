"""Synthetic episodes for the replay benchmark (and tests): written by the recorder's own
step encoder and episode writer, so the file layout is exactly a recording's.

Cameras can run at their own rates with their own latency (a frame seen by several ticks is
stored once, a frame still in transit is stored with a later tick), drop frames, carry depth;
the steps carry interventions, holds, safety clamps and an e-stop, so every timeline event kind
occurs. Frames are a realistic table texture (~35 kB per 640x480 JPEG) that shifts every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_studio.core.safety import SafetyFlag

ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


@dataclass(frozen=True)
class CameraPlan:
    """One synthetic camera: name, size, frame rate, latency (capture to tick), depth."""

    name: str
    width: int = 640
    height: int = 480
    fps: float = 30.0
    latency_s: float = 0.012
    depth: bool = False
    drop_every: int = 0  # the camera drops one frame every N frames (0: never)


@dataclass(frozen=True)
class EpisodePlan:
    """What a synthetic episode holds."""

    steps: int = 300
    rate_hz: float = 30.0
    cameras: tuple[CameraPlan, ...] = (CameraPlan("front"), CameraPlan("wrist"),
                                       CameraPlan("side"))
    instruction: str = "pick up the red cube"
    success: int = 1
    events: bool = True  # interventions, holds, clamps and an e-stop
    seed: int = 0
    episode_id: str = ""
    created: str = "2026-12-01T10:00:00.000Z"
    texture_frames: int = 60  # distinct textures (each frame still gets its own noise)
    extra_attrs: dict = field(default_factory=dict)


def write_episode(path: Path, plan: EpisodePlan) -> Path:
    """Write ``plan`` as a sealed episode file at ``path`` (``.../episodes/<stem>.h5``)."""
    import cv2

    from vla_studio.bench.frames import scene_texture
    from vla_studio.core.types import Frame, Observation, SourceKind, StageTiming, Step
    from vla_studio.data.episode_writer import EpisodeFileWriter, seal_episode
    from vla_studio.data.step_encoder import CameraSchema, EpisodeSchema, StepEncoder

    rng = np.random.default_rng(plan.seed)
    cams = plan.cameras
    schema = EpisodeSchema(
        action_names=ACTION_NAMES, action_space_kind="ee_delta",
        state={"ee_pos": (3,), "ee_quat": (4,), "gripper": (1,), "joint_pos": (7,)},
        cameras=tuple(CameraSchema(c.name, "synthetic", True, c.width, c.height,
                                   (c.height, c.width) if c.depth else None, c.fps, 0.5,
                                   depth_scale=0.001 if c.depth else None) for c in cams))
    textures = [scene_texture(rng, c.width, c.height) for c in cams]
    noise = [rng.integers(0, 4, (8, c.height, c.width, 3), np.uint8) for c in cams]
    n, dt = plan.steps, 1.0 / plan.rate_hz
    t0 = 1000.0
    ticks = t0 + np.arange(n) * dt + rng.normal(0, 0.0005, n)
    source, flags = _sources_and_flags(n, plan.events)
    walk = np.cumsum(rng.normal(0, 0.004, (n, 3)), axis=0)
    ee_pos = (np.array([0.45, 0.0, 0.2]) + walk).astype(np.float32)
    action = np.zeros((n, 7), np.float32)
    action[1:, :3] = np.diff(ee_pos, axis=0)
    action[:, 6] = (np.arange(n) < n // 2).astype(np.float32)
    action[source == 0, :6] = 0.0
    requested = action.copy()
    requested[flags & int(SafetyFlag.CAPPED_DELTA) != 0, :3] *= 1.6
    attrs = {"episode_id": plan.episode_id or f"bench-{plan.seed:04d}",
             "created": plan.created, "language_instruction": plan.instruction,
             "language_instructions": [plan.instruction], "task": "pick_cube",
             "operator": "bench", "station_name": "bench", "robot_type": "synthetic",
             "action_space_kind": schema.action_space_kind,
             "action_names": list(ACTION_NAMES),
             "cameras": {c.name: c.metadata() for c in schema.cameras},
             "control_rate_hz": plan.rate_hz, "start_time_unix": 1.8e9,
             **plan.extra_attrs}
    timing = StageTiming(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    live = path.with_name(path.name + ".recording")
    writer = EpisodeFileWriter(live, schema, attrs)
    writer.create()
    encoder = StepEncoder(schema)
    last: dict[str, Frame] = {}
    for i in range(n):
        frames = {}
        for k, cam in enumerate(cams):
            frame = _latest_frame(cam, k, ticks[i], t0, textures[k], noise[k], last.get(cam.name))
            if frame is not None:
                last[cam.name] = frame
            frames[cam.name] = frame
        obs = Observation(i, float(ticks[i]), {
            "ee_pos": ee_pos[i], "ee_quat": np.array([0.0, 1.0, 0.0, 0.0], np.float32),
            "gripper": action[i, 6:], "joint_pos": np.full(7, math.sin(i * dt), np.float32)},
            frames)
        src = SourceKind.INTERVENTION if source[i] == 3 else (
            SourceKind.HOLD if source[i] == 0 else SourceKind.TELEOP)
        encoder.add(Step(i, float(ticks[i]), obs, action[i],
                         None if source[i] == 0 else requested[i], src, int(flags[i]), "",
                         timing))
        if encoder.pending >= 60 or i == n - 1:
            writer.append(encoder.take())
            writer.commit()
    writer.close()
    seal_episode(live, n, {"status": "complete", "num_steps": n,
                           "duration_s": float(ticks[-1] - ticks[0])}, success=plan.success)
    live.rename(path)
    del cv2
    return path


def _latest_frame(cam: CameraPlan, k: int, tick: float, t0: float, texture: np.ndarray,
                  noise: np.ndarray, previous):
    """The newest frame of ``cam`` delivered by ``tick`` (captured ``latency_s`` earlier)."""
    import cv2

    from vla_studio.core.types import Frame

    index = int(math.floor((tick - cam.latency_s - t0) * cam.fps))
    if index < 0:
        return previous
    if cam.drop_every and index % cam.drop_every == cam.drop_every - 1:
        index -= 1  # this frame was dropped: the previous one is still the newest
    if previous is not None and previous.index == index:
        return previous
    capture = t0 + index / cam.fps + 0.002 * math.sin(index + k)
    color = cv2.add(np.roll(texture, 3 * index, axis=1), noise[index % len(noise)])
    depth = None
    if cam.depth:
        yy, xx = np.mgrid[0:cam.height, 0:cam.width]
        depth = (400 + 2 * xx + yy + (index % 50) * 4).astype(np.uint16)
        depth[: cam.height // 10] = 0  # no return at the top: drawn black
    return Frame(cam.name, index, capture, color=color, depth=depth)


def _sources_and_flags(n: int, events: bool) -> tuple[np.ndarray, np.ndarray]:
    """Who drove each step, and the safety flags: held at the start, an intervention in the
    middle, clamps here and there, an e-stop (then held) near the end."""
    source = np.ones(n, np.int64)
    flags = np.zeros(n, np.int64)
    if not events or n < 20:
        return source, flags
    source[: max(2, n // 60)] = 0
    source[int(n * 0.40):int(n * 0.48)] = 3
    for a in (int(n * 0.2), int(n * 0.6)):
        flags[a:a + max(2, n // 100)] |= int(SafetyFlag.CAPPED_DELTA)
    stop = int(n * 0.9)
    flags[stop:stop + 3] |= int(SafetyFlag.ESTOP)
    source[stop:stop + 3] = 0
    return source, flags
