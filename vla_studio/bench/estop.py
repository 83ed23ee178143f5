"""E-stop latency under load: stops triggered at random moments while the loop runs a policy.

Load: a "policy" whose inference thread burns CPU in pure Python (the worst case for the GIL), a
second model thread that hangs forever, and a "GUI" thread that is blocked, so the stop can only
arrive through the latch and the control-loop thread. Each trial: run the policy, wait a random
time, trigger the latch from a separate thread, measure until the robot receives its hold command,
reset (two steps) and start again.

Targets: p99 stop latency <= one control period, max <= two, zero missed stops. The machine's own
stalls over the same run are reported beside them (``host_noise_p99_ms`` / ``host_noise_max_ms``,
see :mod:`vla_studio.bench.host_noise`).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time

import numpy as np

from vla_studio.bench.host_noise import HostNoiseProbe
from vla_studio.core.arbiter import ActionSource, Proposal, SourceArbiter
from vla_studio.core.loop import ControlLoop
from vla_studio.core.safety import EStopLatch, SafetyLimits
from vla_studio.core.session import ControlMode, Session
from vla_studio.core.types import Observation, SourceKind
from vla_studio.devices.robots.null import NullRobot

HELP = "e-stop latency under a busy policy, a hung model and a blocked GUI"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    parser.add_argument("--trials", type=int, default=200, help="number of stops")
    parser.add_argument("--seed", type=int, default=0, help="random seed for trigger times")


class BusyPolicySource(ActionSource):
    """A policy source whose inference thread spins in pure Python between chunks."""

    kind = SourceKind.POLICY

    def __init__(self, inference_ms: float = 30.0) -> None:
        self._inference_s = inference_ms / 1000.0
        self._chunk: tuple[float, np.ndarray] | None = None
        self._i = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._infer_forever, name="busy-policy", daemon=True)
        self._thread.start()

    def _infer_forever(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            x = 0
            while time.monotonic() - t0 < self._inference_s:  # hold the GIL as a Python model would
                x += 1
            actions = np.tile([0.001, 0, 0, 0, 0, 0, 1.0], (8, 1))
            self._chunk = (time.monotonic(), actions)
            self._i = 0

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        chunk = self._chunk
        if chunk is None:
            return Proposal(None, now, "no chunk yet")
        stamp, actions = chunk
        i = min(self._i, len(actions) - 1)
        self._i += 1
        return Proposal(actions[i], stamp)

    def flush(self) -> None:
        self._chunk = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    period = 1.0 / args.rate
    robot = NullRobot()
    robot.connect()
    latch = EStopLatch()
    session = Session(latch)
    limits = SafetyLimits()
    arbiter = SourceArbiter(limits)
    policy = BusyPolicySource()
    arbiter.set_policy(policy)
    loop = ControlLoop(robot, {}, arbiter, session, limits, args.rate)

    hung = threading.Event()  # a model that never returns
    threading.Thread(target=hung.wait, name="hung-model", daemon=True).start()
    gui_blocked = threading.Event()
    threading.Thread(target=gui_blocked.wait, name="blocked-gui", daemon=True).start()

    with HostNoiseProbe(period) as probe:
        loop.start()
        latencies: list[float] = []
        missed = 0
        print(f"{args.trials} stops at {args.rate:g} Hz under load ...", file=sys.stderr)
        for trial in range(args.trials):
            session.start(ControlMode.POLICY)
            moves_before = robot.sends - robot.holds
            deadline = time.monotonic() + 2.0
            while robot.sends - robot.holds <= moves_before and time.monotonic() < deadline:
                time.sleep(period / 4)  # wait until the policy moves the robot again
            time.sleep(rng.uniform(0.5, 3.0) * period)
            holds_before = len(robot.hold_times)
            trigger = threading.Thread(target=latch.trigger, args=("bench", "bench-trigger"))
            trigger.start()
            trigger.join()
            t_trigger = latch.event.t if latch.event else time.monotonic()
            # Sleep rather than poll, so measuring adds no GIL contention of its own.
            time.sleep(5 * period)
            after = [t for t in robot.hold_times[holds_before:] if t >= t_trigger]
            received = after[0] if after else None
            if received is None:
                missed += 1
            else:
                latencies.append((received - t_trigger) * 1000.0)
            latch.request_reset()
            latch.confirm_reset()
        loop.stop()
    policy.close()
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "control_period_ms": round(period * 1000.0, 3),
        "trials": args.trials,
        "stop_latency_p50_ms": round(float(np.percentile(lat, 50)), 4),
        "stop_latency_p99_ms": round(float(np.percentile(lat, 99)), 4),
        "stop_latency_max_ms": round(float(lat.max()), 4),
        "missed": missed,
        "loop_overruns": loop.stats.overruns,
        **probe.figures,
    }
