"""Recording throughput: N synthetic cameras + state/action through the real loop and recorder.

The cameras deliver realistic frames (a shifting table-like texture with sensor noise, the frames
``bench export`` writes: ~35 kB per 640x480 JPEG, not colour bars that compress to nothing), paced
like a device with a small queue. One long episode is recorded, then stopped and a second one
started at once (stop-to-ready is what the operator waits between episodes), then the first file
is read back. An independent subscriber counts every step the loop emitted inside the episode and
every distinct frame those steps carried, and each camera logs every frame it produced, so no
"expected" figure comes from the recorder being measured.

Keys:
  steps_expected / steps_written: steps the loop emitted inside the episode / steps in the file.
  frames_expected: cameras x fps x seconds, the nominal frame count.
  frames_produced: frames the cameras produced while the episode ran (device-queue losses
      included).
  frames_written: distinct frames in the file.
  frames_never_recorded: frames the cameras produced during the episode that no recorded step
      carries (the loop ticked past them, the device queue lost them, or the recorder did): what
      a dataset really misses of what the cameras saw.
  fresh_frame_fraction: share of (step, camera) pairs whose frame is new (not the previous step's
      again); 1.0 when every step carries a new frame of every camera.
  frames_seen_by_loop: distinct frames the steps carried (counted by the subscriber);
      frames_dropped = recorder_frames_lost (seen by the loop, missing in the file) + camera_drops
      (lost in the device queue).
  writer_queue_max_fraction (high-water mark of the recorder's step queue), mb_per_s,
  jpeg_kb_per_frame, cpu_percent (this process, all threads; 100 = one core), stop_to_ready_s.
Target (2 cores): 3 cameras 640x480 @ 30 fps + 30 Hz for 10 minutes: 0 steps and 0 frames lost
by the recorder, queue never above half full, stop-to-ready < 0.5 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

HELP = "episode recording throughput with synthetic cameras (realistic frames)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cameras", type=int, default=3, help="number of synthetic cameras")
    parser.add_argument("--size", default="640x480", help="camera image size WxH")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate")
    parser.add_argument("--rate", type=float, default=30.0, help="control rate, Hz")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the episode")
    parser.add_argument("--depth", action="store_true", help="cameras also deliver depth")
    parser.add_argument("--image-format", choices=["jpeg", "png"], default="jpeg")
    parser.add_argument("--dataset", default=None, help="keep the files here (default: a "
                        "temporary folder, deleted afterwards)")


def run(args: argparse.Namespace) -> dict:
    import numpy as np
    import psutil

    from vla_studio.bench.frames import TextureCamera
    from vla_studio.core.arbiter import FixedActionSource
    from vla_studio.core.profile import DeviceSpec, RecordingSettings, StationProfile
    from vla_studio.data.episode_file import EpisodeReader
    from vla_studio.data.labels import EpisodeLabels
    from vla_studio.data.recorder import Recorder
    from vla_studio.devices.cameras.synthetic import SyntheticCameraConfig
    from vla_studio.devices.robots.null import NullRobot, NullRobotConfig
    from vla_studio.station import Station

    width, height = (int(v) for v in args.size.lower().split("x"))
    tmp = None if args.dataset else tempfile.TemporaryDirectory(prefix="vla-bench-record-")
    root = Path(args.dataset or tmp.name)  # type: ignore[union-attr]
    cameras = tuple(DeviceSpec("synthetic", SyntheticCameraConfig(
        name=f"cam{i}", width=width, height=height, fps=args.fps, depth=args.depth))
        for i in range(args.cameras))
    profile = StationProfile(
        name="bench record", control_rate_hz=args.rate,
        robot=DeviceSpec("null", NullRobotConfig(name="null")), cameras=cameras,
        recording=RecordingSettings(dataset_dir=str(root), image_format=args.image_format))
    robot = NullRobot(profile.robot.config, profile.action_space.kind)
    robot.control_period_s = 1.0 / profile.control_rate_hz
    cams = {spec.name: TextureCamera(spec.config, seed=i) for i, spec in enumerate(cameras)}
    print(f"preparing {args.cameras} camera(s) of realistic {args.size} frames ...",
          file=sys.stderr)
    station = Station(profile, robot, cams, {})
    counter = _StepCounter(station.loop.subscribe("bench-counter", int(args.rate * 120)))
    recorder = Recorder(station, root)
    labels = EpisodeLabels("benchmark the recorder")
    proc = psutil.Process()
    try:
        station.start()
        station.set_teleop_source(FixedActionSource(np.array([0.0, 0, 0, 0, 0, 0, 1.0])))
        for cam in station.cameras.values():
            cam.wait_for_frame(timeout_s=10.0)
        counter.start()
        recorder.connect()
        print(f"recording {args.cameras} x {args.size} @ {args.fps:g} fps, {args.rate:g} Hz for "
              f"{args.seconds:g} s ...", file=sys.stderr)
        cpu0, wall0 = sum(proc.cpu_times()[:2]), time.monotonic()
        first = recorder.start(labels)
        _sleep_with_progress(args.seconds)
        t_stop = time.perf_counter()
        recorder.stop()
        recorder.start(labels)
        stop_to_ready = time.perf_counter() - t_stop
        cpu, wall = sum(proc.cpu_times()[:2]) - cpu0, time.monotonic() - wall0
        time.sleep(0.5)
        recorder.stop()
        deadline = time.monotonic() + 120
        while recorder.episode(first).state.value == "saving" and time.monotonic() < deadline:
            time.sleep(0.005)
        finalize_s = time.perf_counter() - t_stop
        recorder.wait_idle(120.0)
        info = recorder.episode(first)
        status = recorder.status()
        high_water = status.queue_high_water
    finally:
        recorder.disconnect()
        station.close()
        counter.stop()
    expected_steps, seen_frames, unobserved = counter.window(info.t_begin, info.t_end)
    with EpisodeReader(info.path) as ep:
        steps_written = ep.num_steps
        ticks = ep.step("timestamp")
        frames_written = fresh_steps = camera_drops = produced = never_recorded = 0
        image_bytes = 0
        for name in ep.cameras:
            fi = ep.step(f"observation/image/{name}/frame_index")
            frames_written += int(np.unique(fi[fi >= 0]).size)
            fresh_steps += fresh_frames(fi)
            camera_drops += int(ep.attrs["camera_stats"][name].get("drops") or 0)
            recorded = set(ep.step(f"observation/image/{name}/capture_time").tolist())
            # Frames produced between the first and last tick: any of them could have been
            # carried by a step (one captured just before the last tick may miss it: <= 1 per
            # camera).
            made = cams[name].produced_between(float(ticks[0]), float(ticks[-1]))
            produced += len(made)
            never_recorded += sum(1 for t in made if t not in recorded)
            rows = ep.image_index(name)
            rows = rows[rows[:, 1] > 0]  # a frame two steps share is stored once
            image_bytes += int(np.unique(rows, axis=0)[:, 1].sum()) if len(rows) else 0
        duration = float(ep.attrs["duration_s"])
        size = info.path.stat().st_size
        dropped_steps = int(ep.attrs.get("dropped_steps", 0))
    if tmp is not None:
        tmp.cleanup()
    return {
        "cameras": args.cameras, "size": args.size, "fps": args.fps, "rate_hz": args.rate,
        "seconds": args.seconds,
        "steps_expected": expected_steps,
        "steps_written": steps_written,
        "frames_expected": int(round(args.cameras * args.fps * args.seconds)),
        "frames_produced": produced,
        "frames_written": frames_written,
        "frames_never_recorded": never_recorded,
        "fresh_frame_fraction": round(fresh_steps / (len(cams) * steps_written), 4)
        if steps_written and cams else 0.0,
        "frames_seen_by_loop": seen_frames,
        "frames_dropped": max(0, seen_frames - frames_written) + camera_drops,
        "recorder_frames_lost": max(0, seen_frames - frames_written),
        "camera_drops": camera_drops,
        "loop_ticks_nominal": int(round(args.rate * args.seconds)),
        "writer_queue_max_fraction": round(high_water, 4),
        "mb_per_s": round(size / 1e6 / duration, 3) if duration > 0 else 0.0,
        "cpu_percent": round(100.0 * cpu / wall, 1),
        "stop_to_ready_s": round(stop_to_ready, 4),
        "finalize_s": round(finalize_s, 3),
        "recorder_dropped_steps": dropped_steps,
        "frames_never_seen_by_loop": unobserved,
        "file_mb": round(size / 1e6, 1),
        "jpeg_kb_per_frame": round(image_bytes / 1e3 / frames_written, 1)
        if frames_written else 0.0,
    }


def fresh_frames(frame_index) -> int:
    """Steps whose frame is new: a frame (index >= 0) other than the previous step's."""
    import numpy as np

    fi = np.asarray(frame_index)
    if fi.size == 0:
        return 0
    new = np.empty(fi.size, bool)
    new[0] = True
    new[1:] = fi[1:] != fi[:-1]
    return int(np.count_nonzero(new & (fi >= 0)))


def _sleep_with_progress(seconds: float) -> None:
    end = time.monotonic() + seconds
    next_report = time.monotonic() + 60.0
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        if time.monotonic() >= next_report:
            next_report += 60.0
            print(f"  {seconds - max(0.0, end - time.monotonic()):.0f} s recorded", file=sys.stderr)


class _StepCounter:
    """Counts every step the loop emits (thread ``bench-counter``), independently of the
    recorder: tick times and the frame index of each camera."""

    def __init__(self, queue) -> None:
        self._queue = queue
        self._steps: list[tuple[float, dict[str, int]]] = []
        self._first_frame: dict[str, int] = {}
        self._last_frame: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-counter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            step = self._queue.get(timeout=0.1)
            if step is None:
                continue
            frames = {n: f.index for n, f in step.observation.frames.items() if f is not None}
            self._steps.append((step.t, frames))

    def window(self, t_begin: float, t_end: float | None) -> tuple[int, int, int]:
        """(steps, distinct frames seen, frames delivered but never seen) in the window."""
        inside = [frames for t, frames in self._steps
                  if t >= t_begin and (t_end is None or t < t_end)]
        seen: set[tuple[str, int]] = {(n, i) for frames in inside for n, i in frames.items()}
        unobserved = 0
        for name in {n for n, _ in seen}:
            idx = [i for n, i in seen if n == name]
            unobserved += (max(idx) - min(idx) + 1) - len(idx)
        return len(inside), len(seen), unobserved
