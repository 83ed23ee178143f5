"""Words for "an episode is being recorded" outside the recorder dock: the banner's REC marker
and the one drawn on every camera pane, so both always agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the camera panes import this: keep HDF5 out of their import
    from vla_studio.data.recording import RecorderStatus

PAUSED = "paused"  # RecorderState.PAUSED (a str enum)


def recording_text(status: RecorderStatus | None, starting: bool = False) -> tuple[str, str]:
    """(text, style key) of the REC marker: "" when nothing is being recorded."""
    if starting:
        return "● REC starting…", "starting"
    if status is None or status.episode is None:
        return "", ""
    elapsed = format_elapsed(status.episode.duration_s)
    if status.state == PAUSED:
        return f"❚❚ REC {elapsed} paused", "paused"
    return f"● REC {elapsed}", "recording"


def format_elapsed(seconds: float) -> str:
    """0:07, 1:23, 1:02:03."""
    s = int(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
