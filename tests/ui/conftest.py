"""GUI test fixtures: isolated QSettings and a main window on the dry-run station."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QSettings

from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import resource
from vla_studio.station import Station


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    path = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(path))
    QCoreApplication.setOrganizationName("VLA Studio Tests")
    QCoreApplication.setApplicationName("VLA Studio Tests")
    yield path


@pytest.fixture
def dry_station():
    station = Station.from_profile(load_station_profile(resource("stations", "dry_run.toml")))
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


def qtbot_app():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance()
