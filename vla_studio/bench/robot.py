"""Robot timing for any connected robot of a station profile (the sim, franky-sim, a ROS 2 arm).

Figures (host monotonic, noisy on a shared machine):

* ``command_round_trip_p50_ms`` / ``_p99_ms``: ``get_observation()`` + ``send_action()`` of a
  small motion, as one control tick does it;
* ``state_rate_hz``: how often the observed state changes (a driver that reports a cached
  state at a lower rate than the loop shows here);
* ``stop_latency_p50_ms`` / ``_max_ms``: from ``emergency_hold()`` being called (what the e-stop
  relay does) to it returning, i.e. the driver's protective stop handed to the robot, over
  ``--stops`` trials with the robot moving;
* ``settle_after_stop_mm``: how far the end effector (if reported) travelled after the stop.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from vla_studio.core.action_space import EE_DELTA
from vla_studio.core.log_queue import logging_through_queue

HELP = "command round trip, state rate and stop latency of a station's robot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--station", required=True, help="station profile (TOML)")
    parser.add_argument("--seconds", type=float, default=5.0, help="round-trip phase length")
    parser.add_argument("--stops", type=int, default=5, help="emergency-hold trials")


def run(args: argparse.Namespace) -> dict:
    with logging_through_queue():
        return _run(args)


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def _motion(robot, state: dict, k: int) -> np.ndarray:
    """A small back-and-forth motion in the robot's action space."""
    space = robot.action_space
    action = space.hold_action(state, robot.last_sent)
    sign = 1.0 if (k // 20) % 2 == 0 else -1.0
    if space.kind == EE_DELTA:
        action[0] = 0.002 * sign
    else:
        action[0] = action[0] + 0.01 * sign
    return action


def _run(args: argparse.Namespace) -> dict:
    from vla_studio.devices.registry import ROBOTS, load_station_profile

    profile = load_station_profile(args.station)
    robot = ROBOTS.load(profile.robot.type)(profile.robot.config, profile.action_space.kind)
    period = 1.0 / profile.control_rate_hz
    robot.control_period_s = period
    print(f"connecting {profile.robot.type} robot {robot.name!r} ...", file=sys.stderr)
    robot.connect()
    try:
        round_trips, changes, last = [], 0, None
        t_end = time.monotonic() + args.seconds
        k, t0 = 0, time.monotonic()
        while time.monotonic() < t_end:
            t = time.monotonic()
            state = robot.get_observation()
            robot.send_action(_motion(robot, state, k))
            round_trips.append((time.monotonic() - t) * 1000.0)
            key = tuple(np.round(np.concatenate([np.asarray(v, float).ravel()
                                                 for v in state.values()]), 7))
            changes += key != last
            last, k = key, k + 1
            time.sleep(max(0.0, t + period - time.monotonic()))
        state_rate = changes / (time.monotonic() - t0)
        stops, settle = [], []
        for trial in range(args.stops):
            for j in range(10):  # get it moving
                state = robot.get_observation()
                robot.send_action(_motion(robot, state, 0 if trial % 2 == 0 else 20))
                time.sleep(period)
            before = robot.get_observation().get("ee_pos")
            t = time.monotonic()
            robot.emergency_hold()
            stops.append((time.monotonic() - t) * 1000.0)
            time.sleep(0.5)
            after = robot.get_observation().get("ee_pos")
            if before is not None and after is not None:
                settle.append(float(np.linalg.norm(np.asarray(after) - np.asarray(before))) * 1e3)
            robot.hold(robot.get_observation())
            robot.release_emergency_hold()
    finally:
        robot.disconnect()
    return {
        "robot": profile.robot.type,
        "action_kind": profile.action_space.kind,
        "rate_hz": profile.control_rate_hz,
        "ticks": len(round_trips),
        "command_round_trip_p50_ms": _percentile(round_trips, 50),
        "command_round_trip_p99_ms": _percentile(round_trips, 99),
        "state_rate_hz": round(state_rate, 2),
        "stop_latency_p50_ms": _percentile(stops, 50),
        "stop_latency_max_ms": round(max(stops), 3) if stops else float("nan"),
        "settle_after_stop_mm": _percentile(settle, 50),
    }
