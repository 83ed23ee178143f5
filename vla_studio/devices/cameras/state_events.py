"""Turn camera state changes into operator-facing application events.

A camera that stops delivering frames must never be silent: the station subscribes
:func:`camera_event` to every camera (``Camera.add_listener``) and publishes what it returns on its
event bus, so the event log, the status bar and the recorder hear about it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vla_studio.devices.cameras.base import CameraState, CameraStatus

_TROUBLE = (CameraState.STALE, CameraState.RECONNECTING)


@dataclass(frozen=True)
class CameraEvent:
    """An event to publish: ``EventBus.emit(kind, message, level, camera=name)``."""

    kind: str
    message: str
    level: int
    camera: str


def camera_event(status: CameraStatus, previous: CameraState) -> CameraEvent | None:
    """The event for a transition from ``previous`` to ``status.state``, or None if not news.

    The first failed open is not reported here (``Station.connect`` reports it as
    ``camera.error``); retries in the same state are not reported again.
    """
    name, state = status.name, status.state
    if state in _TROUBLE and previous == CameraState.STREAMING:
        why = status.last_error or "no frames"
        return CameraEvent("camera.lost", f"Camera '{name}' stopped delivering frames ({why}); "
                           "reconnecting. Recording follows the profile's on_camera_failure "
                           "policy.", logging.WARNING, name)
    if state == CameraState.STREAMING and previous in _TROUBLE:
        closed = [g for g in status.gaps if not g.is_open]
        gap = f" after {closed[-1].duration_s():.1f} s without frames" if closed else ""
        return CameraEvent("camera.restored", f"Camera '{name}' is streaming again{gap}.",
                           logging.INFO, name)
    if state == CameraState.ENDED:
        return CameraEvent("camera.ended", f"Camera '{name}': {status.last_error}.",
                           logging.WARNING, name)
    return None
