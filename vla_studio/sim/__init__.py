"""The built-in simulated station: a MuJoCo tabletop, its arm controller, tasks and expert.

Qt-free. Rendering is headless: unless the environment chooses otherwise, MuJoCo uses EGL
(``MUJOCO_GL=egl``; Mesa's llvmpipe on machines without a GPU), which works with or without a
display and from any thread, one context per rendering thread. This must be decided before
``mujoco`` is first imported, hence here. llvmpipe also splits every frame across all cores by
default; for camera-sized images one rasterizer thread per camera costs less CPU in total and
leaves a core for the control loop (``LP_NUM_THREADS=1``, read when the first renderer starts;
set it in the environment to override).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("LP_NUM_THREADS", "1")
