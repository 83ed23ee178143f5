#!/usr/bin/env bash
# Install everything the tests need (system packages, a virtualenv with the pinned CPU torch) and
# run the whole suite: first the Qt-free core with PySide6 blocked, then the GUI tests offscreen.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxkbcommon-x11-0 libegl1 libgl1 libosmesa6 libusb-1.0-0 libhidapi-hidraw0"
missing=$(dpkg-query -W -f='${Status}\n' $APT_PACKAGES 2>&1 | grep -vc "install ok installed" || true)
if [ "$missing" != "0" ]; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  echo "== installing system packages: $APT_PACKAGES"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  $PY -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned to the CPU wheel, and repeated on every pip line so nothing upgrades it.
pip install -q "torch==2.13.0"
pip install -q -e ".[test]" -e plugins/vla-studio-example "torch==2.13.0"
# openpi's real client, to test our policy server against it. It pins numpy<2 but works with
# numpy 2 (tested): installed without its dependencies (msgpack and websockets come with us).
pip install -q --no-deps "openpi-client==0.1.2" "torch==2.13.0"
# Real-robot plugins and the protocol implementations their tests run against (loopback only).
pip install -q "franky-control==2.0.0" "franky-sim==1.0.4" "eclipse-zenoh==1.10.2" \
  "zenoh-ros2-sdk==0.1.8" "rosbags==0.11.9" "torch==2.13.0"
pip install -q -e plugins/vla-studio-franka -e plugins/vla-studio-ros2 "torch==2.13.0"
# LeRobot's own dataset loader, to test our LeRobot export against it: lerobot-dataset is
# LeRobot's dataset module without its torch pin. Its pins (av<16, opencv<4.13, fsspec via
# datasets) are stricter than the loader needs (tested with ours), so it and datasets install
# without dependencies, beside what they import. torchvision 0.25 is the last with the video
# reader LeRobot's "pyav" backend uses (tests/data/test_lerobot_export.py explains its import).
pip install -q "dill>=0.3.0,<0.4.1" "multiprocess<0.70.17" "xxhash>=3.0" "pandas>=2.0" \
  "pyyaml>=5.1" "huggingface-hub>=0.34.2,<0.36.0" "pillow>=10" "torch==2.13.0"
pip install -q --no-deps "datasets==4.1.1" "lerobot-dataset==0.4.4" "torchvision==0.25.0" \
  "torch==2.13.0"

export QT_QPA_PLATFORM=offscreen MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy OMP_NUM_THREADS=1

echo "== layering: only vla_studio.ui imports Qt"
lint-imports

echo "== headless suite (PySide6 blocked)"
VLA_STUDIO_NO_QT=1 python -m pytest -p no:pytest-qt -p no:cacheprovider -q "$@"

# Modules that need a process away from the rest (ISOLATED in tests/conftest.py), one process per
# group of modules that may share one (a line per group: its modules separated by spaces).
python -c "import sys; sys.path.insert(0, 'tests'); import conftest
for group in conftest.isolated_groups(): print(' '.join('tests/' + m for m in group))" |
while read -r modules; do
  echo "== $modules (own process)"
  # shellcheck disable=SC2086 # one word per module
  VLA_STUDIO_NO_QT=1 python -m pytest -p no:pytest-qt -p no:cacheprovider -q $modules "$@" </dev/null
done

echo "== robot plugins (franky-sim, ROS 2 over Zenoh; child processes on loopback)"
VLA_STUDIO_NO_QT=1 python -m pytest -p tests.conftest -p no:pytest-qt -p no:cacheprovider -q \
  plugins/vla-studio-franka/tests plugins/vla-studio-ros2/tests "$@"

echo "== GUI suite (offscreen Qt)"
python -m pytest tests/ui -p no:cacheprovider -q "$@"
