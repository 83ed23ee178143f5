"""Colours of the replay view, shared by the panes, the timeline and the plots (the dark
theme's palette, :file:`resources/themes/dark.qss`)."""

from __future__ import annotations

from PySide6.QtGui import QColor

BACKGROUND = "#15171a"
PANEL = "#23262b"
BORDER = "#343840"
TEXT = "#dde1e7"
MUTED = "#9aa3ad"
ACCENT = "#4c8dff"
PLAYHEAD = "#ffffff"
TRIMMED = QColor(0, 0, 0, 150)  # laid over the steps a trim leaves out

EVENT_COLOURS = {
    "intervention": "#ff9f43",
    "hold": "#5b6270",
    "clamp": "#f6d04d",
    "estop": "#ff4d4f",
    "watchdog": "#c792ea",
    "camera_gap": "#e056fd",
    "dropped_steps": "#ff6bcb",
    "success": "#2fb36b",
}
EVENT_TITLES = {
    "intervention": "intervention", "hold": "held", "clamp": "safety clamp", "estop": "e-stop",
    "watchdog": "watchdog", "camera_gap": "camera gap", "dropped_steps": "steps lost",
    "success": "success",
}
# Subtask segments cycle through these (muted enough to read white labels on).
SEGMENT_COLOURS = ("#3d6fd1", "#2f9e76", "#a05ec9", "#c7782c", "#2a94b3", "#b34b6b")
# One colour per plotted dimension (x y z first: red green blue, as axes are drawn).
SERIES_COLOURS = ("#ff6b6b", "#51cf66", "#4dabf7", "#ffa94d", "#da77f2", "#63e6be", "#ffd43b",
                  "#a9e34b", "#f783ac", "#74c0fc")
