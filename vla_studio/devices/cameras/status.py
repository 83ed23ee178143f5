"""Camera health records: the capture state, gaps without frames, and the status snapshot.

Kept apart from the capture thread (:mod:`vla_studio.devices.cameras.base`) because every
consumer reads them: panes, the recorder's camera-failure policy, events and benchmarks.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Callable


class CameraState(str, enum.Enum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALE = "stale"
    RECONNECTING = "reconnecting"
    ENDED = "ended"  # a finite source (video file, recording) that does not loop has finished


@dataclass(frozen=True)
class FrameGap:
    """A period without frames: from the last frame before it to the first frame after it.

    Attributes:
        t_start: host monotonic time of the last frame before the gap (or when the camera was
            connected, if it had not delivered any frame yet).
        t_end: host monotonic time of the first frame after the gap; None while it lasts.
        reason: why frames stopped ("no frame for 0.25 s", "read failed: ...").
    """

    t_start: float
    t_end: float | None
    reason: str

    @property
    def is_open(self) -> bool:
        return self.t_end is None

    def duration_s(self, now: float | None = None) -> float:
        """Length of the gap; an open gap counts until ``now`` (default: the current time)."""
        end = self.t_end if self.t_end is not None else (time.monotonic() if now is None else now)
        return max(0.0, end - self.t_start)

    def overlaps(self, t0: float, t1: float) -> bool:
        """Whether the gap intersects the interval ``[t0, t1]``."""
        end = self.t_end if self.t_end is not None else float("inf")
        return self.t_start < t1 and end > t0


@dataclass(frozen=True)
class CameraStatus:
    """A consistent snapshot of a camera's health, for panes, recording and benchmarks.

    Attributes:
        state: see :class:`CameraState` (STALE is also reported when the capture thread is stuck
            in a backend call).
        delivered, dropped, late, reconnects: counters since the camera was created.
        fps: measured frame rate over the last frames (0 while stale).
        last_frame_age_s: seconds since the last frame (None before the first one).
        last_error: why the camera is not streaming ("" while it streams; the reason of a past
            interruption stays in its gap).
        mode: what the backend negotiated (``width``, ``height``, ``fps``, ``fourcc``, ...).
        requested: what the profile asked for (``width``, ``height``, ``fps``, ...).
        warnings: non-fatal problems of the current connection (an unsupported option, a
            resolution the device could not give and that frames are resized from).
        gaps: the most recent periods without frames, oldest first; an open one is last.
        gap_count: how many gaps there have been in total.
        t_last_frame: host monotonic capture time of the newest frame.
    """

    name: str
    state: CameraState
    delivered: int
    dropped: int
    late: int
    reconnects: int
    fps: float
    last_frame_age_s: float | None
    last_error: str
    mode: dict = field(default_factory=dict)
    requested: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    gaps: tuple[FrameGap, ...] = ()
    gap_count: int = 0
    t_last_frame: float | None = None

    @property
    def is_streaming(self) -> bool:
        return self.state == CameraState.STREAMING

    def gaps_between(self, t0: float, t1: float) -> list[FrameGap]:
        """Gaps (among the retained ones) that intersect ``[t0, t1]``: what an episode recorded
        over that interval is missing."""
        return [g for g in self.gaps if g.overlaps(t0, t1)]


# Called on the capture thread after each state change with (new status, previous state).
CameraListener = Callable[[CameraStatus, CameraState], None]
