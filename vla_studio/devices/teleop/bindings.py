"""What each control of a teleop device does: motion channels, button functions, calibration.

Every teleop device (gamepad, SpaceMouse, keyboard) reports raw controls by name: axes in
[-1, 1] (triggers [0, 1]) and buttons. Bindings say which control drives which motion channel and
which button triggers which function; they are plain strings so a station profile can override
them::

    [teleops.motion]                # channel = "axis", "-axis" or "plus_button/minus_button"
    x = "-left_y"
    roll = "dpad_right/dpad_left"

    [teleops.buttons]               # function = "button" ("" unbinds it)
    gripper = "a"
    stop = "b"

    [teleops.calibration.left_x]    # per raw axis
    center = 0.03
    deadzone = 0.15

Motion channels are expressed in the *operator frame*: x forward (away from the operator), y left,
z up, and roll/pitch/yaw about those axes. ``frame_yaw_deg`` in the profile turns the operator
frame into the robot base frame (0 when the operator looks along the robot's +x axis).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from vla_studio.core import commands
from vla_studio.core.config import option

CHANNELS = ("x", "y", "z", "roll", "pitch", "yaw")
CHANNEL_TITLES = {
    "x": "Forward / back", "y": "Left / right", "z": "Up / down",
    "roll": "Roll", "pitch": "Pitch", "yaw": "Yaw",
}

# Button functions. Held functions act while their button is down; the others act on the press.
GRIPPER = "gripper"
DEADMAN = "deadman"
INTERVENTION = "intervention"
PRECISION = "precision"
ROTATION_TOGGLE = "rotation_toggle"
STOP = "stop"
RECORD = "record"
SUCCESS = "success"
FAILURE = "failure"
NEXT_TASK = "next_task"
FUNCTIONS = (GRIPPER, DEADMAN, INTERVENTION, PRECISION, ROTATION_TOGGLE, STOP, RECORD, SUCCESS,
             FAILURE, NEXT_TASK)
FUNCTION_TITLES = {
    GRIPPER: "Gripper",
    DEADMAN: "Deadman (hold to move)",
    INTERVENTION: "Take over from policy (hold)",
    PRECISION: "Precision: slow motion (hold)",
    ROTATION_TOGGLE: "Rotation on / off",
    STOP: "STOP (latch e-stop)",
    RECORD: "Start / stop recording",
    SUCCESS: "Mark episode success",
    FAILURE: "Mark episode failure",
    NEXT_TASK: "Next task",
}
FUNCTION_SHORT = {
    GRIPPER: "Gripper", DEADMAN: "Deadman", INTERVENTION: "Take over", PRECISION: "Precision",
    ROTATION_TOGGLE: "Rotation on/off", STOP: "STOP", RECORD: "Record", SUCCESS: "Success",
    FAILURE: "Failure", NEXT_TASK: "Next task",
}
# Functions that become station commands (run off the reader thread by the command dispatcher).
FUNCTION_COMMANDS = {
    RECORD: commands.RECORD_TOGGLE,
    SUCCESS: commands.EPISODE_SUCCESS,
    FAILURE: commands.EPISODE_FAILURE,
    NEXT_TASK: commands.TASK_NEXT,
}

_AXIS_RE = re.compile(r"^([+-]?)([a-z][a-z0-9_]*)$")


@dataclass(frozen=True)
class AxisCalibration:
    """Calibration of one raw axis, from the profile's ``[teleops.calibration.<axis>]`` table."""

    center: float = option(0.0, min=-1.0, max=1.0,
                           help="reading at rest (stick drift), subtracted before the deadzone")
    deadzone: float | None = option(None, min=0.0, max=0.95,
                                    help="ignore readings closer than this to the centre; "
                                         "default: the device's deadzone")
    scale: float = option(1.0, min=0.0, max=10.0, help="sensitivity multiplier of this axis")
    invert: bool = option(False, help="reverse the direction of this axis")
    expo: float | None = option(None, min=1.0, max=5.0,
                                help="response curve (1 = linear, 2 = finer near the centre); "
                                     "default: the device's expo")


@dataclass(frozen=True)
class ChannelBinding:
    """What drives one motion channel: an axis (with a sign) or a pair of buttons.

    Attributes:
        axis: raw axis name, or "" when driven by buttons.
        sign: +1 or -1 for an axis.
        plus: button that drives the channel positive.
        minus: button that drives the channel negative.
    """

    axis: str = ""
    sign: float = 1.0
    plus: str = ""
    minus: str = ""

    @classmethod
    def parse(cls, text: str) -> "ChannelBinding":
        """Parse ``"axis"``, ``"-axis"``, ``"plus/minus"`` (either side may be empty) or ``""``.

        Raises:
            ValueError: the text is none of those forms.
        """
        text = text.strip().lower()
        if not text:
            return cls()
        if "/" in text and text != "/":
            plus, _, minus = text.partition("/")
            if "/" in minus:
                raise ValueError(f"{text!r}: use one '/' between the + and - buttons")
            return cls(plus=plus.strip(), minus=minus.strip())
        match = _AXIS_RE.match(text)
        if not match:
            raise ValueError(f"{text!r} is not an axis (\"left_y\", \"-left_y\") or a button pair "
                             "(\"w/s\")")
        return cls(axis=match.group(2), sign=-1.0 if match.group(1) == "-" else 1.0)

    @property
    def is_bound(self) -> bool:
        return bool(self.axis or self.plus or self.minus)

    @property
    def buttons(self) -> tuple[str, ...]:
        return tuple(b for b in (self.plus, self.minus) if b)

    def text(self) -> str:
        """The profile spelling of this binding."""
        if self.axis:
            return ("-" if self.sign < 0 else "") + self.axis
        if self.plus or self.minus:
            return f"{self.plus}/{self.minus}"
        return ""


@dataclass(frozen=True)
class Bindings:
    """The resolved bindings of one device: defaults with the profile's overrides applied.

    Attributes:
        motion: channel -> binding (every channel present; unbound ones are empty).
        functions: function -> button name (only bound functions).
    """

    motion: Mapping[str, ChannelBinding]
    functions: Mapping[str, str]

    def functions_of(self, button: str) -> tuple[str, ...]:
        """Functions bound to ``button`` (STOP first, so it is handled before anything else)."""
        found = [f for f, b in self.functions.items() if b == button]
        found.sort(key=lambda f: f != STOP)
        return tuple(found)

    def used_axes(self) -> set[str]:
        return {b.axis for b in self.motion.values() if b.axis}

    def used_buttons(self) -> set[str]:
        names = {n for b in self.motion.values() for n in b.buttons}
        return names | set(self.functions.values())


def resolve_bindings(default_motion: Mapping[str, str], default_functions: Mapping[str, str],
                     motion_overrides: Mapping[str, str],
                     function_overrides: Mapping[str, str]) -> Bindings:
    """Apply the profile's overrides to a device's defaults.

    Raises:
        ValueError: an unknown channel or function, or a malformed binding; the message names it
            and lists what is allowed.
    """
    for channel in motion_overrides:
        if channel not in CHANNELS:
            raise ValueError(f"motion channel {channel!r} does not exist; channels: "
                             f"{', '.join(CHANNELS)}")
    for function in function_overrides:
        if function not in FUNCTIONS:
            raise ValueError(f"button function {function!r} does not exist; functions: "
                             f"{', '.join(FUNCTIONS)}")
    motion = {}
    for channel in CHANNELS:
        text = motion_overrides.get(channel, default_motion.get(channel, ""))
        try:
            motion[channel] = ChannelBinding.parse(text)
        except ValueError as exc:
            raise ValueError(f"motion.{channel}: {exc}") from None
    functions = {}
    for function in FUNCTIONS:
        button = function_overrides.get(function, default_functions.get(function, "")).strip().lower()
        if button:
            functions[function] = button
    return Bindings(motion, functions)


def check_names(bindings: Bindings, is_axis: "NameCheck", is_button: "NameCheck",
                axis_hint: str, button_hint: str) -> None:
    """Raise ValueError when a binding names a control the device does not have.

    Args:
        bindings: resolved bindings.
        is_axis / is_button: predicates for valid raw names.
        axis_hint / button_hint: the allowed names, in words, for the message.
    """
    for channel, b in bindings.motion.items():
        if b.axis and not is_axis(b.axis):
            raise ValueError(f"motion.{channel} = {b.text()!r}: no axis named {b.axis!r}; "
                             f"axes: {axis_hint}")
        for name in b.buttons:
            if not is_button(name):
                raise ValueError(f"motion.{channel} = {b.text()!r}: no button named {name!r}; "
                                 f"buttons: {button_hint}")
    for function, name in bindings.functions.items():
        if not is_button(name):
            raise ValueError(f"buttons.{function} = {name!r}: no button named {name!r}; "
                             f"buttons: {button_hint}")


def check_calibration(calibration: Mapping[str, AxisCalibration], is_axis: "NameCheck",
                      axis_hint: str) -> None:
    """Raise ValueError when calibration names an axis the device does not have."""
    for name in calibration:
        if not is_axis(name):
            raise ValueError(f"calibration.{name}: no axis named {name!r}; axes: {axis_hint}")


class NameCheck:
    """A predicate over control names: a fixed set, or a regular expression for numbered names
    (``axis0``, ``button12``)."""

    def __init__(self, names: Iterable[str] = (), pattern: str | None = None) -> None:
        self.names = frozenset(names)
        self._re = re.compile(pattern) if pattern else None

    def __call__(self, name: str) -> bool:
        return name in self.names or bool(self._re and self._re.fullmatch(name))
