"""The status layer every camera pane has: name, actual fps, capture-to-display latency, drops,
warnings, and, when the camera is not streaming, what happened in words an operator can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QLinearGradient, QPainter

from vla_studio.core.types import Frame
from vla_studio.devices.cameras.base import CameraState, CameraStatus
from vla_studio.ui.recording_status import recording_text
from vla_studio.ui.widgets.camera_overlay import Overlay, outlined_text

if TYPE_CHECKING:
    from vla_studio.ui.widgets.camera_pane import CameraPane

STATE_COLORS = {
    CameraState.STREAMING: "#2fb36b",
    CameraState.CONNECTING: "#9aa3ad",
    CameraState.STALE: "#d9a520",
    CameraState.RECONNECTING: "#ff5c5c",
    CameraState.ENDED: "#9aa3ad",
    CameraState.STOPPED: "#9aa3ad",
}
STATE_TITLES = {
    CameraState.CONNECTING: "CONNECTING",
    CameraState.STALE: "NO NEW FRAMES",
    CameraState.RECONNECTING: "CAMERA LOST — RECONNECTING",
    CameraState.ENDED: "STREAM ENDED",
    CameraState.STOPPED: "STOPPED",
}


def status_lines(name: str, status: CameraStatus, latency_ms: float | None,
                 compact: bool = False) -> list[str]:
    """The HUD's text: name and state, then fps · capture-to-display latency · drops (· late).

    ``compact`` drops the word "latency" for narrow panes.
    """
    live = "live" if status.state == CameraState.STREAMING else status.state.value
    shown = latency_ms is not None and status.state == CameraState.STREAMING
    unit = "ms" if compact else "ms latency"
    figures = [f"{status.fps:.1f} fps",
               f"{latency_ms:.0f} {unit}" if shown else f"— {unit}",
               f"{status.dropped} drop" + ("" if status.dropped == 1 else "s")]
    if status.late:
        figures.append(f"{status.late} late")
    return [f"{name} · {live}", " · ".join(figures)]


def counters_tooltip(name: str, status: CameraStatus, latency_ms: float | None) -> str:
    """The pane's tooltip: what its figures mean and what to do when they climb."""
    latency = f", {latency_ms:.0f} ms from capture to screen" if latency_ms is not None else ""
    lines = [f"<b>{name}</b> · {status.state.value} · {status.fps:.1f} fps{latency}", ""]
    lines.append(f"<b>{status.dropped} dropped</b>: frames the camera produced (or a simulated "
                 "camera was due to render) that never reached VLA Studio. Recorded steps keep "
                 "the last image, with its true capture time. If the count keeps climbing, the "
                 "machine or the USB link cannot keep up: close other programs, or lower this "
                 "camera's fps or resolution in the station profile.")
    lines.append(f"<b>{status.late} late</b>: frames that arrived more than 1.5 frame periods "
                 "after the one before (a stall, nothing lost). An occasional one is harmless; "
                 "many mean a busy CPU.")
    lines += ["", "Double-click to enlarge; right-click for view, depth range, detach and "
              "overlays."]
    return "<br>".join(lines)


def problem_text(status: CameraStatus) -> tuple[str, str]:
    """(title, detail) for a camera that is not streaming."""
    title = STATE_TITLES.get(status.state, status.state.value.upper())
    detail = status.last_error or ""
    if status.state == CameraState.CONNECTING and not detail:
        detail = "waiting for the first frame"
    if status.last_frame_age_s is not None and status.state != CameraState.ENDED:
        detail = (detail + " · " if detail else "") + f"last frame {status.last_frame_age_s:.1f} s ago"
    return title, detail


class StatusOverlay(Overlay):
    """The pane's heads-up display (z 100: above every other layer)."""

    def __init__(self, pane: "CameraPane") -> None:
        super().__init__("status", z=100)
        self.pane = pane
        # Fonts and metrics are built once: this layer paints on every frame of every camera.
        base = pane.font()
        self.bold, self.mono, self.small = QFont(base), QFont("monospace"), QFont(base)
        self.bold.setPointSizeF(9.5)
        self.bold.setBold(True)
        self.mono.setStyleHint(QFont.StyleHint.TypeWriter)
        self.mono.setPointSizeF(8.5)
        self.small.setPointSizeF(8.0)
        self.big = QFont(base)
        self.big.setPointSizeF(13)
        self.big.setBold(True)
        self.detail = QFont(base)
        self.detail.setPointSizeF(9)
        self.legend_font = QFont(base)
        self.legend_font.setPointSizeF(7.5)
        self.fm_bold, self.fm_mono = QFontMetrics(self.bold), QFontMetrics(self.mono)
        self.fm_small, self.fm_big = QFontMetrics(self.small), QFontMetrics(self.big)

    def paint(self, painter: QPainter, rect: QRectF, frame: Frame | None) -> None:
        pane = self.pane
        status = pane.status
        area = rect if frame is not None and not rect.isEmpty() else QRectF(pane.rect())
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        if status.state != CameraState.STREAMING:
            self._paint_problem(painter, area, status, frame is not None)
        self._paint_figures(painter, area, status)
        depth_rect = pane.depth_target
        if depth_rect is not None and not depth_rect.isEmpty():
            self._paint_depth_legend(painter, QRectF(depth_rect))

    def _paint_figures(self, painter: QPainter, area: QRectF, status: CameraStatus) -> None:
        pane = self.pane
        max_w = max(60.0, area.width() - 16)
        lines = status_lines(pane.name, status, pane.latency_p50_ms())
        if self.fm_mono.horizontalAdvance(lines[1]) > max_w:
            lines = status_lines(pane.name, status, pane.latency_p50_ms(), compact=True)
        lines = [self.fm_bold.elidedText(lines[0], Qt.TextElideMode.ElideRight, int(max_w - 16)),
                 self.fm_mono.elidedText(lines[1], Qt.TextElideMode.ElideRight, int(max_w))]
        notes = [f"⚠ {w}" for w in status.warnings[:1]]
        if len(status.warnings) > 1:
            notes[0] += f"  (+{len(status.warnings) - 1} more)"
        notes += [f"✖ {e}" for e in pane.layer_errors]
        bold, mono, small = self.bold, self.mono, self.small
        fm_bold, fm_mono, fm_small = self.fm_bold, self.fm_mono, self.fm_small
        notes = [fm_small.elidedText(n, Qt.TextElideMode.ElideRight, int(max_w)) for n in notes]
        width = min(max_w, max([fm_bold.horizontalAdvance(lines[0]) + 16,
                                fm_mono.horizontalAdvance(lines[1])]
                               + [fm_small.horizontalAdvance(n) for n in notes]))
        height = fm_bold.height() + fm_mono.height() + fm_small.height() * len(notes) + 6
        box = QRectF(area.left() + 6, area.top() + 6, width + 12, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(10, 11, 13, 170))
        painter.drawRoundedRect(box, 4, 4)
        x, y = box.left() + 6, box.top() + 3 + fm_bold.ascent()
        painter.setBrush(QColor(STATE_COLORS.get(status.state, "#9aa3ad")))
        painter.drawEllipse(QPointF(x + 4, y - fm_bold.ascent() / 2 + 1), 4, 4)
        painter.setFont(bold)
        painter.setPen(QColor("#f2f4f7"))
        painter.drawText(QPointF(x + 14, y), lines[0])
        y += fm_mono.height()
        painter.setFont(mono)
        painter.setPen(QColor("#dde1e7"))
        painter.drawText(QPointF(x, y), lines[1])
        painter.setFont(small)
        for note in notes:
            y += fm_small.height()
            painter.setPen(QColor("#ffd479") if note.startswith("⚠") else QColor("#ff8a80"))
            painter.drawText(QPointF(x, y), note)

    def _paint_problem(self, painter: QPainter, area: QRectF, status: CameraStatus,
                       has_image: bool) -> None:
        if has_image:  # keep the last image visible but clearly not live
            painter.fillRect(area, QColor(0, 0, 0, 150))
        title, detail = problem_text(status)
        color = QColor(STATE_COLORS.get(status.state, "#9aa3ad"))
        painter.setFont(self.big)
        fm = self.fm_big
        centre_y = area.center().y()
        title = fm.elidedText(title, Qt.TextElideMode.ElideRight, int(area.width() - 16))
        outlined_text(painter, QPointF(area.center().x() - fm.horizontalAdvance(title) / 2,
                                       centre_y - 4), title, color)
        painter.setFont(self.detail)
        painter.setPen(QColor("#dde1e7"))
        text_rect = QRectF(area.left() + 12, centre_y + 6, area.width() - 24, area.height() / 2 - 10)
        painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
                                        | Qt.TextFlag.TextWordWrap), detail)

    def _paint_depth_legend(self, painter: QPainter, rect: QRectF) -> None:
        colormap = self.pane.depth_colormap
        label = f"depth {colormap.legend()}"
        width = max(110.0, QFontMetrics(self.legend_font).horizontalAdvance(label))
        bar = QRectF(rect.right() - width - 12, rect.bottom() - 18, width, 8)
        if bar.left() < rect.left() + 4:
            return
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(10, 11, 13, 170))
        painter.drawRoundedRect(bar.adjusted(-6, -17, 6, 5), 4, 4)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        table = colormap.table
        for i in range(0, 256, 32):
            gradient.setColorAt(i / 255, QColor.fromRgb(table[max(1, i)]))
        gradient.setColorAt(1.0, QColor.fromRgb(table[255]))
        painter.setBrush(gradient)
        painter.drawRect(bar)
        painter.setFont(self.legend_font)
        painter.setPen(QColor("#dde1e7"))
        painter.drawText(QPointF(bar.left(), bar.top() - 4), label)


class RecordingMarker(Overlay):
    """"● REC 0:12" in the pane's top-right corner while an episode is recorded (z 95).

    The window gives it the recorder's status a few times a second (:meth:`show_status`); it
    paints nothing while idle.
    """

    COLOURS = {"recording": "#ff3b30", "paused": "#d9a520", "starting": "#4c8dff"}

    def __init__(self, pane: "CameraPane") -> None:
        super().__init__("recording marker", z=95)
        self.pane = pane
        self.text, self.state = "", ""
        self.font = QFont()
        self.font.setPointSizeF(10.5)
        self.font.setBold(True)
        self.fm = QFontMetrics(self.font)

    def show_status(self, status, starting: bool = False) -> bool:
        """Take the recorder's status; True when the marker changed (repaint the pane)."""
        text, state = recording_text(status, starting)
        changed = (text, state) != (self.text, self.state)
        self.text, self.state = text, state
        return changed

    def paint(self, painter: QPainter, rect: QRectF, frame: Frame | None) -> None:
        if not self.text:
            return
        # The pane's corner, not the image's: the status HUD owns the image's top-left, and a
        # narrow image (colour beside depth) has no room for both.
        area = QRectF(self.pane.rect())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width = self.fm.horizontalAdvance(self.text) + 16
        box = QRectF(area.right() - width - 8, area.top() + 8, width, self.fm.height() + 8)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(10, 11, 13, 190))
        painter.drawRoundedRect(box, 4, 4)
        painter.setFont(self.font)
        painter.setPen(QColor(self.COLOURS.get(self.state, "#ff3b30")))
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), self.text)
