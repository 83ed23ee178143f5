"""The Episodes list's table: episode summaries as rows (text to read, raw values to sort by)
and the free-text and outcome filter over them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QPersistentModelIndex,
                            QSortFilterProxyModel, Qt)
from PySide6.QtGui import QColor

from vla_studio.data.dataset_index import EpisodeSummary

SORT_ROLE = Qt.ItemDataRole.UserRole
_SUCCESS_TEXT = {True: "✓ success", False: "✗ failure", None: "?"}
_SUCCESS_COLOUR = {True: QColor("#2fb36b"), False: QColor("#ff5c5c"), None: QColor("#9aa3ad")}


def source_text(s: EpisodeSummary) -> str:
    """Who drove: the teleop device by name ("keyboard", "gamepad", "expert"), "policy", a
    DAgger run with the device that took over ("dagger · gamepad"), or a device that never moved
    the arm ("gamepad (no motion)": unplugged, or never touched). A policy run shows its mean
    confidence over the steps it drove ("policy (0.82)")."""
    if s.source == "policy" and s.confidence is not None:
        return f"policy ({s.confidence:.2f})"
    if not s.device:
        return s.source
    if s.source == "teleop":
        return s.device
    if s.source in ("dagger", "intervention"):
        return f"{s.source} · {s.device}"
    if s.source == "hold":
        return f"{s.device} (no motion)"
    return s.source


VIDEO_STORAGE = {"av1": "AV1", "h264": "H.264"}  # short: the default layout's list is narrow
_VIDEO_COLOUR = QColor("#6fb7ff")


def storage_text(storage: str) -> str:
    """How an episode's frames are stored, for the Storage column (video in blue)."""
    return VIDEO_STORAGE.get(storage) or {"jpeg": "JPEG", "png": "PNG", "mixed": "mixed",
                                          "none": "no images", "": "?"}.get(storage, storage)


def size_text(size: int) -> str:
    """A file size as people read it (1.2 GB, 350 MB, 4.2 MB, 80 kB)."""
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    if size >= 1e7:
        return f"{size / 1e6:.0f} MB"
    if size >= 1e6:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e3:.0f} kB"


def round_text(s: EpisodeSummary) -> str:
    """The DAgger round ("" outside any round)."""
    return "" if s.dagger_round is None else str(s.dagger_round)


def interventions_text(s: EpisodeSummary) -> str:
    """Takeovers and the share of the driven steps the operator drove ("2 · 18%"); "" for an
    episode that was not a policy run."""
    driven = s.intervention_steps + s.policy_steps
    if not s.policy_steps and not s.intervention_steps:
        return ""
    return f"{s.interventions} · {100 * s.intervention_steps / driven:.0f}%"


def _local_time(created: str, today: dt.date | None = None) -> str:
    """Today's episodes by time only (the column stays narrow), older ones with their date."""
    try:
        stamp = dt.datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return created
    if stamp.date() == (today or dt.date.today()):
        return stamp.strftime("%H:%M:%S")
    return stamp.strftime("%Y-%m-%d %H:%M")


class EpisodeTableModel(QAbstractTableModel):
    """Episode summaries as table rows (display text, plus raw values for sorting)."""

    COLUMNS = ("Date", "Instruction", "Duration", "Steps", "Success", "Quality", "Operator",
               "Source", "Round", "Interventions", "Task", "Tags", "Flags", "Storage", "Size")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[EpisodeSummary] = []

    def set_rows(self, rows: list[EpisodeSummary]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt override
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        s = self.rows[index.row()]
        column = self.COLUMNS[index.column()]
        if role == SORT_ROLE:
            return {"Date": s.created, "Instruction": s.instruction.lower(), "Duration": s.duration_s,
                    "Steps": s.num_steps, "Success": -1 if s.success is None else int(s.success),
                    "Quality": s.quality or 0, "Operator": s.operator.lower(),
                    "Source": source_text(s), "Round": -1 if s.dagger_round is None
                    else s.dagger_round, "Interventions": s.interventions, "Task": s.task,
                    "Tags": ", ".join(s.tags), "Flags": ", ".join(s.flags),
                    "Storage": storage_text(s.storage), "Size": s.size_bytes}[column]
        if role == Qt.ItemDataRole.DisplayRole:
            return {"Date": _local_time(s.created), "Instruction": s.instruction,
                    "Duration": f"{s.duration_s:.1f} s", "Steps": str(s.num_steps),
                    "Success": _SUCCESS_TEXT[s.success],
                    "Quality": "★" * s.quality if s.quality else "", "Operator": s.operator,
                    "Source": source_text(s), "Round": round_text(s),
                    "Interventions": interventions_text(s), "Task": s.task,
                    "Tags": ", ".join(s.tags), "Flags": ", ".join(s.flags),
                    "Storage": storage_text(s.storage), "Size": size_text(s.size_bytes)}[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == "Success":
            return _SUCCESS_COLOUR[s.success]
        if role == Qt.ItemDataRole.ForegroundRole and column == "Storage" and \
                s.storage in VIDEO_STORAGE:
            return _VIDEO_COLOUR
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [f"{s.name} · recorded {s.created}", *s.instructions]
            if s.notes:
                lines.append(f"notes: {s.notes}")
            if s.tags:
                lines.append(f"tags: {', '.join(s.tags)}")
            if s.storage in VIDEO_STORAGE:
                lines.append(f"stored as {VIDEO_STORAGE[s.storage]} video, "
                             f"{size_text(s.size_bytes)}")
            return "\n".join(lines)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (
                "Duration", "Steps", "Round", "Interventions", "Size"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class EpisodeFilter(QSortFilterProxyModel):
    """Free-text filter over instruction, operator, task, flags and file name, plus an outcome
    filter (all / success / failure / unknown) and a DAgger round filter."""

    OUTCOMES = ("All outcomes", "Success", "Failure", "Unknown")
    ALL_ROUNDS, NO_ROUND = "All rounds", "No round"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text = ""
        self.outcome = "All outcomes"
        self.round = self.ALL_ROUNDS
        self.setSortRole(SORT_ROLE)

    @staticmethod
    def round_choices(rows: list[EpisodeSummary]) -> list[str]:
        """The round filter's entries for ``rows`` ("Round 1", ... and "No round")."""
        rounds = sorted({r.dagger_round for r in rows if r.dagger_round is not None})
        if not rounds:
            return [EpisodeFilter.ALL_ROUNDS]
        return [EpisodeFilter.ALL_ROUNDS, *(f"Round {n}" for n in rounds),
                EpisodeFilter.NO_ROUND]

    def set_round(self, choice: str) -> None:
        self._change(lambda: setattr(self, "round", choice or self.ALL_ROUNDS))

    def set_text(self, text: str) -> None:
        self._change(lambda: setattr(self, "text", text.strip().lower()))

    def set_outcome(self, outcome: str) -> None:
        self._change(lambda: setattr(self, "outcome", outcome))

    def _change(self, apply) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9
            self.beginFilterChange()
            apply()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            apply()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        s: EpisodeSummary = self.sourceModel().rows[row]
        wanted = {"Success": True, "Failure": False, "Unknown": None}
        if self.outcome in wanted and s.success is not wanted[self.outcome]:
            return False
        if self.round == self.NO_ROUND and s.dagger_round is not None:
            return False
        if self.round.startswith("Round ") and s.dagger_round != int(self.round.split()[1]):
            return False
        return s.matches(self.text)
