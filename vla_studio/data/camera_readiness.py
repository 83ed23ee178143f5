"""Whether a station's cameras can start (or resume) an episode.

With the profile's ``on_camera_failure = "pause"`` an episode only starts when every camera
delivers images, and never on a picture taken before the scene was reset. With ``"continue"``
missing cameras are recorded as gaps instead, so nothing is refused here.

Frame ages are measured on the station's clock. In lock-step (a simulated clock) the cameras
only render when the driver ticks, so waiting for a fresh frame means letting simulated time
pass (``clock.sleep``), exactly as the real-time loop keeps ticking while the recorder waits.
"""

from __future__ import annotations

import time

from vla_studio.core.clocks import HOST_CLOCK
from vla_studio.data.recording import camera_lost_after_s

FRESH_FRAME_TIMEOUT_S = 3.0


def cameras_without_images(station) -> list[str]:
    """Messages for cameras whose latest frame is missing or too old (pause policy only)."""
    if station.profile.recording.on_camera_failure != "pause":
        return []
    now = getattr(station, "clock", HOST_CLOCK).now()
    return [no_image_message(name, cam) for name, cam in station.cameras.items()
            if (frame := cam.latest()) is None or now - frame.t_capture > camera_lost_after_s(cam)]


def cameras_without_fresh_frames(station, since: float,
                                 timeout_s: float = FRESH_FRAME_TIMEOUT_S) -> list[str]:
    """Wait until every camera delivered a frame begun after ``since`` (the scene reset);
    messages for those that did not within ``timeout_s`` (pause policy only)."""
    clock = getattr(station, "clock", HOST_CLOCK)
    if not clock.realtime:
        late = _wait_simulated(station, since, timeout_s, clock)
        return late if station.profile.recording.on_camera_failure == "pause" else []
    deadline = time.monotonic() + timeout_s
    late = []
    for name, cam in station.cameras.items():
        wanted = since + cam.period_s  # a frame exposed (rendered) wholly after the reset
        frame = cam.latest()
        while frame is None or frame.t_capture < wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            frame = cam.wait_for_frame(frame.index if frame else -1, timeout_s=left) or frame
        if frame is None or frame.t_capture < wanted:
            late.append(no_image_message(name, cam))
    if station.profile.recording.on_camera_failure != "pause":
        return []
    return late


def _wait_simulated(station, since: float, timeout_s: float, clock) -> list[str]:
    """Lock-step: let simulated time pass until every camera rendered after ``since``."""
    deadline = clock.now() + timeout_s
    while True:
        late = {name: cam for name, cam in station.cameras.items()
                if (frame := cam.latest()) is None or frame.t_capture < since + cam.period_s}
        if not late or clock.now() >= deadline:
            return [no_image_message(name, cam) for name, cam in late.items()]
        clock.sleep(min(cam.period_s for cam in late.values()))


def no_image_message(name: str, cam) -> str:
    status = cam.status()
    why = f"{status.state.value}" + (f": {status.last_error}" if status.last_error else "")
    return (f"camera '{name}' has no current image ({why}). Connect it, or set "
            "on_camera_failure = \"continue\" in the profile's [recording] table to record "
            "without it.")
