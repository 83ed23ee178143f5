"""``vla-studio cameras preview``: just the camera panes of a station, nothing that moves.

Only the cameras are connected (never the robot or the teleop devices), so a preview is safe on
a real cell: it is for framing cameras, checking exposure and finding a flaky cable.
"""

from __future__ import annotations

import logging
from typing import Sequence

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QMainWindow

from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.widgets.camera_grid import CameraGrid

log = logging.getLogger(__name__)


class CameraPreviewWindow(QMainWindow):
    """A window with the panes of ``cameras`` (default: all) of ``station``.

    The caller connects the cameras (see :func:`run_preview`); closing the window stops the
    display but leaves disconnecting to the caller, which owns the devices.
    """

    def __init__(self, station: Station, cameras: Sequence[str] | None = None) -> None:
        super().__init__()
        self.station = station
        self.bridge = CoreBridge(station, self)
        self.grid = CameraGrid(station, self.bridge, cameras=cameras)
        self.setCentralWidget(self.grid)
        names = ", ".join(self.grid.panes) or "no cameras"
        self.setWindowTitle(f"Camera preview — {station.profile.name} ({names})")
        self.summary = QLabel()
        self.statusBar().addPermanentWidget(self.summary)
        self._summary_timer = QTimer(self)
        self._summary_timer.timeout.connect(self.show_summary)
        self._summary_timer.start(500)
        self.resize(1280, 800)

    def show_summary(self) -> None:
        """One line per camera: state, fps, drops, reconnects."""
        parts = []
        for name in self.grid.panes:
            s = self.station.cameras[name].status()
            parts.append(f"{name}: {s.state.value} {s.fps:.1f} fps, {s.dropped} dropped, "
                         f"{s.reconnects} reconnects")
        self.summary.setText("   ".join(parts))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self._summary_timer.stop()
        self.bridge.stop()
        super().closeEvent(event)


def run_preview(station: Station, cameras: Sequence[str] | None = None,
                seconds: float | None = None, screenshot: str | None = None) -> int:
    """Connect ``cameras`` of ``station``, show their panes until the window closes (or for
    ``seconds``), then disconnect them. Returns the exit code."""
    from vla_studio.ui.app import create_application

    app = create_application()
    names = list(station.cameras) if not cameras else list(cameras)
    window = CameraPreviewWindow(station, names)  # validates the names before connecting
    for name in names:
        station.cameras[name].connect()
    try:
        window.show()
        if seconds is not None:
            def finish() -> None:
                if screenshot:
                    window.grab().save(screenshot)
                    log.info("preview screenshot saved to %s", screenshot)
                window.close()

            QTimer.singleShot(int(seconds * 1000), finish)
        app.exec()
        return 0
    finally:
        for name in names:
            station.cameras[name].disconnect()
