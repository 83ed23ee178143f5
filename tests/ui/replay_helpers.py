"""Helpers of the replay GUI tests: a window with a dataset of synthetic episodes, waiting for
the panes to paint, pressing keys where a researcher's focus is, answering the view's dialogs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QLineEdit

from tests.ui.conftest import open_window
from vla_studio.bench.replay_episode import CameraPlan, EpisodePlan, write_episode

CAMERAS = (CameraPlan("front", 160, 120, fps=30, latency_s=0.01),
           CameraPlan("wrist", 96, 72, fps=15, latency_s=0.04, depth=True))


def write_episodes(folder: Path, count: int, steps: int = 120) -> list[Path]:
    """``count`` synthetic episodes (two cameras, one with depth; holds, an intervention,
    clamps, an e-stop), oldest first."""
    paths = []
    for i in range(count):
        plan = EpisodePlan(steps=steps, cameras=CAMERAS, seed=i, episode_id=f"ep-{i:03d}",
                           created=f"2026-12-01T10:{i:02d}:00.000Z",
                           instruction=f"pick up cube {i}")
        paths.append(write_episode(folder / "episodes" / f"20261201-10{i:02d}00_{i:08x}.h5",
                                   plan))
    return paths


def replay_window(qtbot, station, dataset: Path, size=(1600, 1000)):
    """The main window on ``station`` with its Episodes list loaded."""
    window = open_window(qtbot, station, size)
    browser = window.panels["episodes"]
    browser.refresh()
    count = len(list((dataset / "episodes").glob("*.h5")))
    qtbot.waitUntil(lambda: browser.proxy.rowCount() == count, timeout=10000)
    return window


def digest(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def wait_painted(qtbot, view, step: int, timeout: int = 5000) -> None:
    """Until every pane of the view has painted ``step``."""
    qtbot.waitUntil(lambda: view.grid.panes and all(
        p.painted_step == step for p in view.grid.panes.values()), timeout=timeout)


def press(qtbot, view, key: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A key press with the focus in the replay view (where a researcher's focus is)."""
    if not (view.hasFocus() or view.isAncestorOf(QApplication.focusWidget())):
        view.window().activateWindow()  # after a dialog closed (a window manager does this)
        view.setFocus(Qt.FocusReason.OtherFocusReason)
        qtbot.waitUntil(lambda: view.hasFocus(), timeout=2000)
    qtbot.keyClick(QApplication.focusWidget() or view, key, modifier)


def answer_dialog(fill: Callable[[QDialog], None], accept: bool = True) -> None:
    """Answer the next modal dialog (the view's dialogs block in exec()): once it is shown and
    its first line edit has the keyboard, ``fill`` it, then accept (or reject) it.

    The dialog is always closed, even when ``fill`` fails (it is then rejected and the error
    raised, which pytest-qt reports as the test's failure): a dialog left open would block its
    ``exec()`` for ever and hang the suite instead of failing one test. A dialog that never
    appears stops the polling after 10 s."""
    tries = [0]

    def act() -> None:
        dialog = QApplication.activeModalWidget()
        tries[0] += 1
        if not isinstance(dialog, QDialog) or not dialog.isVisible():
            if tries[0] < 500:
                QTimer.singleShot(20, act)
            return
        fields = dialog.findChildren(QLineEdit)
        if fields and QApplication.focusWidget() is not fields[0] and tries[0] < 100:
            dialog.activateWindow()
            fields[0].setFocus(Qt.FocusReason.OtherFocusReason)
            QTimer.singleShot(20, act)
            return
        try:
            fill(dialog)
        except BaseException:
            dialog.reject()
            raise
        if accept:
            dialog.accept()
        else:
            dialog.reject()

    QTimer.singleShot(0, act)


def type_into_dialog(qtbot, text: str) -> Callable[[QDialog], None]:
    """A ``fill`` that replaces the dialog's first line edit's text as typed keys."""
    def fill(dialog: QDialog) -> None:
        field = dialog.findChildren(QLineEdit)[0]
        assert QApplication.focusWidget() is field, "the dialog's field has no keyboard focus"
        field.selectAll()
        qtbot.keyClicks(field, text)

    return fill


def timeline_point(view, step: int, lane: str) -> QPoint:
    """Where ``step`` is on the timeline's ``lane`` (ruler, robot, cameras, segments)."""
    tl = view.timeline
    rect = tl._rows()[lane]
    return QPoint(round(tl.x_of(step) + 2), rect.center().y())
