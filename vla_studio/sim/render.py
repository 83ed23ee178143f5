"""Offscreen rendering of one scene camera from world snapshots.

A :class:`SceneRenderer` owns a private copy of the model (so an episode's light and colour
jitter can be applied without touching the physics model), its own ``MjData`` and a
``mujoco.Renderer``. Rendering never reads the live simulation: :meth:`render` copies a
:class:`~vla_studio.sim.world.WorldSnapshot` into the private data, recomputes positions and
draws. Create, use and close it on one thread: an EGL context belongs to the thread that made it.
"""

from __future__ import annotations

import copy
import math
import os
import threading
from dataclasses import dataclass

import mujoco
import numpy as np

from vla_studio.sim.layout import Appearance
from vla_studio.sim.world import WorldSnapshot

MAX_DEPTH_MM = 65535

# MuJoCo 4.0 leaves a static initialisation guard inside mjr_makeContext locked when creating a
# context fails: the next attempt in the same process hangs forever (holding the GIL) or aborts.
# So the first failure is remembered and every later attempt gets its message instead.
_context_failure: str | None = None
_context_lock = threading.Lock()


class RenderUnavailable(RuntimeError):
    """Offscreen rendering cannot work in this process; the message says how to fix it."""


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Pinhole intrinsics of a rendered camera (OpenCV convention: pixel centres at integers)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


def intrinsics_for(fovy_deg: float, width: int, height: int) -> PinholeIntrinsics:
    """Intrinsics of a MuJoCo camera with vertical field of view ``fovy_deg`` (square pixels)."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return PinholeIntrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


class SceneRenderer:
    """Renders camera ``camera`` of ``model`` at ``width`` x ``height``.

    Args:
        model: the scene (copied; the original is never modified).
        camera: camera name in the MJCF (``front``, ``wrist``, ``side``).
        width, height: image size in pixels.
        shadows: draw shadows (nicer, about twice the render time).
        color: render RGB.
        depth: render depth (uint16 millimetres, 0 = no return).

    Raises:
        ValueError: unknown camera or an image larger than the model's offscreen buffer.
        RenderUnavailable: no usable OpenGL backend (see :func:`check_render_backend`).
    """

    def __init__(self, model: mujoco.MjModel, camera: str, width: int, height: int,
                 shadows: bool = True, color: bool = True, depth: bool = False) -> None:
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self.camera_id < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise ValueError(f"the scene has no camera named {camera!r}; it has: {', '.join(names)}")
        self.model = copy.deepcopy(model)
        self.data = mujoco.MjData(self.model)
        self.width, self.height = width, height
        self.shadows, self.color, self.depth = shadows, color, depth
        self.intrinsics = intrinsics_for(float(self.model.cam_fovy[self.camera_id]), width, height)
        self._renderer = _make_renderer(self.model, width, height)
        self._appearance: Appearance | None = None
        extent = float(self.model.stat.extent)
        self.far_m = float(self.model.vis.map.zfar) * extent

    def render(self, snapshot: WorldSnapshot) -> tuple[np.ndarray | None, np.ndarray | None]:
        """RGB ``HxWx3`` uint8 and depth ``HxW`` uint16 millimetres (each None when off)."""
        if snapshot.appearance is not self._appearance:
            snapshot.appearance.apply(self.model)
            self._appearance = snapshot.appearance
        d = self.data
        d.qpos[:] = snapshot.qpos
        d.time = snapshot.time
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_camlight(self.model, d)
        r = self._renderer
        r.update_scene(d, self.camera_id)
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.shadows
        rgb = r.render() if self.color else None
        depth = None
        if self.depth:
            r.enable_depth_rendering()
            try:
                metres = r.render()
            finally:
                r.disable_depth_rendering()
            depth = depth_to_mm(metres, self.far_m)
        return rgb, depth

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The camera's world position and 3x3 orientation (MuJoCo axes: it looks along -z,
        y up) at the last render, in the world frame (``SimWorld.to_base`` turns it into the
        robot base frame)."""
        d = self.data
        return d.cam_xpos[self.camera_id].copy(), d.cam_xmat[self.camera_id].reshape(3, 3).copy()

    def close(self) -> None:
        self._renderer.close()


def check_render_backend() -> None:
    """Raise RenderUnavailable unless MuJoCo picked a backend that renders headless from any
    thread (EGL or OSMesa). The choice is made when ``mujoco`` is first imported, from
    ``MUJOCO_GL``; :mod:`vla_studio.sim` defaults it to ``egl``, which only works if nothing
    imported ``mujoco`` before it."""
    if _context_failure is not None:
        raise RenderUnavailable(_context_failure)
    try:
        from mujoco.rendering.classic import gl_context
    except ImportError:  # other MuJoCo layouts: let the renderer report problems itself
        return
    backend = getattr(gl_context, "GLContext", None)
    module = getattr(backend, "__module__", "") or ""
    if backend is None:
        raise RenderUnavailable("MuJoCo rendering is disabled (MUJOCO_GL); set MUJOCO_GL=egl")
    if not (module.endswith(".egl") or module.endswith(".osmesa")):
        raise RenderUnavailable(
            f"MuJoCo uses its {module.rsplit('.', 1)[-1].upper()} renderer, which needs a window "
            "on the main thread; the simulated cameras render headless on their own threads. "
            f"Start with MUJOCO_GL=egl (now {os.environ.get('MUJOCO_GL', 'unset')!r} when mujoco "
            "was imported)")


def _make_renderer(model: mujoco.MjModel, width: int, height: int) -> mujoco.Renderer:
    global _context_failure
    with _context_lock:
        check_render_backend()
        try:
            return mujoco.Renderer(model, height, width)
        except mujoco.FatalError as exc:
            _context_failure = (f"MuJoCo could not create an OpenGL context ({exc}); restart the "
                                "application with MUJOCO_GL=egl or MUJOCO_GL=osmesa")
            raise RenderUnavailable(_context_failure) from None


def depth_to_mm(metres: np.ndarray, far_m: float) -> np.ndarray:
    """Metric depth to uint16 millimetres; the far plane (nothing hit) and anything beyond
    65.535 m become 0, the "no data" value of depth cameras."""
    mm = np.rint(metres * 1000.0)
    invalid = (metres >= far_m * 0.999) | ~np.isfinite(metres) | (mm > MAX_DEPTH_MM) | (mm < 0)
    mm[invalid] = 0
    return mm.astype(np.uint16)
