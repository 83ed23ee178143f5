"""The replay benchmark's measurements, on the real Replay view (``vla-studio bench replay``,
:mod:`vla_studio.bench.replay`): Qt lives in ``vla_studio.ui`` only, so the part that drives the
view lives here."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any


def measure_replay(path: Path, seeks: int, play_seconds: float, window: tuple[int, int]
             ) -> dict[str, Any]:
    """Open ``path`` in a :class:`ReplayView` of ``window`` size, then seek at random
    ``seeks`` times and play at 1x for ``play_seconds``; returns the benchmark's figures."""
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
