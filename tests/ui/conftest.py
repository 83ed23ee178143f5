"""GUI test fixtures: isolated QSettings, and main windows on the dry-run and simulated
stations."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QSettings

from vla_studio.paths import resource
from vla_studio.station import Station
from tests.profiles import changed_profile


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    path = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(path))
    QCoreApplication.setOrganizationName("VLA Studio Tests")
    QCoreApplication.setApplicationName("VLA Studio Tests")
    yield path


@pytest.fixture
def dry_station(tmp_path):
    """The dry-run station (virtual robot, synthetic cameras), recording into tmp_path."""
    station = Station.from_profile(changed_profile(resource("stations", "dry_run.toml"), tmp_path))
    station.start()
    yield station
    station.close()


@pytest.fixture
def main_window(qtbot, dry_station):
    from vla_studio.ui.app import apply_theme
    from vla_studio.ui.main_window import MainWindow

    apply_theme(qtbot_app())
    window = MainWindow(dry_station, reset_layout=True)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()


@pytest.fixture
def sim_window(qtbot, tmp_path):
    """The main window on the default station (the MuJoCo tabletop), recording into tmp_path."""
    from vla_studio.paths import default_station_profile
    from vla_studio.ui.main_window import MainWindow

    # The rendered cameras run at low priority: on a loaded machine they may go stale, which
    # would pause recording (tested with the dry-run station); these tests are about driving.
    profile = changed_profile(default_station_profile(), tmp_path,
                              recording={"on_camera_failure": "continue"})
    station = Station.from_profile(profile)
    station.start()
    window = MainWindow(station, reset_layout=True)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()
    station.close()


def open_window(qtbot, station, size: tuple[int, int] | None = None):
    """A main window on ``station`` with the default layout, shown (at ``size``) and settled,
    in the app's theme (its fonts and paddings decide what fits: without it a test's result
    would depend on whether an earlier test applied it)."""
    from vla_studio.ui.app import apply_theme
    from vla_studio.ui.main_window import MainWindow

    apply_theme(qtbot_app())
    window = MainWindow(station, reset_layout=True)
    qtbot.addWidget(window)
    if size is not None:
        window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.layout_settled, timeout=3000)
    return window


def qtbot_app():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance()
