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
import os
import random
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
        result = _measure(path, args.seeks, args.play_seconds, window)
        result["episode_mb"] = round(path.stat().st_size / 1e6, 1)
        result["generate_s"] = round(generated_s, 1)
    return result


def _measure(path: Path, seeks: int, play_seconds: float, window: tuple[int, int]
             ) -> dict[str, Any]:
    if not os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    from vla_studio.ui.app import apply_theme
    from vla_studio.ui.replay.view import ReplayView

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)
    view = ReplayView()
    view.resize(*window)
    view.show()
    _pump(app, 0.3)  # the window is laid out before the clock starts

    t0 = time.perf_counter()
    assert view.open_path(path), view.message.text()
    _wait_painted(app, view, 0, 10.0)
    open_ms = (time.perf_counter() - t0) * 1e3
    _pump(app, 0.5)  # the panes' sizes settle, the reader's read-ahead finishes

    rng = random.Random(0)
    n = view.episode.num_steps
    times = []
    for _ in range(seeks):
        step = rng.randrange(n)
        if step == view.step:
            continue
        t0 = time.perf_counter()
        view.seek(step)
        _wait_painted(app, view, step, 5.0)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()

    view.seek(rng.randrange(n // 4))
    _wait_painted(app, view, view.target, 5.0)
    _pump(app, 0.5)
    view.stats = {"shown": 0, "dropped": 0}
    painted: set[int] = set()
    panes = list(view.grid.panes.values())
    on_paint = (lambda step: painted.add(step) if all(p.painted_step == step for p in panes)
                else None)
    for pane in panes:
        pane.painted.connect(on_paint)
    start_step = view.step
    t0 = time.perf_counter()
    view.toggle_play()
    _pump(app, play_seconds)
    view.pause()
    elapsed = time.perf_counter() - t0
    played = view.step - start_step
    for pane in panes:
        pane.painted.disconnect(on_paint)
    stats = dict(view.stats)
    reader = view.reader
    decoded = reader.decoded if reader is not None else 0
    rate = view.episode.rate_hz
    cameras = len(view.grid.panes)
    view.shutdown()
    view.close()
    return {
        "steps": n,
        "cameras": cameras,
        "open_ms": round(open_ms, 1),
        "seek_p50_ms": round(_pct(times, 50), 2),
        "seek_p99_ms": round(_pct(times, 99), 2),
        "seek_max_ms": round(times[-1], 2) if times else 0.0,
        "seeks": len(times),
        "playback_fps": round(len(painted) / elapsed, 2),
        "playback_steps_per_s": round(played / elapsed, 2),
        "recorded_rate_hz": round(rate, 2),
        "display_frames_dropped": stats["dropped"],
        "frames_decoded": decoded,
    }


def _pump(app, seconds: float) -> None:
    """Run the event loop for ``seconds`` (as the application does: waiting, not spinning)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()


def _wait_painted(app, view, step: int, timeout_s: float) -> None:
    """Run the event loop until every pane has painted ``step``. The loop waits for events
    (as the application's does) rather than spinning: a spinning waiter would take the GIL
    from the decode threads and measure itself."""
    from PySide6.QtCore import QEventLoop, QTimer

    panes = list(view.grid.panes.values())
    if all(p.painted_step == step for p in panes):
        return
    loop = QEventLoop()

    def check(_step: int = -1) -> None:
        if all(p.painted_step == step for p in panes):
            loop.quit()

    for pane in panes:
        pane.painted.connect(check)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(round(timeout_s * 1000))
    loop.exec()
    for pane in panes:
        pane.painted.disconnect(check)
    if not all(p.painted_step == step for p in panes):
        raise RuntimeError(f"step {step} was not painted within {timeout_s} s")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]
