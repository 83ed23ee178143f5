"""Policy runs: inference latency, queue underruns and loop overruns, locally and over loopback.

Two phases with the same policy, control loop and observations (a counting robot and two
224x224 camera frames refreshed every tick):

1. local: the policy in its child process (the default for local policies), reached through a
   Unix socket - ``latency_p50_ms``, ``latency_p99_ms``, ``achieved_hz``, ``queue_underruns``,
   ``loop_overruns``;
2. remote: the policy served by a real ``vla-studio serve`` process on 127.0.0.1, reached by the
   remote loader - ``remote_latency_p50_ms``, ``remote_latency_p99_ms`` and the same counters.

Latency is observation tick to chunk received. ``*_overhead_p50_ms`` subtracts the model's own
time as the server measured it: that is what the transport adds (target: remote <= 5 ms p50 for
two 224x224 cameras). Without --policy a freshly initialised ``small_conv`` checkpoint is
generated. On a shared 2-core machine these figures are noisy: compare runs on a quiet machine.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vla_studio.bench.policy_state import StatefulNullRobot, neutral_state
from vla_studio.core.arbiter import SourceArbiter
from vla_studio.core.loop import ControlLoop
from vla_studio.core.safety import EStopLatch, SafetyLimits
from vla_studio.core.session import ControlMode, Session
from vla_studio.core.types import Frame

HELP = "policy inference latency, underruns and overruns (local child process and loopback)"


class _FreshFrames:
    """A camera whose latest frame is always fresh (one fixed image, stamped on every read):
    the benchmark measures the policy path, not capture."""

    def __init__(self, name: str, size: tuple[int, int], seed: int) -> None:
        self.name = name
        self._image = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
        self._index = 0

    def latest(self) -> Frame:
        self._index += 1
        return Frame(self.name, self._index, time.monotonic(), color=self._image)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default=None, metavar="SOURCE",
                        help="checkpoint folder, file or plugin:NAME (default: a generated "
                             "small_conv policy)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rate", type=float, default=None,
                        help="control rate, Hz (default: the policy's own)")
    parser.add_argument("--mode", default="chunk", choices=("chunk", "replan", "ensemble"))
    parser.add_argument("--width", type=int, default=32,
                        help="generated policy: channels of its first conv layer")
    parser.add_argument("--chunk", type=int, default=10, help="generated policy: chunk size")
    parser.add_argument("--no-remote", action="store_true", help="skip the loopback phase")


def _phase(source: str, rate: float | None, seconds: float, mode: str) -> dict:
    from vla_studio.policies.hosts import make_host
    from vla_studio.policies.runner import PolicyRunner, RunnerSettings

    settings = RunnerSettings(mode=mode, request_timeout_s=30.0)
    runner = PolicyRunner(make_host(source, request_timeout=30.0), None, settings)
    spec = runner.start("pick up the red cube")
    try:
        hz = rate or spec.control_rate_hz
        cameras = {c: _FreshFrames(c, spec.image_size, i) for i, c in enumerate(spec.cameras)}
        robot = StatefulNullRobot()  # with the state the policy reads (e.g. ee_quat)
        robot.extra_state = neutral_state(spec.state_features, robot.observation_features)
        robot.connect()
        session = Session(EStopLatch())
        limits = SafetyLimits(policy_timeout_ms=1000.0)
        arbiter = SourceArbiter(limits)
        arbiter.set_policy(runner)
        loop = ControlLoop(robot, cameras, arbiter, session, limits, hz)
        loop.start()
        session.start(ControlMode.POLICY)
        # Underruns while the first chunk is computed are not counted (the runner says
        # "waiting for the first chunk"); the measurement starts with the run.
        time.sleep(seconds)
        session.pause("benchmark over")
        loop.stop()
    finally:
        runner.stop()
    s, r = loop.stats.snapshot(), runner.snapshot()
    return {
        "latency_p50_ms": round(r.latency_p50_ms, 3), "latency_p99_ms": round(r.latency_p99_ms, 3),
        "infer_p50_ms": round(r.infer_p50_ms, 3),
        "overhead_p50_ms": round(r.latency_p50_ms - r.infer_p50_ms, 3),
        "achieved_hz": round(s.achieved_hz, 3), "queue_underruns": r.underruns,
        "loop_overruns": s.overruns, "chunks": r.chunks, "errors": r.errors, "rate_hz": hz,
        "stale_actions_skipped": r.skipped_stale,
    }


def _serve(source: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start `vla-studio serve` on a free loopback port; returns the process and its URL."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with log_path.open("w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "vla_studio", "--log-level", "WARNING",
                                 "serve", "--policy", source, "--port", "0"],
                                stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    ready, _, _ = select.select([proc.stdout], [], [], 120.0)
    line = proc.stdout.readline() if ready else ""
    match = re.search(r"ws://127\.0\.0\.1:\d+", line)
    if not match:
        _stop(proc)
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"vla-studio serve did not start: {tail[0]}")
    return proc, match.group(0)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def run(args: argparse.Namespace) -> dict:
    from vla_studio.policies.small_conv import POLICY_TYPE, SmallConvConfig, write_small_conv

    with tempfile.TemporaryDirectory(prefix="vla-bench-policy-") as tmp:
        source = args.policy
        params = None
        if source is None:
            cfg = SmallConvConfig(name=POLICY_TYPE, width=args.width, chunk_size=args.chunk)
            source = str(write_small_conv(Path(tmp) / "small_conv", cfg))
            from safetensors import safe_open

            with safe_open(str(Path(source) / "model.safetensors"), "np") as f:
                params = int(sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()))
        print(f"benchmarking {source}: local child process, {args.seconds:g} s ...", file=sys.stderr)
        local = _phase(source, args.rate, args.seconds, args.mode)
        result: dict = {"policy": args.policy or f"generated small_conv (width {args.width})",
                        "policy_params": params, "mode": args.mode, **local}
        if not args.no_remote:
            print(f"... and over loopback (vla-studio serve), {args.seconds:g} s ...", file=sys.stderr)
            proc, url = _serve(source, Path(tmp) / "serve.log")
            try:
                remote = _phase(url, args.rate, args.seconds, args.mode)
            finally:
                _stop(proc)
            result.update({f"remote_{k}": v for k, v in remote.items()
                           if k not in ("rate_hz",)})
    return result
