"""Gamepad layouts: control names, the labels printed on each pad family, raw index tables.

Pads SDL recognises as game controllers (nearly every Xbox, PlayStation and mainstream pad) are
read through SDL's GameController API, whose controls have the same names on every pad
(``left_x``, ``a``, ``left_shoulder`` ...); only the printed labels differ per family (A / Cross).
A pad SDL does not know is a raw joystick: the ``xbox`` and ``playstation`` layouts then read it
with the Linux drivers' index order (xpad, hid-playstation), and the ``generic`` layout names its
controls by index (``axis0``, ``button3``, ``hat0_up``) so a profile can bind anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from vla_studio.devices.teleop.bindings import NameCheck

# SDL GameController order (SDL_CONTROLLER_AXIS_* / SDL_CONTROLLER_BUTTON_*).
CONTROLLER_AXES = ("left_x", "left_y", "right_x", "right_y", "trigger_left", "trigger_right")
CONTROLLER_BUTTONS = ("a", "b", "x", "y", "back", "guide", "start", "left_stick", "right_stick",
                      "left_shoulder", "right_shoulder", "dpad_up", "dpad_down", "dpad_left",
                      "dpad_right")
TRIGGERS = ("trigger_left", "trigger_right")  # also reported as buttons, pressed past half-way
HAT_DIRECTIONS = ("up", "down", "left", "right")

_STICK_LABELS = {
    "left_x": "Left stick ↔", "left_y": "Left stick ↕", "right_x": "Right stick ↔",
    "right_y": "Right stick ↕", "dpad_up": "D-pad ↑", "dpad_down": "D-pad ↓",
    "dpad_left": "D-pad ←", "dpad_right": "D-pad →",
}
XBOX_LABELS = {**_STICK_LABELS,
               "a": "A", "b": "B", "x": "X", "y": "Y", "back": "View", "guide": "Xbox",
               "start": "Menu", "left_stick": "LS (click)", "right_stick": "RS (click)",
               "left_shoulder": "LB", "right_shoulder": "RB", "trigger_left": "LT",
               "trigger_right": "RT"}
PLAYSTATION_LABELS = {**_STICK_LABELS,
                      "a": "Cross", "b": "Circle", "x": "Square", "y": "Triangle",
                      "back": "Share", "guide": "PS", "start": "Options", "left_stick": "L3",
                      "right_stick": "R3", "left_shoulder": "L1", "right_shoulder": "R1",
                      "trigger_left": "L2", "trigger_right": "R2"}
STANDARD_LABELS = {**XBOX_LABELS, "a": "A (south)", "b": "B (east)", "x": "X (west)",
                   "y": "Y (north)", "back": "Back", "guide": "Home", "start": "Start"}

# Names a profile may use instead of the canonical control names.
ALIASES = {
    "lb": "left_shoulder", "rb": "right_shoulder", "lt": "trigger_left", "rt": "trigger_right",
    "ls": "left_stick", "rs": "right_stick", "view": "back", "menu": "start",
    "cross": "a", "circle": "b", "square": "x", "triangle": "y", "l1": "left_shoulder",
    "r1": "right_shoulder", "l2": "trigger_left", "r2": "trigger_right", "l3": "left_stick",
    "r3": "right_stick", "share": "back", "create": "back", "options": "start", "ps": "guide",
}

CONTROLLER_MOTION = {"x": "-left_y", "y": "-left_x", "z": "-right_y", "yaw": "-right_x",
                     "pitch": "dpad_up/dpad_down", "roll": "dpad_right/dpad_left"}
CONTROLLER_FUNCTIONS = {"gripper": "a", "stop": "b", "failure": "x", "success": "y",
                        "record": "start", "next_task": "back", "deadman": "left_shoulder",
                        "intervention": "right_shoulder", "precision": "trigger_left",
                        "rotation_toggle": "right_stick"}
GENERIC_MOTION = {"x": "-axis1", "y": "-axis0", "z": "-axis3", "yaw": "-axis2",
                  "pitch": "hat0_up/hat0_down", "roll": "hat0_right/hat0_left"}
GENERIC_FUNCTIONS = {"gripper": "button0", "stop": "button1", "failure": "button2",
                     "success": "button3", "deadman": "button4", "intervention": "button5",
                     "next_task": "button6", "record": "button7"}


@dataclass(frozen=True)
class PadLayout:
    """How to name, label and (for raw joysticks) index one family of pads.

    Attributes:
        name: "xbox", "playstation", "standard" (a controller SDL knows, another brand) or
            "generic" (raw joystick, controls named by index).
        labels: control name -> printed label.
        raw_axes: for raw joysticks: control -> (axis index, is_trigger).
        raw_buttons: for raw joysticks: control -> button index.
        raw_dpad_hat: for raw joysticks: the hat that is the d-pad, or None.
    """

    name: str
    labels: Mapping[str, str]
    raw_axes: Mapping[str, tuple[int, bool]] = field(default_factory=dict)
    raw_buttons: Mapping[str, int] = field(default_factory=dict)
    raw_dpad_hat: int | None = None

    @property
    def is_generic(self) -> bool:
        return self.name == "generic"

    def label(self, name: str) -> str:
        if name in self.labels:
            return self.labels[name]
        if self.is_generic:
            if name.startswith("hat"):
                hat, _, direction = name.partition("_")
                arrows = {"up": "↑", "down": "↓", "left": "←", "right": "→"}
                arrow = arrows.get(direction, direction)
                return f"Hat {hat[3:]} {arrow}"
            for prefix, word in (("axis", "Axis"), ("button", "Button")):
                if name.startswith(prefix):
                    return f"{word} {name[len(prefix):]}"
        return name


# Linux xpad (Xbox 360/One) evdev order, as SDL's joystick API presents it without a mapping.
XBOX = PadLayout("xbox", XBOX_LABELS,
                 raw_axes={"left_x": (0, False), "left_y": (1, False), "trigger_left": (2, True),
                           "right_x": (3, False), "right_y": (4, False),
                           "trigger_right": (5, True)},
                 raw_buttons={"a": 0, "b": 1, "x": 2, "y": 3, "left_shoulder": 4,
                              "right_shoulder": 5, "back": 6, "start": 7, "guide": 8,
                              "left_stick": 9, "right_stick": 10},
                 raw_dpad_hat=0)
# Linux hid-playstation (DualShock 4, DualSense) evdev order.
PLAYSTATION = PadLayout("playstation", PLAYSTATION_LABELS,
                        raw_axes={"left_x": (0, False), "left_y": (1, False),
                                  "trigger_left": (2, True), "right_x": (3, False),
                                  "right_y": (4, False), "trigger_right": (5, True)},
                        raw_buttons={"a": 0, "b": 1, "y": 2, "x": 3, "left_shoulder": 4,
                                     "right_shoulder": 5, "back": 8, "start": 9, "guide": 10,
                                     "left_stick": 11, "right_stick": 12},
                        raw_dpad_hat=0)
STANDARD = PadLayout("standard", STANDARD_LABELS)
GENERIC = PadLayout("generic", {})
LAYOUTS = {"xbox": XBOX, "playstation": PLAYSTATION, "standard": STANDARD, "generic": GENERIC}

# USB vendor ids -> pad family, for layout = "auto".
VENDOR_FAMILIES = {0x045E: "xbox", 0x054C: "playstation"}

CONTROLLER_NAMES = NameCheck(CONTROLLER_AXES + CONTROLLER_BUTTONS)
CONTROLLER_AXIS_NAMES = NameCheck(CONTROLLER_AXES)
CONTROLLER_BUTTON_NAMES = NameCheck(CONTROLLER_BUTTONS + TRIGGERS)
GENERIC_AXIS_NAMES = NameCheck(pattern=r"axis\d{1,2}")
GENERIC_BUTTON_NAMES = NameCheck(pattern=r"button\d{1,3}|hat\d_(up|down|left|right)")


def canonical(name: str) -> str:
    """The canonical control name of an alias ("lb" -> "left_shoulder")."""
    return ALIASES.get(name, name)


def family_of(vendor_id: int | None, is_controller: bool) -> str:
    """The layout ``auto`` picks for a pad."""
    if not is_controller:
        return "generic"
    return VENDOR_FAMILIES.get(vendor_id or 0, "standard")


def ids_from_guid(guid: str) -> tuple[int | None, int | None]:
    """USB vendor and product ids inside an SDL 2 joystick GUID (None when it holds none).

    Layout (little-endian 16-bit words): bus, crc, vendor, 0, product, 0, version, driver.
    """
    if len(guid) != 32:
        return None, None
    try:
        raw = bytes.fromhex(guid)
    except ValueError:
        return None, None
    if raw[6:8] != b"\0\0" or raw[10:12] != b"\0\0":
        return None, None  # an old-style GUID carrying the device name instead
    return int.from_bytes(raw[4:6], "little"), int.from_bytes(raw[8:10], "little")
