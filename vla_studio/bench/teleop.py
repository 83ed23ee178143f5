"""Gamepad input -> robot command latency, through the real path, at the profile's control rate.

```
 bench thread: SDL virtual joystick axis moves (t_event)
   -> SDL hub thread wakes on the event, reads the pad, publishes the gamepad state
   -> control-loop tick: arbiter -> TeleopActionSource.propose -> safety filter
   -> robot.send_action (t_command = tick start + observe + decide + filter time)
```
Each trial pushes the left stick forward at a random phase of the control period, finds the first
step whose command moves forward, then releases the stick and waits for the command to stop. The
station is the profile's (robot and cameras, so the machine is as loaded as in use) with one
gamepad bound to the virtual pad; the default profile is the dry run.

Target: p99 latency <= one control period + 5 ms (a fixed-rate loop adds up to one period by
itself; the input path must add almost nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time

HELP = "gamepad input -> robot command latency (SDL virtual joystick, real reader path)"
PAD_NAME = "VLA Studio bench pad"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=100, help="stick pushes to time")
    parser.add_argument("--seed", type=int, default=0, help="random seed for push times")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="station profile (default: --station, else the dry run)")


def run(args: argparse.Namespace) -> dict:
    import numpy as np

    from vla_studio.core.profile import DeviceSpec
    from vla_studio.core.session import ControlMode
    from vla_studio.devices.registry import load_station_profile
    from vla_studio.devices.teleop.gamepad import GamepadConfig
    from vla_studio.devices.teleop.virtual_gamepad import VirtualGamepad
    from vla_studio.paths import resource
    from vla_studio.station import Station

    path = args.profile or getattr(args, "station", None) or resource("stations", "dry_run.toml")
    profile = load_station_profile(path)
    base = next((s.config for s in profile.teleops if isinstance(s.config, GamepadConfig)),
                GamepadConfig(name="gamepad"))
    config = dataclasses.replace(base, name="bench_gamepad", name_contains=PAD_NAME, index=0,
                                 require_deadman=False)
    station = Station.from_profile(
        dataclasses.replace(profile, teleops=(DeviceSpec("gamepad", config),)))
    pad = VirtualGamepad("xbox", PAD_NAME)
    pad.attach()
    rng = random.Random(args.seed)
    period = 1.0 / profile.control_rate_hz
    latencies: list[float] = []
    missed = 0
    try:
        station.start()
        station.use_teleop("bench_gamepad")
        steps = station.loop.subscribe("bench-teleop", 1_000_000)
        station.session.start(ControlMode.TELEOP)
        _wait_for(steps, lambda s: s.requested is not None, 10.0)
        print(f"{args.trials} stick pushes at {profile.control_rate_hz:g} Hz "
              f"({profile.name}) ...", file=sys.stderr)
        for _ in range(args.trials):
            time.sleep(rng.uniform(0.0, period))
            t_event = time.monotonic()
            pad.set_axis("left_y", -1.0)
            step = _wait_for(steps, lambda s: s.t >= t_event and s.requested is not None
                             and s.requested[0] > 0.0, 1.0 + 10 * period)
            if step is None:
                missed += 1
            else:
                tm = step.timing
                t_command = step.t + (tm.observe_ms + tm.decide_ms + tm.filter_ms) / 1000.0
                latencies.append((t_command - t_event) * 1000.0)
            pad.set_axis("left_y", 0.0)
            t_release = time.monotonic()
            _wait_for(steps, lambda s: s.t >= t_release and s.requested is not None
                      and s.requested[0] == 0.0, 1.0 + 10 * period)
        stats = station.loop.stats.snapshot()
    finally:
        station.close()
        pad.detach()
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    p99 = float(np.percentile(lat, 99))
    target = period * 1000.0 + 5.0
    return {
        "profile": profile.name,
        "control_period_ms": round(period * 1000.0, 3),
        "trials": args.trials,
        "missed": missed,
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 3),
        "latency_p99_ms": round(p99, 3),
        "latency_max_ms": round(float(lat.max()), 3),
        "target_p99_ms": round(target, 3),
        "target_met": bool(p99 <= target and missed == 0),
        "loop_achieved_hz": round(stats.achieved_hz, 3),
        "loop_overruns": stats.overruns,
    }


def _wait_for(steps, predicate, timeout_s: float):
    """The first queued step satisfying ``predicate`` (earlier steps are dropped), or None."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        step = steps.get(timeout=remaining)
        if step is not None and predicate(step):
            return step
