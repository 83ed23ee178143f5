"""Guards against a Qt binding that corrupts reference counts (PySide6 6.12 on CPython < 3.12)."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_qt_calls_do_not_leak_references_to_none_true_or_false(qtbot):
    label = QLabel("x")
    qtbot.addWidget(label)
    before = [sys.getrefcount(o) for o in (None, True, False)]
    for _ in range(200):
        label.setText("y")
        label.update()
        label.isVisible()
    after = [sys.getrefcount(o) for o in (None, True, False)]
    # A healthy binding leaves the counts where they were (give or take a few temporaries); the
    # broken one drops None's count by two per loop iteration until the interpreter aborts.
    assert all(a >= b - 20 for a, b in zip(after, before)), (before, after)
