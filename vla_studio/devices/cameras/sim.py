"""Camera kind ``sim``: a rendered camera of the simulated tabletop (RGB and optional depth).

The camera finds the simulation by the name the ``sim`` robot published it under (``world``), so
robot and cameras stay separate devices in the profile. Until that world exists ``_open`` fails
with a clear message and the capture thread retries with backoff. Every frame renders a snapshot
of the world (copied under a short lock into the camera's own ``MjData``; the control loop's state
is never touched) with an EGL renderer created and used on the capture thread only. Frames are
paced at the configured fps; ``t_device`` is the simulated time of the snapshot, depth is uint16
millimetres (``depth_scale`` 0.001, 0 = nothing hit) and the intrinsics follow from the scene
camera's vertical field of view.

CPU: rendering (Mesa llvmpipe) releases the GIL but costs real CPU, so the capture thread runs
at a lower priority (``nice``): under load a camera delivers fewer frames (counted as drops) and
the control loop stays on time. Creating the render context in ``_open`` holds the GIL for about
0.2 s (MuJoCo compiles its shaders); the station opens cameras before it starts the loop.

Lock-step (``synchronous = True``, set by :class:`~vla_studio.sim.lockstep.LockstepStation`
before connecting): no capture thread. The lock-step driver calls :meth:`SimCamera.capture`
before every tick, on its own thread (which then owns the renderer), and the frame is stamped
with the simulated tick time; a camera slower than the control rate renders only the ticks its
frame period reaches. Counters, gaps and ``latest()`` work as with the thread.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass

from vla_studio.core.config import option
from vla_studio.core.types import Frame
from vla_studio.devices.cameras.base import (Camera, CameraConfig, CameraIntrinsics, CameraState,
                                             RawFrame)
from vla_studio.devices.cameras.geometry import CameraExtrinsics
from vla_studio.sim.render import SceneRenderer
from vla_studio.sim.scene import CAMERAS
from vla_studio.sim.world import SimWorld, find_world

log = logging.getLogger(__name__)
DEPTH_SCALE_M = 0.001
# Slots skipped before this many renders are start-up (the renderer warming up, another camera's
# context being created), not frames the camera failed to deliver: they are not counted as drops.
WARMUP_FRAMES = 10


@dataclass(frozen=True)
class SimCameraConfig(CameraConfig):
    """A ``[[cameras]]`` table with ``type = "sim"``."""

    world: str = option("sim", help="world name of the sim robot to render")
    camera: str = option("", help="scene camera: front, wrist or side; empty = this camera's name")
    shadows: bool = option(False, help="render shadows (nicer; two to three times the render time)")
    nice: int = option(10, min=0, max=19,
                       help="lower the render thread's CPU priority by this much (0 = same as "
                            "the control loop)")


class SimCamera(Camera):
    """A fixed (front, side) or wrist-mounted camera of the MuJoCo tabletop."""

    config_class = SimCameraConfig
    config: SimCameraConfig
    needs_robot = True  # renders the sim robot's world

    def __init__(self, config: SimCameraConfig) -> None:
        super().__init__(config)
        self._renderer: SceneRenderer | None = None
        self._world: SimWorld | None = None
        self._t0 = self._next_t = 0.0
        self._rendered = 0
        #: Lock-step: rendered on demand by :meth:`capture` instead of by a capture thread.
        self.synchronous = False
        self._sync_now = 0.0
        self._sync_due: float | None = None
        self._sync_thread: threading.Thread | None = None
        # (simulated time, pose) of the last renders: a wrist camera moves with the arm, so the
        # pose of the frame on screen is looked up by the frame's device time.
        self._poses: collections.deque[tuple[float, CameraExtrinsics]] = \
            collections.deque(maxlen=16)

    @property
    def scene_camera(self) -> str:
        return self.config.camera or self.name

    # ----- lock-step ---------------------------------------------------------------------------
    def connect(self, timeout_s: float = 5.0) -> None:
        if not self.synchronous:
            super().connect(timeout_s)
            return
        # No thread: the renderer is made by the first capture(), on the driver's thread.
        self._t_connect = self._t_opened = self._sync_now
        self._transition(CameraState.CONNECTING)

    @property
    def is_connected(self) -> bool:
        if self.synchronous:
            return self._state not in (CameraState.STOPPED, CameraState.ENDED)
        return super().is_connected

    def capture(self, t: float) -> Frame | None:
        """Lock-step: render the world as it is now, stamped with tick time ``t``.

        Call it on the driver's thread only (its EGL context lives there). Before this camera's
        next frame is due (a camera slower than the control rate) it keeps the previous frame.
        A camera that cannot render reports it in :meth:`status` and tries again next time.
        """
        self._sync_now = t
        if self._sync_due is not None and t < self._sync_due - 1e-9:
            return self.latest()
        try:
            if self._renderer is None:
                self._open_renderer()
                self._sync_thread = threading.current_thread()
                with self._lock:
                    self._t_opened = t
            raw = self._render(t, self._rendered)
        except Exception as exc:  # reported like a capture thread's failure, never raised
            self._close()
            self._transition(CameraState.RECONNECTING, str(exc), gap_reason=f"cannot render: {exc}")
            return None
        if raw is None:
            return self.latest()
        self._sync_due = t + self.period_s
        self._deliver(raw, t)
        return self.latest()

    def status(self):
        if not self.synchronous:
            return super().status()
        with self._lock:  # ages on the simulated clock: no time passes between ticks
            return self._status_locked(self._sync_now)

    def disconnect(self) -> None:
        if not self.synchronous:
            super().disconnect()
            return
        if self._sync_thread is threading.current_thread():
            self._close()
        else:  # an EGL context may only be released by its own thread: let it go with the process
            log.warning("sim camera %s: disconnected from another thread than the lock-step "
                        "driver's; its renderer is not released", self.name)
            self._renderer, self._world = None, None
        self._sync_due = None
        self._transition(CameraState.STOPPED)

    # ----- capture thread ----------------------------------------------------------------------
    def _open(self) -> None:
        _lower_priority(self.config.nice)
        self._open_renderer()
        self._t0 = self._next_t = time.monotonic()
        self._rendered = 0

    def _open_renderer(self) -> None:
        c = self.config
        if not (c.color or c.depth):
            raise ValueError(f"sim camera {self.name!r} has both color and depth off; enable one")
        world = find_world(c.world)
        if world is None:
            raise RuntimeError(
                f"no simulated world named {c.world!r} is running: it appears when a robot of type "
                f"\"sim\" with world = \"{c.world}\" connects (check the profile's [robot])")
        try:
            renderer = SceneRenderer(world.model, self.scene_camera, c.width, c.height,
                                     shadows=c.shadows, color=c.color, depth=c.depth)
        except ValueError as exc:
            raise ValueError(f"sim camera {self.name!r}: {exc}. Scene cameras: "
                             f"{', '.join(CAMERAS)}; image size at most 1280x960") from None
        self._renderer, self._world = renderer, world
        k = renderer.intrinsics
        self._set_intrinsics(CameraIntrinsics(k.width, k.height, k.fx, k.fy, k.cx, k.cy,
                                              depth_scale=DEPTH_SCALE_M if c.depth else None))
        self._set_mode(width=c.width, height=c.height, fps=c.fps, fourcc="RGB3",
                       camera=self.scene_camera, shadows=c.shadows)

    def _read(self, timeout_s: float) -> RawFrame | None:
        sched = self._next_t
        if not self._wait_until_due(sched, timeout_s):
            return None
        # A fixed schedule of frame slots. After a stall (a slow render) the missed slots are
        # skipped, not burst through, and show up as drops through the slot index.
        behind = time.monotonic() - sched
        if behind > self.period_s:
            skipped = (behind // self.period_s) * self.period_s
            sched += skipped
            if self._rendered < WARMUP_FRAMES:  # starting up (first renders, a sibling camera
                self._t0 += skipped  # creating its context): slots never due yet, not drops
        self._next_t = sched + self.period_s
        return self._render(None, int(round((sched - self._t0) / self.period_s)))

    def _render(self, t_capture: float | None, slot: int) -> RawFrame | None:
        """Render the latest published state (None before the world's first snapshot);
        ``t_capture`` None stamps host time after the snapshot was taken."""
        renderer, world = self._renderer, self._world
        assert renderer is not None and world is not None
        if find_world(self.config.world) is not world:
            raise RuntimeError("the simulated world stopped or was replaced by a newer one")
        snapshot = world.snapshot()
        if snapshot is None:
            return None
        if t_capture is None:
            t_capture = time.monotonic()
        color, depth = renderer.render(snapshot)
        self._rendered += 1
        pos, mat = world.to_base(*renderer.camera_pose())
        self._poses.append((snapshot.time, CameraExtrinsics.from_mujoco(pos, mat)))
        for image in (color, depth):
            if image is not None:
                image.flags.writeable = False
        return RawFrame(color=color, depth=depth, t_device=snapshot.time, device_index=slot,
                        t_capture=t_capture)

    def extrinsics_for(self, frame: Frame | None = None) -> CameraExtrinsics | None:
        """The scene camera's pose when ``frame`` was rendered (the newest one without a frame,
        or when that render is no longer remembered); the profile's ``pose`` is not used."""
        poses = list(self._poses)
        if not poses:
            return None
        if frame is not None and frame.t_device is not None:
            for t, pose in reversed(poses):
                if t == frame.t_device:
                    return pose
        return poses[-1][1]

    def _close(self) -> None:
        renderer, self._renderer, self._world = self._renderer, None, None
        if renderer is not None:
            renderer.close()


def _lower_priority(nice: int) -> None:
    """Raise the calling thread's nice value (Linux: per thread; rasterizer threads the GL
    driver starts from this thread inherit it). Rendering is best effort: under load a camera
    delivers fewer frames, the control loop stays on time."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, max(current, nice)))
    except OSError as exc:
        log.debug("cannot lower the render thread's priority: %s", exc)
