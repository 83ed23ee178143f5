"""A real recording process for crash and disk-full tests (run as a subprocess).

Usage: python recording_child.py DATASET [--fsize-limit BYTES] [--seconds S] [--min-free-mb MB]
       [--no-space-guard] [--size WxH] [--encode-delay S] [--legacy-journal]
       [--judge-success-after S] [--save-on-success S]

Records one episode on the dry-run station (virtual robot, two synthetic cameras) with a fixed
teleop action. Prints ``started <monotonic>`` once recording, ``steps <n> <monotonic>`` every
0.1 s, ``committed <n> <monotonic>`` after every journal commit, ``verdict <True|False|None>``
when the robot's live verdict changes, every recorder event as ``event <kind> <message>``, and
``done <state>`` when the episode is finished (when it ends by itself: --seconds, a write
failure, or a held success with --save-on-success).

Test knobs: --encode-delay makes the writer slower than the loop (each step takes that long to
encode); --legacy-journal writes the journal the way versions before the durability fixes did
(its step count allocated by the first commit, under SWMR); --judge-success-after makes the
robot judge its task accomplished from that many seconds after the start.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from vla_studio.core.arbiter import FixedActionSource  # noqa: E402
from vla_studio.data import episode_writer  # noqa: E402
from vla_studio.data.episode_writer import EpisodeFileWriter  # noqa: E402
from vla_studio.data.labels import EpisodeLabels  # noqa: E402
from vla_studio.data.recorder import Recorder  # noqa: E402
from vla_studio.data.recording import RecorderConfig  # noqa: E402
from vla_studio.data.step_encoder import StepEncoder  # noqa: E402
from vla_studio.devices.registry import load_station_profile  # noqa: E402
from vla_studio.station import Station  # noqa: E402


_OUT = threading.Lock()


def emit(line: str) -> None:
    """One whole line on stdout: the writer thread (commits, events) and the main thread print
    concurrently, and print() writes the text and the newline separately."""
    with _OUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _report_commits() -> None:
    """Print ``committed <steps> <monotonic>`` after every journal commit, so a test can kill
    the process at an exact point of the file's life (e.g. between the first and second)."""
    real_commit = EpisodeFileWriter.commit

    def commit(self, *args, **kwargs):
        real_commit(self, *args, **kwargs)
        emit(f"committed {self.committed_steps} {time.monotonic()}")

    EpisodeFileWriter.commit = commit


def _slow_encoder(delay_s: float) -> None:
    real_add = StepEncoder.add

    def add(self, *args, **kwargs):
        time.sleep(delay_s)  # a big camera on a slow CPU
        real_add(self, *args, **kwargs)

    StepEncoder.add = add


def _legacy_journal() -> None:
    """The journal as written before the fix: a step count whose storage the first commit
    allocates while the file is already in SWMR mode."""

    def create_journal(f):
        committed = f.create_group("_journal").create_dataset("committed_steps", (1,), "i8")
        return committed, None, None

    episode_writer.create_journal = create_journal


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--fsize-limit", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--min-free-mb", type=float, default=200.0)
    parser.add_argument("--no-space-guard", action="store_true")
    parser.add_argument("--size", default="", help="camera size WxH (default: the profile's)")
    parser.add_argument("--encode-delay", type=float, default=0.0)
    parser.add_argument("--legacy-journal", action="store_true")
    parser.add_argument("--judge-success-after", type=float, default=None)
    parser.add_argument("--save-on-success", type=float, default=None)
    args = parser.parse_args()
    _report_commits()
    if args.encode_delay:
        _slow_encoder(args.encode_delay)
    if args.legacy_journal:
        _legacy_journal()
    profile = load_station_profile(ROOT / "resources/stations/dry_run.toml")
    if args.size:
        width, height = (int(v) for v in args.size.split("x"))
        cameras = tuple(dataclasses.replace(s, config=dataclasses.replace(
            s.config, width=width, height=height)) for s in profile.cameras)
        profile = dataclasses.replace(profile, cameras=cameras)
    station = Station.from_profile(profile)
    station.events.subscribe(lambda e: emit(f"event {e.kind} {e.message}".replace("\n", " ")))
    station.start()
    station.set_teleop_source(FixedActionSource(np.array([0.0005, 0, 0, 0, 0, 0, 1.0])))
    config = RecorderConfig(min_free_mb=args.min_free_mb, space_guard=not args.no_space_guard)
    recorder = Recorder(station, args.dataset, config=config)
    recorder.save_on_success_s = args.save_on_success
    recorder.connect()
    if args.fsize_limit:
        # Writes past this size fail with EFBIG, like a full disk, without needing root.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit, args.fsize_limit))
    station.cameras["front"].wait_for_frame(timeout_s=5.0)
    station.cameras["wrist"].wait_for_frame(timeout_s=5.0)
    recorder.start(EpisodeLabels("push the block to the left", ("slide the block left",)))
    t_start = time.monotonic()
    if args.judge_success_after is not None:
        station.robot.episode_success = \
            lambda instruction: time.monotonic() - t_start >= args.judge_success_after
    emit(f"started {t_start}")
    deadline = t_start + args.seconds
    verdict = None
    while time.monotonic() < deadline:
        recorder.poll_task()
        status = recorder.status()
        if status.episode is None:
            break
        if status.task.success != verdict:
            verdict = status.task.success
            emit(f"verdict {verdict} {time.monotonic()}")
        emit(f"steps {status.episode.steps} {time.monotonic()}")
        time.sleep(0.1)
    if recorder.status().episode is not None:
        recorder.stop()
    recorder.wait_idle(30.0)
    last = recorder.last_episode
    emit(f"done {last.state.value if last else 'none'} {last.path if last else ''}")
    recorder.disconnect()
    station.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
