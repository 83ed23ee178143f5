"""Simulated tabletop: physics speed, render speed per camera, scripted-expert success per task.

Figures:
  physics_steps_per_s   raw mj_step rate of the scene (2 ms steps; 25 per 20 Hz control tick)
  control_tick_ms       one 20 Hz control tick: IK + 25 physics steps + state publication
  render_fps            per camera and size, e.g. front_224x224, wrist_640x480 (shadows as the
                        camera default: on), plus render_fps_no_shadows
  expert_success        task family -> success rate of the scripted expert over N seeded
                        episodes (seeds --seed .. --seed+N-1), every action passed through the
                        default profile's safety filter; expert_clamps counts the filter's clips
  expert_episode_s      task family -> mean simulated duration of the successful episodes

Target (issue 3): expert success >= 0.95 for every task with --episodes 100.

Examples:
  vla-studio bench sim --json
  vla-studio bench sim --episodes 100 --json
"""

from __future__ import annotations

import argparse
import sys
import time

HELP = "simulated tabletop: physics steps/s, render fps, scripted-expert success per task"
RENDER_SIZES = ((224, 224), (640, 480))
RENDER_CAMERAS = ("front", "wrist")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=20, help="seeded expert episodes per task")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument("--max-seconds", type=float, default=40.0,
                        help="simulated time limit of one expert episode")
    parser.add_argument("--render-frames", type=int, default=30, help="frames per render figure")
    parser.add_argument("--skip-render", action="store_true", help="no render figures")


def run(args: argparse.Namespace) -> dict:
    import logging

    import numpy as np

    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # "no OpenGL_accelerate" is noise

    from vla_studio.sim.scene import load_model
    from vla_studio.sim.world import SimWorld

    model = load_model()
    world = SimWorld(model)
    world.reset(args.seed)
    result: dict = {}
    result.update(_physics(world))
    if not args.skip_render:
        result.update(_render(world, args.render_frames))
    if args.episodes > 0:
        result.update(_expert(world, args, np))
    return result


def _physics(world) -> dict:
    import mujoco

    print("physics ...", file=sys.stderr)
    m, d = world.model, world.data
    mujoco.mj_step(m, d, 200)
    n = 5000
    t = time.perf_counter()
    mujoco.mj_step(m, d, n)
    steps_per_s = n / (time.perf_counter() - t)
    world.reset(0)
    hold = [0.0] * 6 + [1.0]
    ticks = 100
    t = time.perf_counter()
    for _ in range(ticks):
        world.step_ee_delta(hold, 0.05)
    tick_ms = (time.perf_counter() - t) / ticks * 1000.0
    return {"physics_steps_per_s": round(steps_per_s, 1), "control_tick_ms": round(tick_ms, 3)}


def _render(world, frames: int) -> dict:
    from vla_studio.sim.render import SceneRenderer

    snap = world.snapshot()
    fps: dict[str, float] = {}
    fps_flat: dict[str, float] = {}
    for camera in RENDER_CAMERAS:
        for width, height in RENDER_SIZES:
            for shadows, out in ((True, fps), (False, fps_flat)):
                print(f"render {camera} {width}x{height} shadows={shadows} ...", file=sys.stderr)
                renderer = SceneRenderer(world.model, camera, width, height, shadows=shadows)
                try:
                    renderer.render(snap)  # first frame uploads textures
                    t = time.perf_counter()
                    for _ in range(frames):
                        renderer.render(snap)
                    out[f"{camera}_{width}x{height}"] = round(frames / (time.perf_counter() - t), 2)
                finally:
                    renderer.close()
    return {"render_fps": fps, "render_fps_no_shadows": fps_flat}


def _expert(world, args: argparse.Namespace, np) -> dict:
    from vla_studio.core.action_space import ActionSpace
    from vla_studio.core.safety import ActionFilter
    from vla_studio.devices.registry import load_station_profile
    from vla_studio.paths import default_station_profile
    from vla_studio.sim.expert import ScriptedExpert
    from vla_studio.sim.tasks import FAMILIES, sample_task

    profile = load_station_profile(default_station_profile())
    period = 1.0 / profile.control_rate_hz
    action_filter = ActionFilter(profile.safety, ActionSpace.ee_delta(), period)
    expert = ScriptedExpert(world)
    max_ticks = int(args.max_seconds / period)
    success: dict[str, float] = {}
    durations: dict[str, float] = {}
    clamps = 0
    failures: list[str] = []
    for family in FAMILIES:
        wins, times = 0, []
        t0 = time.perf_counter()
        for k in range(args.episodes):
            seed = args.seed + k
            task = sample_task(np.random.default_rng(seed), family)
            world.reset(seed, accept=task.accepts)
            expert.reset(task)
            ticks = 0
            while ticks < max_ticks:
                action = expert.act(period)
                if action is None:
                    break
                filtered = action_filter.apply(action, world.observation())
                clamps += int(filtered.flags != 0)
                world.step_ee_delta(filtered.action, period)
                ticks += 1
            if task.success(world):
                wins += 1
                times.append(ticks * period)
            else:
                failures.append(f"{task.name}@seed{seed}")
        success[family] = round(wins / max(1, args.episodes), 4)
        durations[family] = round(float(np.mean(times)), 2) if times else 0.0
        print(f"expert {family}: {wins}/{args.episodes} in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    return {"expert_success": success, "expert_episode_s": durations,
            "episodes_per_task": args.episodes, "expert_clamps": clamps,
            "expert_failures": failures}
