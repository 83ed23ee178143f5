"""Live pictures of a teleop device with its bindings: a gamepad, a keyboard, a SpaceMouse.

Each diagram is a view of a device: :meth:`show_device` reads its legend (what each control
does) once, :meth:`show_state` is called every display frame with the latest raw state and
lights up the controls being used (stick positions, pressed buttons, held keys).
"""

from __future__ import annotations

from typing import Mapping

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from vla_studio.devices.base import TeleopState
from vla_studio.devices.teleop.base import LegendRow, MappedTeleop
from vla_studio.devices.teleop.bindings import FUNCTION_COMMANDS, FUNCTION_SHORT, GRIPPER, STOP
from vla_studio.devices.teleop.gamepad import GamepadTeleop
from vla_studio.devices.teleop.keyboard import key_label

BG = QColor("#15171a")
BODY = QColor("#2c3036")
EDGE = QColor("#4a505a")
CONTROL = QColor("#3b4048")
ACTIVE = QColor("#4c8dff")
TEXT = QColor("#dde1e7")
MUTED = QColor("#9aa3ad")
STOP_RED = QColor("#ff5c5c")
GROUP_COLORS = {"move": QColor("#2d6cdf"), "rotate": QColor("#8a5cf5"),
                "gripper": QColor("#2fb36b"), "hold": QColor("#c28a14"),
                "command": QColor("#5a6577"), "stop": QColor("#d92d20")}
_ROTATION_CHANNELS = ("roll", "pitch", "yaw")
_SHORT_MOTION = {"x": "Fwd/back", "y": "Left/right", "z": "Up/down", "roll": "Roll",
                 "pitch": "Pitch", "yaw": "Yaw"}


def row_group(row: LegendRow) -> str:
    """Colour group of a legend row: move, rotate, gripper, hold, command or stop."""
    if row.kind == "motion":
        return "rotate" if row.name in _ROTATION_CHANNELS else "move"
    if row.name == STOP:
        return "stop"
    if row.name == GRIPPER:
        return "gripper"
    if row.name in FUNCTION_COMMANDS:
        return "command"
    return "hold"


def short_action(row: LegendRow) -> str:
    """A few words for a diagram callout ("Fwd/back", "Take over")."""
    if row.kind == "motion":
        return _SHORT_MOTION.get(row.name, row.action)
    return FUNCTION_SHORT.get(row.name, row.action)


class _Diagram(QWidget):
    """Common plumbing: a device's legend rows and its latest state."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[LegendRow] = []
        self.state: TeleopState | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def show_device(self, device: MappedTeleop) -> None:
        self.rows = device.legend()
        self.update()

    def show_state(self, state: TeleopState) -> None:
        """Show the controls' latest values; repaints only when something moved."""
        old = self.state
        self.state = state
        if old is None or old.axes != state.axes or old.buttons != state.buttons:
            self.update()

    def axis(self, name: str) -> float:
        return float(self.state.axes.get(name, 0.0)) if self.state else 0.0

    def pressed(self, name: str) -> bool:
        return bool(self.state.buttons.get(name)) if self.state else False

    def rows_for(self, names: tuple[str, ...]) -> list[LegendRow]:
        return [r for r in self.rows if any(c in names for c in r.controls)]


# ----- gamepad ------------------------------------------------------------------------------------
# Control anchors in the pad's own coordinates (0..1 across the body; v < 0 is above it).
_PAD_ANCHORS: dict[str, tuple[float, float]] = {
    "trigger_left": (0.2, -0.13), "left_shoulder": (0.2, 0.0), "left_stick": (0.24, 0.36),
    "dpad": (0.36, 0.67), "back": (0.41, 0.33), "guide": (0.5, 0.2), "start": (0.59, 0.33),
    "trigger_right": (0.8, -0.13), "right_shoulder": (0.8, 0.0), "y": (0.76, 0.22),
    "x": (0.67, 0.36), "b": (0.85, 0.36), "a": (0.76, 0.5), "right_stick": (0.64, 0.67),
}
_FACE_GLYPHS = {"Cross": "✕", "Circle": "○", "Square": "□", "Triangle": "△"}
_PAD_GROUPS = {
    "left_stick": ("left_x", "left_y", "left_stick"),
    "right_stick": ("right_x", "right_y", "right_stick"),
    "dpad": ("dpad_up", "dpad_down", "dpad_left", "dpad_right"),
}


class GamepadDiagram(_Diagram):
    """A gamepad seen from above, with callouts naming what each bound control does."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.labels: Mapping[str, str] = {}
        self.setMinimumHeight(250)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(420, 250)

    def show_device(self, device: MappedTeleop) -> None:
        if isinstance(device, GamepadTeleop):
            self.labels = {n: device.control_label(n) for n in _PAD_ANCHORS} | {
                "left_stick": "Left stick", "right_stick": "Right stick", "dpad": "D-pad"}
        super().show_device(device)

    def _callout(self, control: str) -> tuple[str, str]:
        names = _PAD_GROUPS.get(control, (control,))
        rows = self.rows_for(names)
        if not rows:
            return "", ""
        groups = {row_group(r) for r in rows}
        group = "stop" if "stop" in groups else row_group(rows[0])
        return ", ".join(dict.fromkeys(short_action(r) for r in rows)), group

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), BG)
        col = 112  # callout columns either side
        body = QRectF(col + 8, 52, max(120.0, self.width() - 2 * col - 16), self.height() - 70)
        self._paint_body(p, body)
        font = QFont(self.font())
        font.setPointSizeF(8.0)
        p.setFont(font)
        fm = QFontMetrics(font)
        left, right = [], []
        for control, (u, v) in _PAD_ANCHORS.items():
            text, group = self._callout(control)
            if not text:
                continue
            anchor = QPointF(body.left() + u * body.width(), body.top() + v * body.height())
            label = f"{self.labels.get(control, control)}: {text}"
            (left if u < 0.5 else right).append((anchor, label, group))
        for side, items in (("left", left), ("right", right)):
            items.sort(key=lambda item: item[0].y())
            y = 4.0
            for anchor, label, group in items:
                rect = fm.boundingRect(0, 0, col - 6, 200, int(Qt.TextFlag.TextWordWrap), label)
                y = max(y, anchor.y() - rect.height() / 2)
                x = 2.0 if side == "left" else self.width() - col + 4
                box = QRectF(x, y, col - 6, rect.height())
                color = STOP_RED if group == "stop" else TEXT
                p.setPen(QPen(EDGE, 1))
                edge = QPointF(box.right() + 2 if side == "left" else box.left() - 2,
                               box.top() + min(8.0, box.height() / 2))
                p.drawLine(edge, anchor)
                p.setPen(color)
                align = Qt.AlignmentFlag.AlignLeft if side == "left" else Qt.AlignmentFlag.AlignLeft
                p.drawText(box, int(align | Qt.TextFlag.TextWordWrap), label)
                y = box.bottom() + 3
        p.end()

    def _paint_body(self, p: QPainter, r: QRectF) -> None:
        path = QPainterPath()
        path.addRoundedRect(QRectF(r.left(), r.top(), r.width(), r.height() * 0.62), 26, 26)
        for cx in (r.left() + r.width() * 0.2, r.left() + r.width() * 0.8):
            path.addEllipse(QPointF(cx, r.top() + r.height() * 0.62), r.width() * 0.17,
                            r.height() * 0.36)
        p.setPen(QPen(EDGE, 1.5))
        p.setBrush(BODY)
        p.drawPath(path.simplified())
        w, h = r.width(), r.height()
        at = lambda name: QPointF(r.left() + _PAD_ANCHORS[name][0] * w,  # noqa: E731
                                  r.top() + _PAD_ANCHORS[name][1] * h)
        for name, down_name in (("trigger_left", "trigger_left"), ("trigger_right", "trigger_right")):
            c = at(name)
            rect = QRectF(c.x() - 18, c.y() - 9, 36, 16)
            self._box(p, rect, False)
            level = max(0.0, min(1.0, self.axis(down_name)))
            if level > 0:
                p.fillRect(QRectF(rect.left(), rect.bottom() - rect.height() * level,
                                  rect.width(), rect.height() * level), ACTIVE)
            self._caption(p, rect, self.labels.get(name, ""))
        for name in ("left_shoulder", "right_shoulder"):
            c = at(name)
            rect = QRectF(c.x() - 22, c.y() - 6, 44, 12)
            self._box(p, rect, self.pressed(name))
            self._caption(p, rect, self.labels.get(name, ""))
        radius = min(w, h) * 0.11
        for stick, (ax, ay) in (("left_stick", ("left_x", "left_y")),
                                ("right_stick", ("right_x", "right_y"))):
            c = at(stick)
            p.setPen(QPen(EDGE, 1.5))
            p.setBrush(CONTROL)
            p.drawEllipse(c, radius, radius)
            knob = QPointF(c.x() + self.axis(ax) * radius * 0.6, c.y() + self.axis(ay) * radius * 0.6)
            moved = abs(self.axis(ax)) > 0.05 or abs(self.axis(ay)) > 0.05
            p.setBrush(ACTIVE if moved or self.pressed(stick) else QColor("#565d68"))
            p.drawEllipse(knob, radius * 0.45, radius * 0.45)
        c = at("dpad")
        s = radius * 0.55
        for name, dx, dy in (("dpad_up", 0, -1), ("dpad_down", 0, 1), ("dpad_left", -1, 0),
                             ("dpad_right", 1, 0)):
            rect = QRectF(c.x() + dx * s - s / 2, c.y() + dy * s - s / 2, s, s)
            self._box(p, rect, self.pressed(name), radius=2)
        for name in ("a", "b", "x", "y"):
            c = at(name)
            rect = QRectF(c.x() - 9, c.y() - 9, 18, 18)
            p.setPen(QPen(EDGE, 1))
            p.setBrush(ACTIVE if self.pressed(name) else CONTROL)
            p.drawEllipse(rect)
            label = self.labels.get(name, "")
            self._caption(p, rect, _FACE_GLYPHS.get(label, label[:1]))
        for name in ("back", "guide", "start"):
            c = at(name)
            rect = QRectF(c.x() - 6, c.y() - 5, 12, 10)
            self._box(p, rect, self.pressed(name), radius=4)

    @staticmethod
    def _box(p: QPainter, rect: QRectF, active: bool, radius: float = 5) -> None:
        p.setPen(QPen(EDGE, 1))
        p.setBrush(ACTIVE if active else CONTROL)
        p.drawRoundedRect(rect, radius, radius)

    def _caption(self, p: QPainter, rect: QRectF, text: str) -> None:
        font = QFont(self.font())
        font.setPointSizeF(7.0)
        font.setBold(True)
        p.setFont(font)
        p.setPen(TEXT)
        p.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)


# ----- keyboard -----------------------------------------------------------------------------------
_KEY_ROWS = (("1", "2", "3", "4", "5", "6", "7", "8", "9", "0"),
             ("q", "w", "e", "r", "t", "y", "u", "i", "o", "p"),
             ("a", "s", "d", "f", "g", "h", "j", "k", "l", "semicolon"),
             ("shift", "z", "x", "c", "v", "b", "n", "m", "comma", "period"))
_ROW_OFFSETS = (0.0, 0.3, 0.55, 0.0)
_MOTION_TAGS = {"x": ("fwd", "back"), "y": ("left", "right"), "z": ("up", "down"),
                "roll": ("roll+", "roll-"), "pitch": ("pitch+", "pitch-"),
                "yaw": ("yaw+", "yaw-")}
_BUTTON_TAGS = {"gripper": "grip", "deadman": "enable", "intervention": "take",
                "precision": "slow", "rotation_toggle": "rot", "stop": "STOP", "record": "rec",
                "success": "ok", "failure": "fail", "next_task": "next"}


# Six rows of keys at the largest key size (38 px) and the legend line under them.
KEYBOARD_HEIGHT = 6 + 6 * 38 + 18


class KeyboardDiagram(_Diagram):
    """A keyboard with the bound keys coloured by what they do and held keys lit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tags: dict[str, tuple[str, str]] = {}  # key -> (tag, group)
        self.setMinimumHeight(KEYBOARD_HEIGHT)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(420, KEYBOARD_HEIGHT)

    def content_height(self) -> float:
        """How tall the keys and the legend line are drawn at the current width."""
        unit = min(38.0, (self.width() - 12) / 11.2)
        return 6 + 6 * unit + 18

    def show_device(self, device: MappedTeleop) -> None:
        rows = device.legend()
        tags: dict[str, tuple[str, str]] = {}
        for row in rows:
            group = row_group(row)
            if row.kind == "motion":
                plus_minus = _MOTION_TAGS.get(row.name, ("+", "-"))
                for key, tag in zip(row.controls, plus_minus):
                    tags[key] = (tag, group)
            else:
                tags[row.controls[0]] = (_BUTTON_TAGS.get(row.name, "?"), group)
        tags["escape"] = ("STOP", "stop")
        tags["space"] = ("STOP*", "stop")
        self.tags = tags
        super().show_device(device)

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), BG)
        unit = min(38.0, (self.width() - 12) / 11.2)
        top = 6.0
        self._key(p, QRectF(6, top, unit * 1.2 - 4, unit - 4), "escape", "Esc")
        for r, (keys, offset) in enumerate(zip(_KEY_ROWS, _ROW_OFFSETS)):
            y = top + (r + 1) * unit
            x = 6 + offset * unit
            for key in keys:
                width = unit * (1.3 if key == "shift" else 1.0)
                self._key(p, QRectF(x, y, width - 4, unit - 4), key, key_label(key))
                x += width
        y = top + 5 * unit
        self._key(p, QRectF(6, y, unit * 1.3 - 4, unit - 4), "ctrl", "Ctrl")
        self._key(p, QRectF(6 + unit * 1.3, y, unit * 1.2 - 4, unit - 4), "alt", "Alt")
        self._key(p, QRectF(6 + unit * 2.5, y, unit * 5.5 - 4, unit - 4), "space", "Space")
        arrows = QRectF(6 + unit * 8.3, y, unit * 2.6, unit - 4)
        aw = arrows.width() / 3
        for i, key in enumerate(("left", "down", "right")):
            self._key(p, QRectF(arrows.left() + i * aw, y + unit * 0.45, aw - 3, unit * 0.55 - 3),
                      key, key_label(key), small=True)
        self._key(p, QRectF(arrows.left() + aw, y - unit * 0.1, aw - 3, unit * 0.5 - 3), "up",
                  key_label("up"), small=True)
        font = QFont(self.font())
        font.setPointSizeF(7.5)
        p.setFont(font)
        p.setPen(MUTED)
        p.drawText(QRectF(6, y + unit, self.width() - 12, 16), int(Qt.AlignmentFlag.AlignLeft),
                   "STOP*: Space stops while a run is active. Lit keys are held.")
        p.end()

    def _key(self, p: QPainter, rect: QRectF, key: str, label: str, small: bool = False) -> None:
        tag, group = self.tags.get(key, ("", ""))
        held = bool(self.state and self.state.buttons.get(key))
        fill = GROUP_COLORS.get(group, CONTROL) if group else QColor("#24272b")
        if held:
            fill = QColor("#eef3ff")
        p.setPen(QPen(GROUP_COLORS.get(group, ACTIVE) if held else EDGE, 3 if held else 1))
        p.setBrush(fill)
        p.drawRoundedRect(rect, 4, 4)
        font = QFont(self.font())
        font.setPointSizeF(7.0 if small else 9.0)
        font.setBold(bool(group))
        p.setFont(font)
        p.setPen(BG if held else (TEXT if group else QColor("#6b727b")))
        if tag and not small:
            p.drawText(rect.adjusted(0, 2, 0, -rect.height() / 2),
                       int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), label)
            font.setPointSizeF(6.5)
            font.setBold(False)
            p.setFont(font)
            p.drawText(rect.adjusted(0, rect.height() / 2, 0, -1),
                       int(Qt.AlignmentFlag.AlignCenter), tag)
        else:
            p.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), label)


# ----- SpaceMouse ---------------------------------------------------------------------------------
class SpaceMouseDiagram(_Diagram):
    """The SpaceMouse cap from above: live translation, lift, twist, and its buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.button_rows: list[LegendRow] = []
        self.labels: dict[str, str] = {}
        self.setMinimumHeight(210)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(420, 210)

    def show_device(self, device: MappedTeleop) -> None:
        super().show_device(device)
        self.button_rows = [r for r in self.rows if r.kind == "button"]
        self.labels = {r.controls[0]: r.control for r in self.button_rows}

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), BG)
        font = QFont(self.font())
        font.setPointSizeF(7.5)
        p.setFont(font)
        c = QPointF(100, 112)
        radius = 48.0
        p.setPen(MUTED)
        p.drawText(QRectF(c.x() - 90, 4, 180, 14), int(Qt.AlignmentFlag.AlignCenter),
                   "↑ away from you = forward")
        p.setPen(QPen(EDGE, 2))
        p.setBrush(BODY)
        p.drawEllipse(c, radius + 22, radius + 22)
        lift = self.axis("z")
        cap = QPointF(c.x() + self.axis("x") * 18, c.y() - self.axis("y") * 18)
        moving = any(abs(self.axis(a)) > 0.05 for a in ("x", "y", "z"))
        p.setBrush(ACTIVE.darker(140) if moving else CONTROL)
        p.drawEllipse(cap, radius * (1 + 0.15 * lift), radius * (1 + 0.15 * lift))
        twist = self.axis("rz")
        if abs(twist) > 0.02:  # twist: an arc from the top, anticlockwise positive
            p.setPen(QPen(ACTIVE, 4))
            p.drawArc(QRectF(cap.x() - radius * 0.7, cap.y() - radius * 0.7, radius * 1.4,
                             radius * 1.4), 90 * 16, int(twist * 150 * 16))
        tilt = QPointF(self.axis("ry") * 36, -self.axis("rx") * 36)
        if abs(tilt.x()) + abs(tilt.y()) > 1.5:  # tilt: a line from the centre
            p.setPen(QPen(QColor("#8a5cf5"), 4))
            p.drawLine(cap, cap + tilt)
        x = 200.0
        width = self.width() - x - 4
        font.setPointSizeF(8.0)
        p.setFont(font)
        y = 6.0
        for row in self.rows:
            if row.kind != "motion":
                continue
            p.setPen(TEXT)
            p.drawText(QRectF(x, y, width, 15), int(Qt.AlignmentFlag.AlignLeft),
                       f"{short_action(row)}:")
            p.setPen(MUTED)
            p.drawText(QRectF(x + 66, y, width - 66, 15), int(Qt.AlignmentFlag.AlignLeft),
                       row.control.removeprefix("Cap ").lower())
            y += 15
        y += 6
        for row in self.button_rows:
            button = row.controls[0]
            rect = QRectF(x, y, width, 18)
            p.setPen(QPen(EDGE, 1))
            p.setBrush(ACTIVE if self.pressed(button) else
                       GROUP_COLORS.get(row_group(row), CONTROL).darker(150))
            p.drawRoundedRect(rect, 4, 4)
            p.setPen(STOP_RED if row_group(row) == "stop" else TEXT)
            p.drawText(rect.adjusted(6, 0, -4, 0), int(Qt.AlignmentFlag.AlignVCenter),
                       f"{row.control}: {short_action(row)}")
            y += 21
        p.end()
