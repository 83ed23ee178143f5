"""The keyboard as a teleop device (kind ``keyboard``), fed key by key by the GUI.

This module is Qt-free: the GUI's application-wide key bridge (``vla_studio.ui.keyboard_bridge``)
calls :meth:`KeyboardTeleop.press` / :meth:`~KeyboardTeleop.release` with key names, and
:meth:`~KeyboardTeleop.heartbeat` every display frame. The state's stamp is the last time the GUI
fed the device, so a frozen window makes the keyboard stale and the arm holds (100 ms watchdog),
even with a key held down.

Default bindings (operator frame: forward = away from the operator)::

    W / S   forward / back        Q / E   yaw left / right      G      gripper (toggle)
    A / D   left / right          I / K   pitch                 Shift  precision (hold)
    R / F   up / down             J / L   roll                  T      take over (hold)

Esc (always) and Space (while a run is active) are the window's STOP keys and cannot be bound.
"""

from __future__ import annotations

import string
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

from vla_studio.core.config import option
from vla_studio.devices.base import DeviceConfig
from vla_studio.devices.teleop.base import MappedTeleop, TeleopStatus
from vla_studio.devices.teleop.bindings import (Bindings, NameCheck, check_names,
                                                resolve_bindings)
from vla_studio.devices.teleop.mapping import MappedTeleopConfig

# Key names the GUI reports (letters and digits as themselves).
SPECIAL_KEYS = {
    "shift": "Shift", "ctrl": "Ctrl", "alt": "Alt", "tab": "Tab", "enter": "Enter",
    "backspace": "Backspace", "insert": "Insert", "delete": "Delete", "home": "Home", "end": "End",
    "pageup": "PgUp", "pagedown": "PgDn", "up": "↑", "down": "↓", "left": "←", "right": "→",
    "comma": ",", "period": ".", "slash": "/", "semicolon": ";", "apostrophe": "'",
    "bracketleft": "[", "bracketright": "]", "minus": "-", "equal": "=", "backslash": "\\",
    "grave": "`",
}
KEY_NAMES = frozenset(string.ascii_lowercase) | frozenset(string.digits) | frozenset(SPECIAL_KEYS)
RESERVED_KEYS = {"escape": "Esc always latches the e-stop",
                 "space": "Space latches the e-stop while a run is active"}

DEFAULT_MOTION = {"x": "w/s", "y": "a/d", "z": "r/f", "roll": "l/j", "pitch": "k/i", "yaw": "q/e"}
DEFAULT_BUTTONS = {"gripper": "g", "precision": "shift", "intervention": "t"}


@dataclass(frozen=True)
class KeyboardConfig(MappedTeleopConfig):
    """A ``[[teleops]]`` table of ``type = "keyboard"``."""

    linear_speed: float = option(0.1, min=0.0, max=2.0, help="end-effector speed, m/s")
    angular_speed: float = option(0.6, min=0.0, max=6.0, help="end-effector turn rate, rad/s")
    ramp_s: float = option(0.25, min=0.0, max=2.0,
                           help="seconds from rest to full speed (keys are all-or-nothing)")

    def __post_init__(self) -> None:
        bindings = keyboard_bindings(self)
        for key in bindings.used_buttons():
            if key in RESERVED_KEYS:
                raise ValueError(f"key {key!r} cannot be bound: {RESERVED_KEYS[key]}")
        keys = NameCheck(KEY_NAMES)
        hint = "a-z, 0-9, " + ", ".join(sorted(SPECIAL_KEYS))
        check_names(bindings, NameCheck(), keys, "(the keyboard has no axes)", hint)
        if self.calibration:
            raise ValueError("calibration: the keyboard has no axes to calibrate")


def keyboard_bindings(config: MappedTeleopConfig) -> Bindings:
    return resolve_bindings(DEFAULT_MOTION, DEFAULT_BUTTONS, config.motion, config.buttons)


def key_label(name: str) -> str:
    """How a key is printed on the keyboard ("W", "Shift", "↑")."""
    return SPECIAL_KEYS.get(name, name.upper())


class KeyboardTeleop(MappedTeleop):
    """Keys held in the VLA Studio window drive the robot (the GUI feeds this device)."""

    config_class: ClassVar[type[DeviceConfig]] = KeyboardConfig
    config: KeyboardConfig
    device_label: ClassVar[str] = "keyboard"

    def __init__(self, config: KeyboardConfig | None = None) -> None:
        config = config or KeyboardConfig(name="keyboard")
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._connected = False
        super().__init__(config)
        self._bound = frozenset(self.bindings().used_buttons())

    # ----- Teleop -------------------------------------------------------------------------------
    @property
    def axis_names(self) -> tuple[str, ...]:
        return ()

    @property
    def button_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._bound))

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Start accepting keys (no hardware to open: the GUI feeds the keys)."""
        with self._lock:
            if self._connected:
                return
            self._connected = True
            self._held.clear()
            self._begin_connection()
            self._publish_locked()  # all keys up: the baseline the first press is an edge against
        self._start_dispatch()

    def disconnect(self) -> None:
        with self._lock:
            if not self._connected:
                return
            self._connected = False
            self._held.clear()
            self._publish_disconnected()
        self._stop_dispatch()

    def bindings(self) -> Bindings:
        return keyboard_bindings(self.config)

    def control_label(self, name: str) -> str:
        return key_label(name)

    def status(self) -> TeleopStatus:
        if not self._connected:
            return TeleopStatus(False, "keyboard (not connected)")
        rate = self.reads_per_s()
        held = ", ".join(key_label(k) for k in sorted(self._held)) or "none"
        if rate == 0.0:
            return TeleopStatus(True, "keyboard", "No key events: the keyboard drives the robot "
                                "only from the VLA Studio window.", 0.0, {"keys held": held})
        return TeleopStatus(True, "keyboard (VLA Studio window)", "", rate, {"keys held": held})

    # ----- fed by the GUI thread ----------------------------------------------------------------
    def binds(self, key: str) -> bool:
        """Whether ``key`` is bound to a motion channel or a function."""
        return key in self._bound

    def press(self, key: str) -> None:
        """Key ``key`` went down (auto-repeats are the caller's to filter out)."""
        with self._lock:
            if not self._connected or key not in KEY_NAMES:
                return
            self._held.add(key)
            self._publish_locked()

    def release(self, key: str) -> None:
        with self._lock:
            if not self._connected:
                return
            self._held.discard(key)
            self._publish_locked()

    def release_all(self) -> None:
        """Every key up: the window lost focus, so releases would never arrive."""
        with self._lock:
            if not self._connected:
                return
            self._held.clear()
            self._publish_locked()

    def heartbeat(self) -> None:
        """The GUI is alive: refresh the stamp with the keys still held."""
        with self._lock:
            if self._connected:
                self._publish_locked()

    def held_keys(self) -> frozenset[str]:
        return frozenset(self._held)

    def _publish_locked(self) -> None:
        buttons = {k: k in self._held for k in self._bound | self._held}
        self._publish(time.monotonic(), {}, buttons)
