"""Replay a recorded sim episode in the simulator: do its actions reproduce the demonstration?

The episode's own station profile rebuilds the simulated arm (same scene settings, action
space and control period), the recorded scene seed and instruction reset the same layout, and
the recorded *filtered* actions (``steps/action``, what the robot received) are sent one per
step. Before each action the re-executed end-effector position is compared with the recorded
one (the observation of that step), and the task's success predicate is evaluated, which gives
the moment the task was accomplished (the recording only keeps the verdict). Camera views of the
re-executed world are rendered on request (JPEG-encoded, a few kB per frame).

The arm gets a private world name, so the live station's simulated cameras never see it. Run
it on one thread: the renderer's EGL context belongs to the thread that made it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vla_studio.data.episode_file import EpisodeReader

log = logging.getLogger(__name__)


class ReexecutionError(ValueError):
    """The episode cannot be re-executed; the message says why."""


@dataclass
class Reexecution:
    """The outcome of re-executing one episode.

    Attributes:
        steps: steps re-executed.
        seed, instruction: the scene seed and instruction the layout was reset with.
        ee_pos: float ``[T, 3]`` re-executed end-effector positions (metres, base frame),
            observed before each step's action, like the recorded ``ee_pos``.
        divergence_mm: ``[T]`` distance between re-executed and recorded positions.
        success_step: first step from which the task stays accomplished to the end (None when
            it never is, or the instruction is not a simulator task).
        frames: camera -> one JPEG per step of the re-executed view (empty without rendering).
        seconds: wall time taken.
    """

    steps: int
    seed: int
    instruction: str
    ee_pos: np.ndarray
    divergence_mm: np.ndarray
    success_step: int | None
    frames: dict[str, list[bytes]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def mean_mm(self) -> float:
        return float(np.mean(self.divergence_mm)) if self.steps else 0.0

    @property
    def max_mm(self) -> float:
        return float(np.max(self.divergence_mm)) if self.steps else 0.0

    @property
    def final_mm(self) -> float:
        return float(self.divergence_mm[-1]) if self.steps else 0.0


def can_reexecute(attrs: dict) -> str:
    """Why an episode with root attributes ``attrs`` cannot be re-executed ('' when it can)."""
    if str(attrs.get("robot_type", "")) != "sim":
        return "only episodes recorded on the simulated station can be re-executed"
    if int(attrs.get("seed", -1)) < 0:
        return ("the episode has no recorded scene seed (it was recorded by a version that "
                "stored none unless --seed was given)")
    if not attrs.get("station_profile"):
        return "the episode has no recorded station profile"
    return ""


def reexecute(path: str | Path, *, cameras: tuple[str, ...] = (), jpeg_quality: int = 85,
              progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> Reexecution:
    """Re-execute episode ``path`` in the simulator.

    Args:
        path: a sim episode file.
        cameras: recorded camera names to render from the re-executed world (at their recorded
            size); empty renders nothing (physics only: ~1,000 steps per second).
        jpeg_quality: quality of the rendered frames.
        progress: called with ``(done, total)`` every few steps.
        should_stop: polled between steps; True ends early (the result covers the steps done).

    Raises:
        ReexecutionError: not a sim episode, no seed, or the simulator cannot be built.
    """
    t0 = time.monotonic()
    with EpisodeReader(path) as reader:
        attrs = dict(reader.attrs)
        why = can_reexecute(attrs)
        if why:
            raise ReexecutionError(f"{Path(path).name}: {why}")
        actions = reader.step("action").astype(np.float64)
        recorded = reader.state().get("ee_pos")
        camera_meta = attrs.get("cameras") or {}
    if recorded is None:
        raise ReexecutionError(f"{Path(path).name}: no recorded ee_pos to compare with")
    robot, profile = _robot(attrs)
    instruction = str(attrs.get("language_instruction", ""))
    seed = int(attrs["seed"])
    renderers = {}
    try:
        robot.connect()
        robot.prepare_episode(instruction, seed)
        world = robot.world
        for cam in cameras:
            renderers[cam] = _renderer(world, profile, cam, camera_meta.get(cam) or {})
        task = _task(instruction)
        n = len(actions)
        ee = np.zeros((n, 3))
        accomplished = np.zeros(n, bool)
        frames: dict[str, list[bytes]] = {cam: [] for cam in renderers}
        done = 0
        for i in range(n):
            if should_stop is not None and should_stop():
                break
            ee[i] = robot.get_observation()["ee_pos"]
            accomplished[i] = bool(task.success(world)) if task is not None else False
            for cam, renderer in renderers.items():
                frames[cam].append(_jpeg(renderer.render(world.snapshot())[0], jpeg_quality))
            robot.send_action(actions[i])
            done = i + 1
            if progress is not None and (done % 25 == 0 or done == n):
                progress(done, n)
    finally:
        for renderer in renderers.values():
            renderer.close()
        robot.disconnect()
    divergence = np.linalg.norm(ee[:done] - recorded[:done], axis=1) * 1000.0
    return Reexecution(done, seed, instruction, ee[:done], divergence,
                       _success_step(accomplished[:done]) if task is not None else None, frames,
                       time.monotonic() - t0)


def _robot(attrs: dict):
    """The recorded station's simulated arm under a private world name."""
    from vla_studio.core.config import ConfigError
    from vla_studio.core.profile import parse_profile
    from vla_studio.devices.base import DeviceError
    from vla_studio.devices.registry import config_class_for
    from vla_studio.devices.robots.sim import SimRobot

    try:
        profile = parse_profile(tomllib.loads(str(attrs["station_profile"])), config_class_for,
                                source="the episode's recorded station profile")
    except (ConfigError, LookupError, tomllib.TOMLDecodeError) as exc:
        raise ReexecutionError(f"the recorded station profile cannot be used: {exc}") from None
    config = dataclasses.replace(profile.robot.config, world=f"reexecute-{uuid.uuid4().hex[:8]}")
    try:
        robot = SimRobot(config, str(attrs.get("action_space_kind") or profile.action_space.kind))
    except DeviceError as exc:
        raise ReexecutionError(str(exc)) from None
    robot.control_period_s = 1.0 / float(attrs.get("control_rate_hz") or profile.control_rate_hz)
    return robot, profile


def _renderer(world, profile, camera: str, meta: dict):
    from vla_studio.sim.render import SceneRenderer

    spec = next((c for c in profile.cameras if c.name == camera), None)
    if spec is None:
        raise ReexecutionError(f"camera {camera!r} is not in the recorded station profile")
    config = spec.config
    scene_camera = getattr(config, "camera", "") or camera
    width = int(meta.get("width") or config.width)
    height = int(meta.get("height") or config.height)
    return SceneRenderer(world.model, scene_camera, width, height,
                         shadows=bool(getattr(config, "shadows", False)))


def _task(instruction: str):
    from vla_studio.sim.tasks import UnknownInstruction, parse_instruction

    try:
        return parse_instruction(instruction)
    except UnknownInstruction:
        return None


def _jpeg(rgb: np.ndarray | None, quality: int) -> bytes:
    import cv2

    if rgb is None:
        return b""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""


def _success_step(accomplished: np.ndarray) -> int | None:
    """First step of the final run of accomplished steps (the task done and kept done)."""
    if not accomplished.size or not accomplished[-1]:
        hits = np.flatnonzero(accomplished)
        return int(hits[0]) if hits.size else None
    not_done = np.flatnonzero(~accomplished)
    return int(not_done[-1]) + 1 if not_done.size else 0
