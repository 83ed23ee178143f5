"""Application start-up: QApplication, theme, and the station/window lifecycle."""

from __future__ import annotations

import logging
import os
import sys

from PySide6.QtCore import QCoreApplication, QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from vla_studio import __version__
from vla_studio.core.profile import StationProfile
from vla_studio.devices.base import DeviceError
from vla_studio.paths import resource
from vla_studio.station import Station
from vla_studio.ui.main_window import MainWindow

log = logging.getLogger(__name__)
ORGANIZATION = "VLA Studio"
APPLICATION = "VLA Studio"


def ensure_display() -> None:
    """Exit with a clear message instead of Qt's abort when there is no screen to open on."""
    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        raise DeviceError(
            "no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset). Run it "
            "in a desktop session, over `ssh -X`, or under `xvfb-run -a vla-studio ...`; "
            "headless commands (record, export, bench) need none.")


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication with names (for QSettings) and the dark theme; reuses an existing one."""
    if QApplication.instance() is None:
        ensure_display()
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QCoreApplication.setApplicationVersion(__version__)
    apply_theme(app)
    return app


def apply_theme(app: QApplication, name: str = "dark") -> None:
    """Use the Fusion style with the named .qss theme. Idempotent.

    Setting an application style sheet re-polishes every widget alive, including ones already
    scheduled for deletion; doing it again with the same sheet is skipped, because that re-polish
    could reach a half-deleted widget (seen as a rare segfault when windows come and go).
    """
    sheet = resource("themes", f"{name}.qss").read_text(encoding="utf-8")
    if app.property("vla_studio_theme") == name and app.styleSheet() == sheet:
        return
    app.setStyle("Fusion")
    app.setStyleSheet(sheet)
    app.setProperty("vla_studio_theme", name)


class StationController:
    """Owns the current Station and its MainWindow; swaps both when another profile is opened."""

    def __init__(self, reset_layout: bool = False) -> None:
        self.station: Station | None = None
        self.window: MainWindow | None = None
        self._reset_layout = reset_layout

    def open(self, profile: StationProfile) -> bool:
        """Build, connect and start the station for ``profile`` and show its window."""
        try:
            station = Station.from_profile(profile)
            station.start()
        except (DeviceError, OSError, LookupError) as exc:
            QMessageBox.critical(None, "Cannot start the station", f"{profile.name}: {exc}")
            return False
        self.close()
        self.station = station
        self.window = MainWindow(station, reset_layout=self._reset_layout)
        self._reset_layout = False
        self.window.station_requested.connect(self.open)
        if QSettings().contains("main_window/geometry"):
            self.window.show()  # where the operator left it
        else:
            self.window.showMaximized()  # first run: the whole screen
        return True

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
            self.window.deleteLater()
            self.window = None
        if self.station is not None:
            self.station.close()
            self.station = None


def run_app(profile: StationProfile, reset_layout: bool = False) -> int:
    """Open the main window on ``profile`` and run until it closes. Returns the exit code."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    app = create_application()
    controller = StationController(reset_layout)
    if not controller.open(profile):
        return 1
    try:
        return app.exec()
    finally:
        controller.close()
