"""E-stop latency under the app's own load, including a robot driver that blocks.

Load, as in the app: the main window (offscreen) painting two 640x480 camera panes at display
rate on the GUI thread, a pure-Python busy thread, a "policy" whose inference thread burns CPU in
pure Python (the worst case for the GIL), a second model thread that hangs forever, and a robot
whose ``send_action`` blocks for ``--block-ms`` on every ``--block-every``-th trial. Each trial:
run the policy, wait a random time (on a blocking trial: until the loop thread is stuck inside
``send_action``), trigger the latch from a separate thread, measure until the robot receives the
stop (its ``emergency_hold``, sent by the latch's relay thread, or the loop's hold, whichever
comes first; on a blocking trial only the emergency hold can arrive in time), reset in two steps
and start again.

Targets (quiet 2-core machine): p99 stop latency <= one control period, max <= two, zero missed
stops, and ``stop_latency_blocked_driver_max_ms`` <= two periods. The machine's own stalls over
the same run are reported beside them (``host_noise_p99_ms`` / ``host_noise_max_ms``, see
:mod:`vla_studio.bench.host_noise`). ``--no-gui`` (or a missing PySide6) replaces the window
with nothing; ``gui_load`` in the figures says which load ran.

``--policy SOURCE`` (a checkpoint folder, ``untrained``, ``plugin:NAME``...) replaces the busy
pure-Python policy with a real one run as the app runs it: the policy runner with the model in
its child process, in ensemble mode (a chunk requested every tick); each stop that is not into
a blocked driver waits for a request in flight, so it comes while the model infers (its chunks
drive the robot between the stops). The bench robot also reports the state the policy reads
(zeros, an identity quaternion). The figures keep their keys and add ``policy``,
``policy_chunks``, ``policy_latency_p50_ms`` and ``stops_while_inferring``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import random
import sys
import threading
import time
from typing import Callable

import numpy as np

from vla_studio.bench.host_noise import HostNoiseProbe
from vla_studio.bench.policy_state import neutral_state
from vla_studio.core.arbiter import ActionSource, Proposal
from vla_studio.core.log_queue import logging_through_queue
from vla_studio.core.profile import parse_profile
from vla_studio.core.session import ControlMode
from vla_studio.core.types import Observation, SourceKind
from vla_studio.devices.registry import CAMERAS, config_class_for
from vla_studio.devices.robots.null import NullRobot, NullRobotConfig
from vla_studio.station import Station

HELP = "e-stop latency under GUI, Python and policy load, with a driver that blocks"
BENCH_APPLICATION = "VLA Studio bench"  # keeps the bench's window layout out of the user's


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    parser.add_argument("--trials", type=int, default=200, help="number of stops")
    parser.add_argument("--seed", type=int, default=0, help="random seed for trigger times")
    parser.add_argument("--block-every", type=int, default=4,
                        help="every Nth trial stops a robot stuck in send_action (0: never)")
    parser.add_argument("--block-ms", type=float, default=200.0,
                        help="how long the stuck send_action blocks")
    parser.add_argument("--no-gui", action="store_true",
                        help="no main window on the GUI thread (headless machines)")
    parser.add_argument("--policy", metavar="SOURCE", default=None,
                        help="a real policy inferring through the runner's child process "
                             "(checkpoint folder, untrained, plugin:NAME) instead of the busy "
                             "pure-Python one")


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


class BlockingRobot(NullRobot):
    """A counting robot whose next ``send_action`` can be made to block (a stuck driver)."""

    def __init__(self, block_s: float) -> None:
        super().__init__(NullRobotConfig(name="null"))
        self.block_s = block_s
        self.block_next = threading.Event()
        self.blocked = threading.Event()  # set while a send is blocked

    def _send(self, action: np.ndarray) -> np.ndarray:
        if self.block_next.is_set():
            self.block_next.clear()
            self.blocked.set()
            time.sleep(self.block_s)  # releases the GIL, like a driver waiting on a socket
            self.blocked.clear()
        return super()._send(action)


class PolicyStateRobot(BlockingRobot):
    """The blocking robot, also reporting the state features a real policy reads (zeros; an
    identity quaternion), so the policy infers on every observation."""

    def __init__(self, block_s: float) -> None:
        super().__init__(block_s)
        self.extra_state: dict[str, np.ndarray] = {}

    def provide(self, features: dict) -> None:
        """Report ``features`` (name -> Feature) the null robot does not have."""
        self.extra_state = neutral_state(features, self.observation_features)

    def get_observation(self) -> dict[str, np.ndarray]:
        return {**super().get_observation(), **self.extra_state}


def real_policy(args: argparse.Namespace, station: Station, robot: PolicyStateRobot):
    """The runner for ``--policy`` (started: the model is loaded in its child process)."""
    from vla_studio.policies.hosts import make_host
    from vla_studio.policies.runner import PolicyRunner, RunnerSettings

    # The bench station is synthetic (no fit check: its rate and cameras are the bench's own);
    # ensembling asks for a chunk every tick, so the model is inferring whenever a stop comes;
    # a generous request timeout: under this load a chunk is slow, not hung.
    settings = RunnerSettings(mode="ensemble", request_timeout_s=10.0)
    host = make_host(args.policy, where="child", request_timeout=settings.request_timeout_s)
    runner = PolicyRunner(host, None, settings, events=station.events, session=station.session)
    spec = runner.start("pick up the red cube")
    robot.provide(dict(spec.state_features))
    return runner


def _busy_python(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def build_station(args: argparse.Namespace) -> tuple[Station, BlockingRobot]:
    """The bench station: the blocking robot and two synthetic 640x480 cameras."""
    cameras = [{"type": "synthetic", "name": name, "width": 640, "height": 480, "fps": 30}
               for name in ("front", "wrist")]
    # A deadline shorter than the block: the stuck send also exercises the loop's takeover.
    deadline_ms = max(20.0, min(100.0, args.block_ms / 2))
    profile = parse_profile({"name": "estop benchmark", "control_rate_hz": args.rate,
                             "robot": {"type": "null"}, "cameras": cameras,
                             "safety": {"robot_deadline_ms": deadline_ms}},
                            config_class_for, source="bench estop")
    robot = (PolicyStateRobot if getattr(args, "policy", None) else BlockingRobot)(
        args.block_ms / 1000.0)
    robot.control_period_s = 1.0 / args.rate
    station = Station(profile, robot,
                      {s.name: CAMERAS.load(s.type)(s.config) for s in profile.cameras}, {})
    return station, robot


def run_trials(args: argparse.Namespace, station: Station, robot: BlockingRobot,
               policy: ActionSource | None = None) -> dict:
    """The stops themselves (on a thread of their own when the window has the main thread).

    With a real policy (``--policy``) each non-blocking stop comes while the model is inferring:
    the trial waits for a request in flight, then triggers within a few milliseconds."""
    rng = random.Random(args.seed)
    period = 1.0 / args.rate
    latch, session = station.latch, station.session
    latencies: list[float] = []
    blocked_latencies: list[float] = []
    relay_latencies: list[float] = []
    missed = inferring_at_stop = 0
    inferring = getattr(policy, "inferring", None) if getattr(args, "policy", None) else None
    for trial in range(args.trials):
        blocking = args.block_every > 0 and trial % args.block_every == args.block_every - 1
        _wait(lambda: not latch.is_tripped and not robot.emergency_held, 2.0)
        session.start(ControlMode.POLICY)
        moves_before = robot.sends - robot.holds
        _wait(lambda: robot.sends - robot.holds > moves_before, 2.0, period / 4)
        if blocking:
            robot.block_next.set()
            robot.blocked.wait(2.0)  # the loop thread is now stuck inside send_action
            time.sleep(rng.uniform(0.0, 0.4) * min(args.block_ms / 1000.0, 0.05))
        elif inferring is not None:
            _wait(lambda: bool(policy.inferring), 2.0, 0.0005)  # type: ignore[union-attr]
            time.sleep(rng.uniform(0.0, 0.005))
        else:
            time.sleep(rng.uniform(0.5, 3.0) * period)
        if inferring is not None and policy.inferring:  # type: ignore[union-attr]
            inferring_at_stop += 1
        holds_before, emergencies_before = len(robot.hold_times), len(robot.emergency_times)
        trigger = threading.Thread(target=latch.trigger, args=("bench", "bench-trigger"))
        trigger.start()
        trigger.join()
        t_trigger = latch.event.t if latch.event else time.monotonic()
        # Sleep rather than poll, so measuring adds no GIL contention of its own.
        time.sleep(5 * period + (args.block_ms / 1000.0 if blocking else 0.0))
        relay = [t for t in robot.emergency_times[emergencies_before:] if t >= t_trigger]
        holds = [t for t in robot.hold_times[holds_before:] if t >= t_trigger]
        first = min(relay[:1] + holds[:1], default=None)
        if blocking:
            first = relay[0] if relay else None
        if first is None:
            missed += 1
        else:
            latencies.append((first - t_trigger) * 1000.0)
            if blocking:
                blocked_latencies.append(latencies[-1])
        if relay:
            relay_latencies.append((relay[0] - t_trigger) * 1000.0)
        _wait(lambda: not robot.blocked.is_set(), 5.0)
        latch.request_reset()
        latch.confirm_reset()
    return {"latencies": latencies, "blocked": blocked_latencies, "relay": relay_latencies,
            "missed": missed, "inferring_at_stop": inferring_at_stop}


def _wait(predicate: Callable[[], bool], timeout: float, poll: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(poll)


def _with_window(station: Station, trials: Callable[[], dict]) -> dict:
    """Run ``trials`` on a thread while the main window paints on this (the GUI) thread."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from vla_studio.ui.app import create_application
    from vla_studio.ui.main_window import MainWindow

    app = create_application()
    app.setApplicationName(BENCH_APPLICATION)
    window = MainWindow(station, reset_layout=True)
    window.resize(1440, 900)
    window.show()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["figures"] = trials()
        except BaseException as exc:  # re-raised on the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="bench-trials", daemon=True)
    # Quit from the GUI thread itself, at the next display frame after the trials end.
    window.bridge.frame_tick.connect(lambda: app.quit() if not worker.is_alive() else None)
    worker.start()
    app.exec()
    worker.join()
    window.close()
    app.processEvents()
    app.setApplicationName("VLA Studio")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["figures"]


def _gui_available() -> str:
    try:
        import vla_studio.ui.main_window  # noqa: F401 - only whether Qt imports
    except ImportError as exc:
        return f"none: {exc}"
    return "main window, 2 camera panes 640x480 @ 30 fps, offscreen"


def run(args: argparse.Namespace) -> dict:
    with logging_through_queue():  # as the app does (the CLI's stays installed after the run)
        return _run(args)


def _run(args: argparse.Namespace) -> dict:
    events_log = logging.getLogger("vla_studio.core.events")
    events_level = events_log.level
    if getattr(args, "log_level", "INFO") == "INFO":  # the blocking trials' expected alarms
        events_log.setLevel(logging.CRITICAL)
    period = 1.0 / args.rate
    gui_load = "none: --no-gui" if args.no_gui else _gui_available()
    if gui_load.startswith("none") and not args.no_gui:
        print(f"bench estop: no GUI load ({gui_load})", file=sys.stderr)
    station, robot = build_station(args)
    policy = real_policy(args, station, robot) if args.policy else BusyPolicySource()
    busy_stop = threading.Event()
    busy = threading.Thread(target=_busy_python, args=(busy_stop,), name="busy-python",
                            daemon=True)
    hung = threading.Event()  # a model that never returns
    hung_model = threading.Thread(target=hung.wait, name="hung-model", daemon=True)
    station.start()
    station.set_policy_source(policy)
    busy.start()
    hung_model.start()
    what = f"policy {args.policy} (child process)" if args.policy else "a busy Python policy"
    print(f"{args.trials} stops at {args.rate:g} Hz under load ({gui_load}; {what}) ...",
          file=sys.stderr)
    try:
        with HostNoiseProbe(period) as probe:
            trials = functools.partial(run_trials, args, station, robot, policy)
            figures = trials() if gui_load.startswith("none") else _with_window(station, trials)
            overruns = station.loop.stats.overruns
            policy_figures = _policy_figures(args, policy, figures)
    finally:
        busy_stop.set()
        hung.set()
        station.close()
        busy.join(timeout=2.0)
        events_log.setLevel(events_level)
    lat = np.array(figures["latencies"] or [float("nan")])
    blocked = np.array(figures["blocked"] or [float("nan")])
    relay = np.array(figures["relay"] or [float("nan")])
    return {
        "control_period_ms": round(period * 1000.0, 3),
        "trials": args.trials,
        "stop_latency_p50_ms": round(float(np.percentile(lat, 50)), 4),
        "stop_latency_p99_ms": round(float(np.percentile(lat, 99)), 4),
        "stop_latency_max_ms": round(float(lat.max()), 4),
        "missed": figures["missed"],
        "loop_overruns": overruns,
        "blocked_driver_trials": len(figures["blocked"]),
        "stop_latency_blocked_driver_max_ms": round(float(blocked.max()), 4),
        "emergency_hold_latency_p99_ms": round(float(np.percentile(relay, 99)), 4),
        "gui_load": gui_load,
        **probe.figures,
        **policy_figures,
    }


def _policy_figures(args: argparse.Namespace, policy: ActionSource, figures: dict) -> dict:
    """What the real policy did meanwhile (``--policy`` only): its chunks, their latency, and
    how many stops came while a request was with the model."""
    if not args.policy:
        return {}
    snap = policy.snapshot()  # type: ignore[attr-defined]
    return {"policy": args.policy, "policy_chunks": snap.chunks,
            "policy_latency_p50_ms": round(float(snap.latency_p50_ms), 3),
            "stops_while_inferring": figures["inferring_at_stop"]}
