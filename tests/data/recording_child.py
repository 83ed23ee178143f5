"""A real recording process for crash and disk-full tests (run as a subprocess).

Usage: python recording_child.py DATASET [--fsize-limit BYTES] [--seconds S] [--min-free-mb MB]
       [--no-space-guard] [--size WxH]

Records one episode on the dry-run station (virtual robot, two synthetic cameras) with a fixed
teleop action. Prints ``started <monotonic>`` once recording, ``steps <n> <monotonic>`` every
commit interval, every recorder event as ``event <kind> <message>``, and ``done <state>`` when
the episode is finished (when it ends by itself: --seconds, or a write failure).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from vla_studio.core.arbiter import FixedActionSource  # noqa: E402
from vla_studio.data.labels import EpisodeLabels  # noqa: E402
from vla_studio.data.recorder import Recorder  # noqa: E402
from vla_studio.data.recording import RecorderConfig  # noqa: E402
from vla_studio.devices.registry import load_station_profile  # noqa: E402
from vla_studio.station import Station  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--fsize-limit", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--min-free-mb", type=float, default=200.0)
    parser.add_argument("--no-space-guard", action="store_true")
    parser.add_argument("--size", default="", help="camera size WxH (default: the profile's)")
    args = parser.parse_args()
    profile = load_station_profile(ROOT / "resources/stations/dry_run.toml")
    if args.size:
        width, height = (int(v) for v in args.size.split("x"))
        cameras = tuple(dataclasses.replace(s, config=dataclasses.replace(
            s.config, width=width, height=height)) for s in profile.cameras)
        profile = dataclasses.replace(profile, cameras=cameras)
    station = Station.from_profile(profile)
    station.events.subscribe(lambda e: print(f"event {e.kind} {e.message}", flush=True))
    station.start()
    station.set_teleop_source(FixedActionSource(np.array([0.0005, 0, 0, 0, 0, 0, 1.0])))
    config = RecorderConfig(min_free_mb=args.min_free_mb, space_guard=not args.no_space_guard)
    recorder = Recorder(station, args.dataset, config=config)
    recorder.connect()
    if args.fsize_limit:
        # Writes past this size fail with EFBIG, like a full disk, without needing root.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit, args.fsize_limit))
    station.cameras["front"].wait_for_frame(timeout_s=5.0)
    station.cameras["wrist"].wait_for_frame(timeout_s=5.0)
    recorder.start(EpisodeLabels("push the block to the left", ("slide the block left",)))
    print(f"started {time.monotonic()}", flush=True)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        status = recorder.status()
        if status.episode is None:
            break
        print(f"steps {status.episode.steps} {time.monotonic()}", flush=True)
        time.sleep(0.1)
    if recorder.status().episode is not None:
        recorder.stop()
    recorder.wait_idle(30.0)
    last = recorder.last_episode
    print(f"done {last.state.value if last else 'none'} {last.path if last else ''}", flush=True)
    recorder.disconnect()
    station.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
