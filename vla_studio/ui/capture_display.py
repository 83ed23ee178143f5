"""The Qt half of ``vla-studio bench capture``: run the real window over a station's cameras
and measure what reaches the screen.

The station (control loop, capture threads) and the main window (camera grid, docks, bridge)
run exactly as in the app; the platform is whatever Qt was started with (offscreen in the
benchmark). Figures cover a measured window after a warm-up, from the cameras' own counters,
the panes' capture-to-display latencies and the process's CPU time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QCoreApplication, QEventLoop, Qt, QTimer

from vla_studio.core.profile import StationProfile
from vla_studio.station import Station
from vla_studio.ui.widgets.camera_pane import LatencyStats

BENCH_APPLICATION = "VLA Studio bench"  # keeps the bench's window layout out of the user's


@dataclass
class CameraFigures:
    name: str
    expected: int
    captured: int
    dropped: int
    late: int
    displayed: int
    latency_p50_ms: float
    latency_p99_ms: float
    state: str


@dataclass
class DisplayFigures:
    """What :func:`measure_display` measured over ``seconds``."""

    seconds: float
    cpu_percent: float  # of one core
    latency_ms: list[float]
    cameras: list[CameraFigures] = field(default_factory=list)
    loop_overruns: int = 0


def _spin(seconds: float) -> None:
    loop = QEventLoop()
    timer = QTimer()
    timer.setSingleShot(True)
    timer.setTimerType(Qt.TimerType.PreciseTimer)  # coarse timers may fire 5 % early
    timer.timeout.connect(loop.quit)
    timer.start(int(seconds * 1000))
    loop.exec()


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def measure_display(profile: StationProfile, seconds: float, warmup_s: float = 2.0,
                    main_window: bool = True, size: tuple[int, int] = (1440, 900)) -> DisplayFigures:
    """Start ``profile``'s station, show it, and measure for ``seconds`` after ``warmup_s``.

    Args:
        main_window: the whole main window (as operators run it); False shows only the grid.
        size: window size in pixels.
    """
    from vla_studio.ui.app import create_application
    from vla_studio.ui.bridge import CoreBridge
    from vla_studio.ui.main_window import MainWindow
    from vla_studio.ui.widgets.camera_grid import CameraGrid

    app = create_application()
    QCoreApplication.setApplicationName(BENCH_APPLICATION)
    station = Station.from_profile(profile)
    station.start()
    try:
        if main_window:
            window = MainWindow(station, reset_layout=True)
            grid = window.cameras
        else:
            bridge = CoreBridge(station)
            grid = window = CameraGrid(station, bridge)
        window.resize(*size)
        window.show()
        _spin(warmup_s)
        capacity = int(seconds * 1000) + 1000  # more than any display rate can show
        for pane in grid.panes.values():
            pane.latency = LatencyStats(capacity)
        before = {name: cam.status() for name, cam in station.cameras.items()}
        shown = {name: pane.frames_shown for name, pane in grid.panes.items()}
        overruns = station.loop.stats.overruns
        wall0, cpu0 = time.monotonic(), _cpu_seconds()
        _spin(seconds)
        wall, cpu = time.monotonic() - wall0, _cpu_seconds() - cpu0
        figures = DisplayFigures(wall, 100.0 * cpu / wall, [],
                                 loop_overruns=station.loop.stats.overruns - overruns)
        for name, pane in grid.panes.items():
            after, start = station.cameras[name].status(), before[name]
            samples = list(pane.latency.samples)
            figures.latency_ms.extend(samples)
            lat = np.array(samples) if samples else np.array([np.nan])
            fps = float(station.cameras[name].config.fps)
            figures.cameras.append(CameraFigures(
                name, int(round(fps * wall)), after.delivered - start.delivered,
                after.dropped - start.dropped, after.late - start.late,
                pane.frames_shown - shown[name], float(np.percentile(lat, 50)),
                float(np.percentile(lat, 99)), after.state.value))
        window.close()
        app.processEvents()
        return figures
    finally:
        station.close()
        QCoreApplication.setApplicationName("VLA Studio")
