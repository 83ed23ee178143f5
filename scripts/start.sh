#!/usr/bin/env bash
# Install VLA Studio into ./.venv (pinned CPU torch first) and open the main window on the
# built-in simulated station. Extra arguments go to `vla-studio` (e.g. --station FILE).
# Usage: bash scripts/start.sh [vla-studio args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  $PY -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q "torch==2.13.0"
pip install -q -e . "torch==2.13.0"
# Headless machines render the simulator with EGL; a desktop session works the same way.
export MUJOCO_GL=${MUJOCO_GL:-egl} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-${MUJOCO_GL:-egl}}
exec vla-studio "$@"
