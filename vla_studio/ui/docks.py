"""The dock widgets of the main window, declared as data.

A dock factory is ``module:Class`` taking ``(station, bridge, parent)``. Features add one row here;
the main window creates the docks in this order, arranges them as described by the rows (the
default layout, also what View → Reset layout restores) and restores the saved layout over them.
Panels are placed in their docks as they are (no scroll area around them): a panel that holds a
table or a list scrolls that, and the default layout gives every panel the room it needs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DockSpec:
    """One dock.

    Attributes:
        id: object name (stable: the saved layout refers to it).
        title: dock title.
        area: "right" or "bottom" (the right column runs the window's full height).
        target: ``"module:Class"`` of the widget.
        tab_with: id of an earlier dock in the same area to share tabs with, or "".
        beside: id of an earlier dock in the same area to sit beside (side by side), or "".
        share: the dock's share of its row when it sits beside another (0..1).
    """

    id: str
    title: str
    area: str
    target: str
    tab_with: str = ""
    beside: str = ""
    share: float = 0.5


# The default layout (View → Reset layout): cameras in the middle, large; one full-height column
# on the right whose tabs are each tall enough to show a whole panel without scrolling (the
# Teleop bindings, the Recorder form); under the cameras the episode list beside the events.
DOCKS: tuple[DockSpec, ...] = (
    DockSpec("recorder", "Recorder", "right", "vla_studio.ui.widgets.recorder_dock:RecorderDock"),
    DockSpec("teleop", "Teleop", "right", "vla_studio.ui.widgets.teleop_panel:TeleopPanel",
             tab_with="recorder"),
    DockSpec("station", "Station", "right", "vla_studio.ui.widgets.station_panel:StationPanel",
             tab_with="recorder"),
    DockSpec("policy", "Policy", "right", "vla_studio.ui.policy.panel:PolicyPanel",
             tab_with="recorder"),
    DockSpec("episodes", "Episodes", "bottom",
             "vla_studio.ui.widgets.dataset_browser:DatasetBrowser", share=0.64),
    DockSpec("events", "Events", "bottom", "vla_studio.ui.widgets.event_log:EventLog",
             beside="episodes", share=0.36),
)

# The central widget: the live camera grid.
CENTRAL = "vla_studio.ui.widgets.camera_grid:CameraGrid"
