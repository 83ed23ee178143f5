"""Simulated tabletop: physics speed, render speed per camera, scripted-expert success per task.

Figures:
  physics_steps_per_s   raw mj_step rate of the scene (2 ms steps; 25 per 20 Hz control tick)
  control_tick_ms       one 20 Hz control tick: IK + 25 physics steps + state publication
  render_fps            per camera and size, e.g. front_224x224, wrist_640x480 (the camera
                        default: no shadows), plus render_fps_shadows (shadows = true)
  expert_success        task family -> success rate of the scripted expert over N seeded
                        episodes (seeds --seed .. --seed+N-1), every action passed through the
                        default profile's safety filter; expert_clamps counts the filter's clips
  expert_episode_s      task family -> mean simulated duration of the successful episodes
  loop_with_cameras     the default station running for --loop-seconds (control loop, both
                        cameras rendering, the expert driving): loop rate, tick-start jitter
                        p50/p99/max, overruns, per-stage p99, and each camera's delivered fps

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
    parser.add_argument("--loop-seconds", type=float, default=10.0,
                        help="run the default station this long for the loop figures (0 = skip)")


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
    if args.loop_seconds > 0:
        result["loop_with_cameras"] = _loop(args.loop_seconds)
    if args.episodes > 0:
        result.update(_expert(world, args, np))
    return result


def _loop(seconds: float) -> dict:
    from vla_studio.core.session import ControlMode
    from vla_studio.devices.registry import load_station_profile
    from vla_studio.paths import default_station_profile
    from vla_studio.station import Station

    print(f"default station with cameras for {seconds:g} s ...", file=sys.stderr)
    station = Station.from_profile(load_station_profile(default_station_profile()))
    instructions = ("pick up the red cube", "put the blue cube in the bowl",
                    "push the green cube to the left", "stack the yellow cube on the red cube")
    try:
        station.start()
        station.use_teleop(next(iter(station.teleops)))
        end = time.monotonic() + seconds
        k = 0
        while time.monotonic() < end:
            station.begin_episode(instructions[k % len(instructions)], seed=k)
            station.session.start(ControlMode.TELEOP)
            episode_end = min(end, time.monotonic() + 15.0)
            while time.monotonic() < episode_end:
                time.sleep(0.2)
                step = station.loop.snapshot.get()
                if step is not None and step.hold_reason == "task done":
                    break
            k += 1
        stats = station.loop.stats.snapshot()
        cameras = {name: round(cam.status().fps, 2) for name, cam in station.cameras.items()}
        dropped = {name: cam.status().dropped for name, cam in station.cameras.items()}
    finally:
        station.close()
    return {
        "rate_hz": stats.rate_hz,
        "achieved_hz": round(stats.achieved_hz, 3),
        "ticks": stats.ticks,
        "jitter_p50_ms": round(stats.jitter_p50_ms, 3),
        "jitter_p99_ms": round(stats.jitter_p99_ms, 3),
        "jitter_max_ms": round(stats.jitter_max_ms, 3),
        "overruns": stats.overruns,
        "skipped_ticks": stats.skipped_ticks,
        "stage_p99_ms": {k: round(v, 3) for k, v in stats.stage_p99_ms.items()},
        "camera_fps": cameras,
        "camera_dropped": dropped,
        "episodes": k,
    }


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
    fps_shadows: dict[str, float] = {}
    for camera in RENDER_CAMERAS:
        for width, height in RENDER_SIZES:
            for shadows, out in ((False, fps), (True, fps_shadows)):
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
    return {"render_fps": fps, "render_fps_shadows": fps_shadows}


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
