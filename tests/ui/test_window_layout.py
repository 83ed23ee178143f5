"""The default layout at the screens operators have (1440×900, 1920×1080): cameras large, eight
episode rows and five event rows visible, every dock panel whole without a scroll area around a
scroll area, the Teleop bindings readable at once; View → Reset layout brings exactly that back."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractScrollArea, QScrollArea

from tests.ui.conftest import open_window

SCREENS = [(1440, 900), (1920, 1080)]


def visible_rows(table) -> float:
    return table.viewport().height() / table.verticalHeader().defaultSectionSize()


def dock_geometry(window) -> dict[str, tuple]:
    return {name: (dock.isVisible(), dock.isFloating(), window.dockWidgetArea(dock),
                   dock.geometry().getRect()) for name, dock in window.docks.items()}


def show_bindings(window, qtbot, device: str) -> None:
    window.docks["teleop"].raise_()
    panel = window.panels["teleop"]
    panel.device_combo.setCurrentIndex(panel.device_combo.findData(device))
    panel.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: panel.legend_table.rowCount() > 0, timeout=2000)
    qtbot.wait(50)


@pytest.mark.parametrize("size", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_default_layout_shows_cameras_large_and_enough_rows(qtbot, dry_station, size):
    window = open_window(qtbot, dry_station, size)
    assert window.width() == size[0] and window.height() == size[1]
    cameras = window.cameras
    assert cameras.width() >= 0.6 * size[0] and cameras.height() >= 0.45 * size[1], \
        cameras.size()
    assert visible_rows(window.panels["episodes"].table) >= 8
    assert visible_rows(window.panels["events"].table) >= 5
    for name, dock in window.docks.items():  # no panel inside a scroll area of its own dock
        for area in dock.findChildren(QScrollArea):
            inner = [w for w in area.findChildren(QAbstractScrollArea) if w is not area]
            assert not inner, f"{name}: a scroll area holds {inner[0].metaObject().className()}"
    recorder = window.panels["recorder"]
    assert recorder.height() >= recorder.minimumSizeHint().height()
    assert recorder.record_button.visibleRegion().boundingRect().height() == \
        recorder.record_button.height()


@pytest.mark.parametrize("size", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("device", ["keyboard", "gamepad"])
def test_teleop_bindings_fit_without_scrolling(qtbot, dry_station, size, device):
    window = open_window(qtbot, dry_station, size)
    show_bindings(window, qtbot, device)
    panel = window.panels["teleop"]
    table = panel.legend_table
    assert not table.verticalScrollBar().isVisible(), \
        f"{table.rowCount()} rows in {table.viewport().height()} px"
    diagram = panel.diagrams.currentWidget()
    assert diagram.visibleRegion().boundingRect().size() == diagram.size()
    assert diagram.height() >= diagram.minimumHeight()
    if hasattr(diagram, "content_height"):  # the keyboard: keys and legend drawn to scale
        assert diagram.height() >= diagram.content_height()


def test_reset_layout_restores_exactly_the_default(qtbot, dry_station):
    window = open_window(qtbot, dry_station, SCREENS[0])
    default = dock_geometry(window)
    window.docks["events"].hide()
    window.docks["teleop"].setFloating(True)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, window.docks["episodes"])
    window.resizeDocks([window.docks["recorder"]], [700], Qt.Orientation.Horizontal)
    qtbot.wait(50)
    assert dock_geometry(window) != default
    window.actions_by_id["view.reset_layout"].trigger()
    qtbot.wait(50)
    assert dock_geometry(window) == default
    show_bindings(window, qtbot, "keyboard")  # the Teleop dock is whole again, not squashed
    assert not window.panels["teleop"].legend_table.verticalScrollBar().isVisible()
