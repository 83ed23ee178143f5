"""Test-wide settings: headless Qt/MuJoCo/SDL, the no-Qt mode, and no silent skips in CI.

* ``VLA_STUDIO_NO_QT=1`` makes PySide6, shiboken6 and pyqtgraph unimportable (as if not
  installed) and leaves out ``tests/ui``: the headless core must pass that way (layering rule).
* ``VLA_STUDIO_FAIL_ON_SKIP=1`` (set by CI) turns any skipped test into a failed run.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYTEST_QT_API", "pyside6")

NO_QT = os.environ.get("VLA_STUDIO_NO_QT") == "1"
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph", "pytestqt")


class _BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):  # noqa: D401 - importlib protocol
        if name.split(".")[0] in QT_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by VLA_STUDIO_NO_QT)",
                                      name=name)
        return None


# Test modules that must run away from the rest of the suite, and why. Modules of one group may
# share a process: scripts/test.sh runs each group in a pytest process of its own (TensorFlow is
# imported once, not once per module). A run that names a module explicitly runs it, any other
# run leaves it out and says so at the end.
ISOLATED = {
    "data/test_rlds_roundtrip.py": "imports TensorFlow, whose bundled LLVM crashes Mesa's llvmpipe "
                                   "(MuJoCo's EGL renderer) when both live in one process",
    "data/test_rlds_annotations_tfds.py": "imports TensorFlow (as test_rlds_roundtrip.py)",
    "data/test_lerobot_export.py": "imports torch, torchvision and LeRobot's dataset module "
                                   "(with two torchvision operator schemas defined first)",
    "data/test_rlds_dagger_tfds.py": "imports TensorFlow (as test_rlds_roundtrip.py)",
}
ISOLATED_GROUP = {  # module -> group (modules not named here: a group of their own)
    "data/test_rlds_roundtrip.py": "tensorflow",
    "data/test_rlds_annotations_tfds.py": "tensorflow",
    "data/test_rlds_dagger_tfds.py": "tensorflow",
}


def isolated_groups() -> list[list[str]]:
    """The isolated modules, grouped by the process they may share (see ISOLATED_GROUP)."""
    groups: dict[str, list[str]] = {}
    for module in ISOLATED:
        groups.setdefault(ISOLATED_GROUP.get(module, module), []).append(module)
    return list(groups.values())
@pytest.fixture(autouse=True)
def _no_log_queue_left_behind():
    """A command run in-process (``cli_main``) installs the log queue, which moves the root
    logger's handlers, pytest's log capture among them, behind it for good; the next test's
    capture would then see every record twice. Undo it after each test."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    from vla_studio.core.log_queue import stop_log_queues

    stop_log_queues()
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)


_TESTS_DIR = Path(__file__).resolve().parent
_left_out: list[str] = []

collect_ignore: list[str] = []
if NO_QT:
    sys.meta_path.insert(0, _BlockQt())
    collect_ignore.append("ui")


def pytest_configure(config):
    if NO_QT:
        # pytest-qt is a plugin that imports Qt; it is disabled with -p no:pytest-qt (see scripts).
        config.addinivalue_line("markers", "gui: needs PySide6")


def pytest_ignore_collect(collection_path, config):
    try:
        rel = collection_path.resolve().relative_to(_TESTS_DIR).as_posix()
    except ValueError:
        return None
    if rel not in ISOLATED:
        return None
    named = {Path(arg.split("::")[0]).resolve() for arg in config.args}
    if collection_path.resolve() in named:
        return None
    _left_out.append(rel)
    return True


def pytest_terminal_summary(terminalreporter):
    for rel in _left_out:
        terminalreporter.write_line(
            f"note: tests/{rel} runs in its own process ({ISOLATED[rel]}): "
            f"python -m pytest tests/{rel}", yellow=True)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("VLA_STUDIO_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; CI runs every test", red=True)
        session.exitstatus = 1
