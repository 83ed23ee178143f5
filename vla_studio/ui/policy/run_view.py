"""The policy panel's read-outs: live figures of the runner, the task's verdict, and the run log.

Views of plain data (:class:`~vla_studio.policies.runner_stats.RunnerSnapshot`,
:class:`~vla_studio.data.success_monitor.TaskVerdict`, :class:`~vla_studio.policies.run_log.
LogEntry`), refreshed by the panel's timer; they never call the core themselves.
"""

from __future__ import annotations

import html
import logging
import math

from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWidget

from vla_studio.data.success_monitor import TaskVerdict
from vla_studio.policies.run_log import (CLAMP, ERROR, HELP, OUTCOME, PAUSE, STOP, VERDICT,
                                         LogEntry)
from vla_studio.policies.runner_stats import RunnerSnapshot

_KIND_COLOUR = {STOP: "#ff5c5c", ERROR: "#ff8a80", HELP: "#ffb26b", PAUSE: "#d9a520",
                CLAMP: "#d9a520", OUTCOME: "#8fb6ff", VERDICT: "#9ee6b0"}


def _ms(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else "–"


def figures_text(snap: RunnerSnapshot) -> str:
    """The runner's live figures in two short lines."""
    conf = (f"{snap.confidence:.2f} ({snap.confidence_method.replace('_', ' ')})"
            if math.isfinite(snap.confidence) else "–")
    return (f"{snap.state} · {snap.chunks} chunks ({snap.mode}) · confidence {conf}\n"
            f"latency p50 {_ms(snap.latency_p50_ms)} / p95 {_ms(snap.latency_p95_ms)} / "
            f"p99 {_ms(snap.latency_p99_ms)} ms · model {_ms(snap.infer_p50_ms)} ms · queue "
            f"{snap.queue_depth} · underruns {snap.underruns} · restarts {snap.restarts}")


def verdict_text(verdict: TaskVerdict, run_active: bool) -> tuple[str, str]:
    """The task's verdict as (text, colour) for the panel ("" outside a run)."""
    if not run_active or not verdict.answered:
        return "", "#9aa3ad"
    if verdict.success is None:
        return "Task: the robot cannot judge it — you decide (Finish)", "#9aa3ad"
    if verdict.success:
        return f"Task: ✓ accomplished ({verdict.held_s:.1f} s)", "#3ecf6e"
    return "Task: not yet accomplished", "#d9a520"


class RunFigures(QLabel):
    """Two lines of live figures."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("policyFigures")
        self.setWordWrap(True)
        self.setStyleSheet("color: #9aa3ad;")

    def show_snapshot(self, snap: RunnerSnapshot | None) -> None:
        text = figures_text(snap) if snap is not None else ""
        if text != self.text():
            self.setText(text)


class RunLogView(QPlainTextEdit):
    """The run log, newest at the bottom, coloured by kind."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("policyRunLog")
        self.setReadOnly(True)
        self.setMaximumBlockCount(1000)
        self.setAccessibleName("Run log")
        self.last_seq = 0
        self.lines: list[str] = []  # what was shown, for tests and copy-paste

    def add_entries(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            self.last_seq = max(self.last_seq, entry.seq)
            line = entry.line()
            self.lines.append(line)
            colour = _KIND_COLOUR.get(entry.kind) or (
                "#ff8a80" if entry.level >= logging.ERROR else "#dde1e7")
            self.appendHtml(f'<span style="color:{colour}; white-space:pre">'
                            f'{html.escape(line)}</span>')
        if entries:
            bar = self.verticalScrollBar()
            bar.setValue(bar.maximum())
