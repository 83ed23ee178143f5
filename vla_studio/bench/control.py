"""Control-loop timing: run the loop with a robot that only counts commands.

Figures: achieved rate, tick-start jitter p50/p99 (ms), overruns and skipped ticks, and per-stage
p99 times, and the machine's own stalls over the same run (``host_noise_p99_ms`` /
``host_noise_max_ms``, see :mod:`vla_studio.bench.host_noise`). Target (idle 2-core machine): p99
jitter <= 2 ms at 100 Hz.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from vla_studio.bench.host_noise import HostNoiseProbe
from vla_studio.core.arbiter import FixedActionSource, SourceArbiter
from vla_studio.core.log_queue import logging_through_queue
from vla_studio.core.loop import ControlLoop
from vla_studio.core.safety import EStopLatch, SafetyLimits
from vla_studio.core.session import ControlMode, Session
from vla_studio.devices.robots.null import NullRobot

HELP = "control-loop rate and jitter with a counting robot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run")


def run(args: argparse.Namespace) -> dict:
    with logging_through_queue():  # as the app does (the CLI's stays installed after the run)
        return _run(args)


def _run(args: argparse.Namespace) -> dict:
    robot = NullRobot()
    robot.connect()
    latch = EStopLatch()
    session = Session(latch)
    limits = SafetyLimits()
    arbiter = SourceArbiter(limits)
    arbiter.set_teleop(FixedActionSource(np.array([0.001, 0, 0, 0, 0, 0, 1.0])))
    loop = ControlLoop(robot, {}, arbiter, session, limits, args.rate)
    session.start(ControlMode.TELEOP)
    print(f"running the control loop at {args.rate:g} Hz for {args.seconds:g} s ...", file=sys.stderr)
    with HostNoiseProbe(1.0 / args.rate) as probe:
        loop.start()
        time.sleep(args.seconds)
        loop.stop()
    s = loop.stats.snapshot()
    return {
        "rate_hz": args.rate,
        "achieved_hz": round(s.achieved_hz, 3),
        "ticks": s.ticks,
        "jitter_p50_ms": round(s.jitter_p50_ms, 4),
        "jitter_p99_ms": round(s.jitter_p99_ms, 4),
        "jitter_max_ms": round(s.jitter_max_ms, 4),
        "overruns": s.overruns,
        "skipped_ticks": s.skipped_ticks,
        "robot_commands": robot.sends,
        "stage_p99_ms": {k: round(v, 4) for k, v in s.stage_p99_ms.items()},
        **probe.figures,
    }
