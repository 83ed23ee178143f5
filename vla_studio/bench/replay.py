"""Replay view speed on a long episode: open, random seeks, 1x playback with every pane and plot.

Generates (or takes --episode) a 5-minute, 30 Hz episode with three 640x480 cameras through
the recorder's own writer (~1 GB; a frame seen by two ticks is stored once), then drives the
real :class:`~vla_studio.ui.replay.view.ReplayView` (panes, timeline, plots, annotation panel)
in a window of the given size, offscreen unless a display is set:

* ``open_ms``: opening the episode until every pane has painted its first frame (what a
  double-click in the Episodes list costs; the view reads no image it does not show);
* ``seek_p50_ms`` / ``seek_p99_ms``: random seeks, from the request until every pane has
  painted the new step;
* ``playback_fps``: steps painted per second on every pane while playing at 1x for
  --play-seconds (the recording's rate is the target), and ``display_frames_dropped``: steps
  the display had time for but could not paint.

Targets (issue 14): open < 300 ms, seek p99 < 30 ms, 1x playback of 3x640x480@30 with 0 dropped
display frames. On a shared 2-core machine the figures are noisy: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HELP = "replay view: open, random seek and 1x playback timings on a long 3-camera episode"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episode", type=Path, default=None,
                        help="replay this episode file instead of generating one")
    parser.add_argument("--minutes", type=float, default=5.0, help="generated episode length")
    parser.add_argument("--rate", type=float, default=30.0, help="generated control rate, Hz")
    parser.add_argument("--cameras", type=int, default=3, help="generated cameras")
    parser.add_argument("--size", default="640x480", metavar="WxH", help="generated frame size")
    parser.add_argument("--seeks", type=int, default=200, help="random seeks measured")
    parser.add_argument("--play-seconds", type=float, default=20.0,
                        help="seconds of 1x playback measured")
    parser.add_argument("--window", default="1600x1000", metavar="WxH",
                        help="size of the window holding the view")


def generate(folder: Path, minutes: float, rate: float, cameras: int,
             size: tuple[int, int]) -> Path:
    """The benchmark's episode: ``cameras`` cameras at ``rate``, with every event kind."""
    from vla_studio.bench.replay_episode import CameraPlan, EpisodePlan, write_episode

    names = ("front", "wrist", "side") + tuple(f"cam{i}" for i in range(3, cameras))
    plan = EpisodePlan(steps=int(minutes * 60 * rate), rate_hz=rate, cameras=tuple(
        CameraPlan(names[i], size[0], size[1], fps=rate, latency_s=0.01 + 0.015 * i,
                   drop_every=0 if i else 600) for i in range(cameras)))
    return write_episode(folder / "episodes" / "20261201-100000_b0b0b0b0.h5", plan)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from vla_studio.data.rlds import parse_image_size

    size, window = parse_image_size(args.size), parse_image_size(args.window)
    with tempfile.TemporaryDirectory(prefix="vla-bench-replay-") as tmp:
        path = args.episode
        generated_s = 0.0
        if path is None:
            print(f"generating a {args.minutes:g}-minute {args.rate:g} Hz episode, "
                  f"{args.cameras} x {size[0]}x{size[1]} ...", file=sys.stderr)
            t0 = time.perf_counter()
            path = generate(Path(tmp), args.minutes, args.rate, args.cameras, size)
            generated_s = time.perf_counter() - t0
        from vla_studio.ui.replay.measure import measure_replay  # Qt only here

        result = measure_replay(path, args.seeks, args.play_seconds, window)
        result["episode_mb"] = round(path.stat().st_size / 1e6, 1)
        result["generate_s"] = round(generated_s, 1)
    return result
