"""Layering: only vla_studio.ui imports Qt, and the whole core imports with Qt unavailable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import vla_studio

ROOT = Path(__file__).resolve().parents[2]

BLOCK_QT_AND_IMPORT_ALL = """
import importlib, importlib.abc, pkgutil, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph'):
            raise ModuleNotFoundError(name, name=name)
sys.meta_path.insert(0, Block())
import vla_studio
names = [m.name for m in pkgutil.walk_packages(vla_studio.__path__, 'vla_studio.')
         if not m.name.startswith('vla_studio.ui') and not m.name.endswith('__main__')]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_core_modules_import_without_qt():
    proc = subprocess.run([sys.executable, "-c", BLOCK_QT_AND_IMPORT_ALL], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) > 20


def test_import_linter_contract_holds():
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency"
    proc = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Only vla_studio.ui imports Qt KEPT" in proc.stdout


def test_no_module_outside_ui_imports_qt_directly():
    offenders = []
    for path in Path(vla_studio.__file__).parent.rglob("*.py"):
        if "ui" in path.relative_to(Path(vla_studio.__file__).parent).parts[:1]:
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import PySide6", "from PySide6", "import pyqtgraph", "from pyqtgraph")):
                offenders.append(f"{path}: {stripped}")
    assert not offenders
