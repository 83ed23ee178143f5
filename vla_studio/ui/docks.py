"""The dock widgets of the main window, declared as data.

A dock factory is ``module:Class`` taking ``(station, bridge, parent)``. Features add one row here;
the main window creates the docks in this order and restores the saved layout over them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DockSpec:
    """One dock.

    Attributes:
        id: object name (stable: the saved layout refers to it).
        title: dock title.
        area: "left", "right" or "bottom".
        target: ``"module:Class"`` of the widget.
        tab_with: id of a dock in the same area to tabify with, or "".
    """

    id: str
    title: str
    area: str
    target: str
    tab_with: str = ""


DOCKS: tuple[DockSpec, ...] = (
    DockSpec("station", "Station", "right", "vla_studio.ui.widgets.station_panel:StationPanel"),
    DockSpec("events", "Events", "bottom", "vla_studio.ui.widgets.event_log:EventLog"),
    DockSpec("teleop", "Teleop", "right", "vla_studio.ui.widgets.teleop_panel:TeleopPanel"),
    DockSpec("recorder", "Recorder", "right", "vla_studio.ui.widgets.recorder_dock:RecorderDock", "station"),
    DockSpec("episodes", "Episodes", "bottom", "vla_studio.ui.widgets.dataset_browser:DatasetBrowser", "events"),
)

# The central widget: the live camera grid.
CENTRAL = "vla_studio.ui.widgets.camera_grid:CameraGrid"
