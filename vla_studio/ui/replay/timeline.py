"""The replay timeline: time ruler, event markers, subtask segments, trim, playhead.

```
 ruler     |0 s      |1 s      |2 s      |3 s ...           click or drag: seek
 robot     ▮▮hold   ███intervention   ▏clamp  ▮e-stop  ▲success
 cameras      ▏gap        ▏dropped                        hover: what happened
 segments  [ reach      ][ grasp   ][ lift         ]      drag on empty: new segment
                                                          drag an edge: resize; the body: move
                                                          double-click: label; right-click: menu
 (steps outside the trim are dimmed; the white line is the playhead)
```
The widget only draws and reports gestures: a segment edit is emitted as the complete new
segment list (:mod:`vla_studio.data.segments` computes it), and the view writes it as one
undoable annotation edit.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (QColor, QContextMenuEvent, QFont, QMouseEvent, QPainter,
                           QPaintEvent, QPen)
from PySide6.QtWidgets import QMenu, QSizePolicy, QToolTip, QWidget

from vla_studio.data import segments as seg
from vla_studio.data.replay_episode import TimelineEvent
from vla_studio.ui.replay.style import (ACCENT, BACKGROUND, BORDER, EVENT_COLOURS, MUTED,
                                        PLAYHEAD, SEGMENT_COLOURS, TEXT, TRIMMED)

LEFT_PX, RIGHT_PX = 78, 12
RULER_PX, ROW_PX, SEGMENT_PX, GAP_PX = 18, 13, 24, 2
EDGE_GRAB_PX = 5
CAMERA_KINDS = ("camera_gap", "dropped_steps")


class TimelineWidget(QWidget):
    """Timeline of one episode.

    Signals:
        seek_requested(int): the researcher clicked or dragged to this step.
        segments_edited(object, str): the new segment list and what was done ("Add segment").
        label_requested(int): double-click on segment ``i``: ask for its label.
    """

    seek_requested = Signal(int)
    segments_edited = Signal(object, str)
    label_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("replayTimeline")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(RULER_PX + 2 * ROW_PX + SEGMENT_PX + 4 * GAP_PX + 4)
        self.times = np.zeros(1)
        self.num_steps = 0
        self._t0, self._t1 = 0.0, 1.0
        self.events: list[TimelineEvent] = []
        self.segments: list[dict[str, Any]] = []
        self.trim: tuple[int, int] | None = None
        self.playhead = 0
        self.selected: int | None = None
        self._drag: tuple[str, int, int] | None = None  # (mode, segment index or anchor, x0)
        self._preview: list[dict[str, Any]] | None = None
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, self.font().pointSizeF() * 0.85))
        self._small = small

    # ----- model -----------------------------------------------------------------------------
    def set_episode(self, times: np.ndarray, events: list[TimelineEvent],
                    segments: Sequence[dict[str, Any]], trim: tuple[int, int] | None) -> None:
        self.times = np.asarray(times, np.float64) if len(times) else np.zeros(1)
        self.num_steps = len(times)
        dt = float(np.median(np.diff(self.times))) if self.num_steps > 1 else 1.0
        self._t0, self._t1 = float(self.times[0]), float(self.times[-1]) + dt
        self.events = list(events)
        self.segments = [dict(s) for s in segments]
        self.trim = trim
        self.playhead = 0
        self.selected = None
        self.update()

    def set_annotations(self, segments: Sequence[dict[str, Any]], trim: tuple[int, int] | None,
                        events: list[TimelineEvent] | None = None) -> None:
        self.segments = [dict(s) for s in segments]
        self.trim = trim
        if events is not None:
            self.events = list(events)
        if self.selected is not None and self.selected >= len(self.segments):
            self.selected = None
        self.update()

    def set_playhead(self, step: int) -> None:
        if step != self.playhead:
            self.playhead = step
            self.update()

    # ----- geometry --------------------------------------------------------------------------
    def _span(self) -> tuple[float, float]:
        return self._t0, self._t1

    def x_of(self, step: int) -> float:
        """x of the left edge of ``step`` (``num_steps`` is the end of the last step)."""
        t0, t1 = self._span()
        t = t1 if step >= self.num_steps else float(self.times[max(0, step)])
        width = max(1, self.width() - LEFT_PX - RIGHT_PX)
        return LEFT_PX + (t - t0) / max(1e-9, t1 - t0) * width

    def step_at(self, x: float) -> int:
        t0, t1 = self._span()
        width = max(1, self.width() - LEFT_PX - RIGHT_PX)
        t = t0 + (x - LEFT_PX) / width * (t1 - t0)
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        return max(0, min(i, self.num_steps - 1))

    def _rows(self) -> dict[str, QRect]:
        w = self.width() - LEFT_PX - RIGHT_PX
        y = 2
        rows = {"ruler": QRect(LEFT_PX, y, w, RULER_PX)}
        y += RULER_PX + GAP_PX
        rows["robot"] = QRect(LEFT_PX, y, w, ROW_PX)
        y += ROW_PX + GAP_PX
        rows["cameras"] = QRect(LEFT_PX, y, w, ROW_PX)
        y += ROW_PX + GAP_PX
        rows["segments"] = QRect(LEFT_PX, y, w, SEGMENT_PX)
        return rows

    def segment_rect(self, index: int, segments: Sequence[dict[str, Any]] | None = None) -> QRectF:
        s = (segments if segments is not None else self.segments)[index]
        lane = self._rows()["segments"]
        x0, x1 = self.x_of(s["start"]), self.x_of(s["end"])
        return QRectF(x0, lane.top(), max(2.0, x1 - x0), lane.height())

    # ----- painting --------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(BACKGROUND))
        rows = self._rows()
        p.setFont(self._small)
        for name, title in (("ruler", "time"), ("robot", "robot"), ("cameras", "cameras"),
                            ("segments", "subtasks")):
            r = rows[name]
            p.setPen(QColor(MUTED))
            p.drawText(QRect(6, r.top(), LEFT_PX - 10, r.height()),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, title)
            if name != "ruler":
                p.fillRect(r, QColor("#1d2024"))
        if self.num_steps:
            self._paint_ruler(p, rows["ruler"])
            self._paint_events(p, rows)
            self._paint_segments(p, rows["segments"])
            self._paint_trim(p, rows)
            x = round(self.x_of(self.playhead))
            p.setPen(QPen(QColor(PLAYHEAD), 2))
            p.drawLine(x, rows["ruler"].top(), x, rows["segments"].bottom())
        p.end()

    def _paint_ruler(self, p: QPainter, r: QRect) -> None:
        t0, t1 = self._span()
        length = t1 - t0
        pixels_per_s = r.width() / max(1e-9, length)
        step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300)
                     if s * pixels_per_s >= 60), 600)
        p.setPen(QColor(BORDER))
        p.drawLine(r.left(), r.bottom(), r.right(), r.bottom())
        t = 0.0
        while t <= length + 1e-9:
            x = r.left() + t * pixels_per_s
            p.setPen(QColor(BORDER))
            p.drawLine(round(x), r.bottom() - 5, round(x), r.bottom())
            p.setPen(QColor(MUTED))
            label = f"{t:.0f} s" if step >= 1 else f"{t:.1f} s"
            if x + 3 + p.fontMetrics().horizontalAdvance(label) <= r.right():
                p.drawText(QRect(round(x) + 3, r.top(), 60, r.height() - 4),
                           Qt.AlignmentFlag.AlignVCenter, label)
            t += step

    def _paint_events(self, p: QPainter, rows: dict[str, QRect]) -> None:
        for e in self.events:
            r = rows["cameras"] if e.kind in CAMERA_KINDS else rows["robot"]
            x0, x1 = self.x_of(e.start), self.x_of(e.end)
            colour = QColor(EVENT_COLOURS.get(e.kind, TEXT))
            if e.kind == "hold":
                colour.setAlpha(170)
            if e.kind == "success":
                x = round(x0)
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(colour)
                p.drawPolygon([QPoint(x, r.top() + 1), QPoint(x + 6, r.center().y()),
                               QPoint(x, r.bottom())])
                p.fillRect(x, r.top(), 2, r.height(), colour)
                continue
            p.fillRect(QRectF(x0, r.top() + 2, max(2.0, x1 - x0), r.height() - 4), colour)

    def _paint_segments(self, p: QPainter, lane: QRect) -> None:
        segments = self._preview if self._preview is not None else self.segments
        for i, s in enumerate(segments):
            rect = self.segment_rect(i, segments)
            colour = QColor(SEGMENT_COLOURS[i % len(SEGMENT_COLOURS)])
            p.setPen(QPen(QColor(ACCENT if i == self.selected else "#0e0f11"),
                          2 if i == self.selected else 1))
            p.setBrush(colour)
            p.drawRoundedRect(rect.adjusted(0.5, 1.5, -0.5, -1.5), 3, 3)
            p.setPen(QColor("white") if s["label"] else QColor("#cfd5dc"))
            text = s["label"] or "(unlabelled: Enter)"
            clip = rect.adjusted(5, 0, -4, 0).toRect()
            p.drawText(clip, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                       p.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight,
                                                  clip.width()))

    def _paint_trim(self, p: QPainter, rows: dict[str, QRect]) -> None:
        if self.trim is None:
            return
        top, bottom = rows["robot"].top(), rows["segments"].bottom()
        a, b = self.x_of(self.trim[0]), self.x_of(self.trim[1])
        p.fillRect(QRectF(LEFT_PX, top, a - LEFT_PX, bottom - top), TRIMMED)
        right = self.width() - RIGHT_PX
        p.fillRect(QRectF(b, top, right - b, bottom - top), TRIMMED)
        p.setPen(QPen(QColor("#ffd479"), 2))
        for x, sign in ((a, 1), (b, -1)):
            x = round(x)
            p.drawLine(x, top, x, bottom)
            p.drawLine(x, top, x + 5 * sign, top)
            p.drawLine(x, bottom, x + 5 * sign, bottom)

    # ----- gestures --------------------------------------------------------------------------
    def _hit_segment(self, pos: QPoint) -> tuple[int | None, str]:
        """Which segment is under ``pos`` and where: ``"start"``/``"end"`` edge or ``"body"``."""
        if not self._rows()["segments"].contains(pos):
            return None, ""
        for i in range(len(self.segments)):
            rect = self.segment_rect(i)
            if abs(pos.x() - rect.left()) <= EDGE_GRAB_PX:
                return i, "start"
            if abs(pos.x() - rect.right()) <= EDGE_GRAB_PX:
                return i, "end"
            if rect.left() <= pos.x() <= rect.right():
                return i, "body"
        return None, "empty"

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() != Qt.MouseButton.LeftButton or not self.num_steps:
            return
        pos = event.position().toPoint()
        index, where = self._hit_segment(pos)
        step = self.step_at(pos.x())
        if where in ("start", "end", "body"):
            self.selected = index
            self._drag = (where, index, pos.x())
        elif where == "empty":
            self.selected = None
            self._drag = ("create", step, pos.x())
        else:
            self._drag = ("seek", step, pos.x())
            self.seek_requested.emit(step)
        self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        pos = event.position().toPoint()
        if self._drag is None:
            self._hover(pos)
            return
        mode, ref, x0 = self._drag
        step = self.step_at(pos.x())
        if mode == "seek":
            self.seek_requested.emit(step)
            return
        if abs(pos.x() - x0) < 3:
            return  # a click, not a drag (yet)
        if mode == "create":
            end = step + 1 if step >= ref else step
            self._preview, _ = seg.add_segment(self.segments, ref, end, "", self.num_steps)
        elif mode == "body":
            s = self.segments[ref]
            delta = step - self.step_at(x0)
            self._preview = seg.move_segment(self.segments, ref, s["start"] + delta,
                                             self.num_steps)
        else:
            edge_step = step + 1 if mode == "end" else step
            self._preview = seg.clamp_end(seg.resize_segment(self.segments, ref, mode,
                                                             edge_step), self.num_steps)
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        drag, preview = self._drag, self._preview
        self._drag, self._preview = None, None
        if drag is None:
            return
        mode, ref, _ = drag
        if preview is not None and preview != self.segments:
            what = {"create": "Add subtask segment", "body": "Move subtask segment",
                    "start": "Resize subtask segment", "end": "Resize subtask segment"}[mode]
            if mode == "create":
                self.selected = next((i for i, s in enumerate(preview)
                                      if s not in self.segments), None)
            self.segments_edited.emit(preview, what)
        else:  # a click (on a segment or the empty lane): go there
            self.seek_requested.emit(self.step_at(event.position().x()))
        self.update()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        index, where = self._hit_segment(event.position().toPoint())
        if index is not None:
            self.selected = index
            self.label_requested.emit(index)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt override
        index, _ = self._hit_segment(event.pos())
        if index is None:
            return
        self.selected = index
        self.update()
        menu = QMenu(self)
        label = menu.addAction("Label...")
        delete = menu.addAction("Delete segment")
        chosen = menu.exec(event.globalPos())
        if chosen is label:
            self.label_requested.emit(index)
        elif chosen is delete:
            self.segments_edited.emit(seg.delete_segment(self.segments, index),
                                      "Delete subtask segment")

    def _hover(self, pos: QPoint) -> None:
        index, where = self._hit_segment(pos)
        shape = {"start": Qt.CursorShape.SizeHorCursor, "end": Qt.CursorShape.SizeHorCursor,
                 "body": Qt.CursorShape.OpenHandCursor,
                 "empty": Qt.CursorShape.CrossCursor}.get(where, Qt.CursorShape.PointingHandCursor)
        self.setCursor(shape)
        rows = self._rows()
        tips = []
        for e in self.events:
            r = rows["cameras"] if e.kind in CAMERA_KINDS else rows["robot"]
            if r.contains(pos) and self.x_of(e.start) - 3 <= pos.x() <= self.x_of(e.end) + 3:
                tips.append(f"{e.label} (step {e.start}" +
                            (f"–{e.end - 1})" if e.end - e.start > 1 else ")"))
        if index is not None:
            s = self.segments[index]
            tips.append(f"{s['label'] or 'unlabelled'}: steps {s['start']}–{s['end'] - 1}")
        if tips:
            QToolTip.showText(self.mapToGlobal(pos), "\n".join(dict.fromkeys(tips[:8])), self)
        else:
            QToolTip.hideText()
