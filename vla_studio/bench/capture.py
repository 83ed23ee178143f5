"""Camera capture and display: N cameras streaming into the real window, rendered offscreen.

Each camera is a synthetic source (precomputed frames at the requested rate, a device queue of
4 frames) or a looping MJPG video file read through OpenCV; the station's control loop runs as
in the app and the main window shows every camera. Figures over the measured window:
frames expected (fps x seconds), captured and dropped at ingestion (device frame counters),
capture-to-display latency p50/p99 (frame capture until the pane has painted it), and the
process's CPU time as a percentage of one core.

Targets (2-core machine): 4 cameras 640x480 @ 30 fps for 60 s, 0 dropped, latency p99 < 50 ms,
cpu_percent < 100.

Example:
  vla-studio bench capture --cameras 4 --size 640x480 --fps 30 --seconds 60 --json
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

HELP = "camera capture + display: drops, capture-to-display latency, CPU"


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match.group(1)) < 8 or int(match.group(2)) < 8:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480")
    return int(match.group(1)), int(match.group(2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cameras", type=int, default=4, help="number of cameras")
    parser.add_argument("--size", type=_size, default=(640, 480), help="WIDTHxHEIGHT")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--source", choices=["synthetic", "file"], default="synthetic",
                        help="synthetic frames, or a looping MJPG video read by OpenCV")
    parser.add_argument("--depth", action="store_true",
                        help="give the second camera a depth stream (shown with a colormap)")
    parser.add_argument("--grid-only", action="store_true",
                        help="show only the camera grid instead of the whole main window")


def _write_video(path: Path, width: int, height: int, fps: float, seconds: float = 3.0) -> None:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write an MJPG video at {path}")
    x = np.linspace(0, 2 * np.pi, width, dtype=np.float32)
    frames = max(1, int(round(seconds * fps)))
    for k in range(frames):
        img = np.empty((height, width, 3), np.uint8)
        img[..., 0] = (127 + 127 * np.sin(x + 2 * np.pi * k / frames)).astype(np.uint8)
        img[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
        img[..., 2] = 128
        writer.write(img)
    writer.release()


def build_profile(args: argparse.Namespace, workdir: Path):
    """A station profile with a counting robot and the benchmark's cameras."""
    from vla_studio.core.profile import parse_profile
    from vla_studio.devices.registry import config_class_for

    width, height = args.size
    video = workdir / f"bench_{width}x{height}.avi"
    if args.source == "file":
        _write_video(video, width, height, args.fps)
    cameras = []
    for i in range(args.cameras):
        cam = {"name": f"cam{i}", "width": width, "height": height, "fps": args.fps}
        if args.source == "file":
            cam.update(type="opencv", source=str(video), loop=True)
        else:
            cam.update(type="synthetic", depth=bool(args.depth and i == 1))
        cameras.append(cam)
    return parse_profile({"name": "capture benchmark", "control_rate_hz": 30,
                          "robot": {"type": "null"}, "cameras": cameras},
                         config_class_for, source="bench capture")


def run(args: argparse.Namespace) -> dict:
    import numpy as np

    if args.cameras < 1:
        raise SystemExit("bench capture: --cameras must be at least 1")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from vla_studio.ui.capture_display import measure_display

    with tempfile.TemporaryDirectory(prefix="vla-bench-capture-") as tmp:
        profile = build_profile(args, Path(tmp))
        width, height = args.size
        print(f"{args.cameras} {args.source} cameras {width}x{height} @ {args.fps:g} fps: "
              f"{args.warmup:g} s warm-up, {args.seconds:g} s measured ...", file=sys.stderr)
        figures = measure_display(profile, args.seconds, args.warmup,
                                  main_window=not args.grid_only)
    lat = np.array(figures.latency_ms) if figures.latency_ms else np.array([np.nan])
    cams = figures.cameras
    return {
        "cameras": args.cameras,
        "size": f"{width}x{height}",
        "fps": args.fps,
        "source": args.source,
        "seconds": round(figures.seconds, 3),
        "frames_expected": sum(c.expected for c in cams),
        "frames_captured": sum(c.captured for c in cams),
        "frames_dropped": sum(c.dropped for c in cams),
        "frames_late": sum(c.late for c in cams),
        "frames_displayed": sum(c.displayed for c in cams),
        "display_latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "display_latency_p99_ms": round(float(np.percentile(lat, 99)), 2),
        "display_latency_max_ms": round(float(np.max(lat)), 2),
        "cpu_percent": round(figures.cpu_percent, 1),
        "loop_overruns": figures.loop_overruns,
        "per_camera": {c.name: {"expected": c.expected, "captured": c.captured,
                                "dropped": c.dropped, "late": c.late, "displayed": c.displayed,
                                "latency_p50_ms": round(c.latency_p50_ms, 2),
                                "latency_p99_ms": round(c.latency_p99_ms, 2), "state": c.state}
                       for c in cams},
    }
