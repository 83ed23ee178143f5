"""A software gamepad that SDL (and so the real ``gamepad`` device code) sees as plugged in.

SDL 2 can attach *virtual joysticks* (``SDL_JoystickAttachVirtualEx``): they are enumerated,
hot-plugged and read exactly like USB pads. This module reaches those functions through ctypes on
the SDL library pygame itself loaded, so tests, the ``teleop`` benchmark and demos drive the real
gamepad path (hub thread -> device -> mapping -> control loop) without hardware::

    pad = VirtualGamepad("xbox")
    pad.attach()                 # "plug in"
    pad.set_axis("left_y", -1.0)   # stick fully forward
    pad.set_button("a", True)
    pad.detach()                 # "unplug"

Kinds: ``xbox`` and ``playstation`` (game controllers with those USB ids), ``standard`` (a game
controller of another brand) and ``joystick`` (a raw joystick SDL has no mapping for, with a hat).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from dataclasses import dataclass

from vla_studio.devices.base import DeviceError
from vla_studio.devices.teleop.gamepad_layouts import CONTROLLER_AXES, CONTROLLER_BUTTONS

SDL_INIT_JOYSTICK = 0x200
SDL_JOYSTICK_TYPE_UNKNOWN = 0
SDL_JOYSTICK_TYPE_GAMECONTROLLER = 1
_HAT_BITS = {"up": 1, "right": 2, "down": 4, "left": 8}


class _VirtualJoystickDesc(ctypes.Structure):
    """``SDL_VirtualJoystickDesc`` (version 1, SDL >= 2.24)."""

    _fields_ = [("version", ctypes.c_uint16), ("type", ctypes.c_uint16),
                ("naxes", ctypes.c_uint16), ("nbuttons", ctypes.c_uint16),
                ("nhats", ctypes.c_uint16), ("vendor_id", ctypes.c_uint16),
                ("product_id", ctypes.c_uint16), ("padding", ctypes.c_uint16),
                ("button_mask", ctypes.c_uint32), ("axis_mask", ctypes.c_uint32),
                ("name", ctypes.c_char_p), ("userdata", ctypes.c_void_p),
                ("Update", ctypes.c_void_p), ("SetPlayerIndex", ctypes.c_void_p),
                ("Rumble", ctypes.c_void_p), ("RumbleTriggers", ctypes.c_void_p),
                ("SetLED", ctypes.c_void_p), ("SendEffect", ctypes.c_void_p)]


@dataclass(frozen=True)
class VirtualKind:
    joystick_type: int
    vendor_id: int
    product_id: int
    name: str
    axes: int
    buttons: int
    hats: int


KINDS = {
    "xbox": VirtualKind(SDL_JOYSTICK_TYPE_GAMECONTROLLER, 0x045E, 0x02EA,
                        "Xbox Wireless Controller (virtual)", 6, 15, 0),
    "playstation": VirtualKind(SDL_JOYSTICK_TYPE_GAMECONTROLLER, 0x054C, 0x09CC,
                               "Wireless Controller (virtual)", 6, 15, 0),
    "standard": VirtualKind(SDL_JOYSTICK_TYPE_GAMECONTROLLER, 0x2DC8, 0x3106,
                            "Pro Controller (virtual)", 6, 15, 0),
    "joystick": VirtualKind(SDL_JOYSTICK_TYPE_UNKNOWN, 0x1234, 0x5678,
                            "USB Joystick (virtual)", 6, 12, 1),
}

_sdl_lock = threading.Lock()
_sdl: ctypes.CDLL | None = None


def sdl_library() -> ctypes.CDLL:
    """The SDL 2 library pygame uses in this process (the same instance, not a second copy)."""
    global _sdl
    with _sdl_lock:
        if _sdl is not None:
            return _sdl
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as exc:
            raise DeviceError("the virtual gamepad needs pygame: `pip install pygame`") from exc
        path = _loaded_sdl_path() or _bundled_sdl_path(pygame.__file__)
        if path is None:
            raise DeviceError("cannot find the SDL 2 library pygame uses")
        lib = ctypes.CDLL(path)
        lib.SDL_JoystickAttachVirtualEx.argtypes = [ctypes.POINTER(_VirtualJoystickDesc)]
        lib.SDL_JoystickAttachVirtualEx.restype = ctypes.c_int
        lib.SDL_JoystickDetachVirtual.argtypes = [ctypes.c_int]
        lib.SDL_JoystickOpen.argtypes = [ctypes.c_int]
        lib.SDL_JoystickOpen.restype = ctypes.c_void_p
        lib.SDL_JoystickClose.argtypes = [ctypes.c_void_p]
        lib.SDL_JoystickInstanceID.argtypes = [ctypes.c_void_p]
        lib.SDL_JoystickInstanceID.restype = ctypes.c_int
        lib.SDL_JoystickSetVirtualAxis.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int16]
        lib.SDL_JoystickSetVirtualButton.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
        lib.SDL_JoystickSetVirtualHat.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
        lib.SDL_InitSubSystem.argtypes = [ctypes.c_uint32]
        lib.SDL_QuitSubSystem.argtypes = [ctypes.c_uint32]
        lib.SDL_GetError.restype = ctypes.c_char_p
        lib.SDL_NumJoysticks.restype = ctypes.c_int
        lib.SDL_JoystickGetDeviceInstanceID.argtypes = [ctypes.c_int]
        lib.SDL_JoystickGetDeviceInstanceID.restype = ctypes.c_int
        _sdl = lib
        return lib


def _loaded_sdl_path() -> str | None:
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                if "libSDL2-2" in os.path.basename(path) and "_image" not in path:
                    return path
    except OSError:
        return None
    return None


def _bundled_sdl_path(pygame_file: str) -> str | None:
    libs = os.path.join(os.path.dirname(pygame_file), os.pardir, "pygame.libs")
    found = sorted(glob.glob(os.path.join(libs, "libSDL2-2*.so*")))
    return found[0] if found else None


class VirtualGamepad:
    """One virtual pad. Not thread-safe: drive it from one thread.

    Args:
        kind: one of :data:`KINDS`.
        name: the name SDL reports (default: the kind's).
    """

    def __init__(self, kind: str = "xbox", name: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown virtual gamepad kind {kind!r}; kinds: {', '.join(KINDS)}")
        self.kind = KINDS[kind]
        self.kind_name = kind
        self.name = name or self.kind.name
        self._name_bytes = self.name.encode()
        self._handle: int | None = None
        self._instance_id = -1
        self._hats = [0] * self.kind.hats

    @property
    def attached(self) -> bool:
        return self._handle is not None

    def attach(self) -> None:
        """Plug the pad in (SDL announces it to every reader)."""
        if self.attached:
            return
        sdl = sdl_library()
        if sdl.SDL_InitSubSystem(SDL_INIT_JOYSTICK) != 0:
            raise DeviceError(f"SDL joystick init failed: {sdl.SDL_GetError().decode()}")
        k = self.kind
        desc = _VirtualJoystickDesc(1, k.joystick_type, k.axes, k.buttons, k.hats, k.vendor_id,
                                    k.product_id, 0, 0, 0, self._name_bytes)
        index = sdl.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
        if index < 0:
            sdl.SDL_QuitSubSystem(SDL_INIT_JOYSTICK)
            raise DeviceError(f"cannot attach a virtual gamepad: {sdl.SDL_GetError().decode()}")
        handle = sdl.SDL_JoystickOpen(index)
        if not handle:
            sdl.SDL_JoystickDetachVirtual(index)
            sdl.SDL_QuitSubSystem(SDL_INIT_JOYSTICK)
            raise DeviceError(f"cannot open the virtual gamepad: {sdl.SDL_GetError().decode()}")
        self._handle = handle
        self._instance_id = sdl.SDL_JoystickInstanceID(handle)
        if k.joystick_type == SDL_JOYSTICK_TYPE_GAMECONTROLLER:
            for trigger in ("trigger_left", "trigger_right"):
                self.set_axis(trigger, 0.0)

    def detach(self) -> None:
        """Unplug the pad."""
        if not self.attached:
            return
        sdl = sdl_library()
        handle, self._handle = self._handle, None
        sdl.SDL_JoystickClose(handle)
        self._detach_by_instance(sdl)
        sdl.SDL_QuitSubSystem(SDL_INIT_JOYSTICK)

    def _detach_by_instance(self, sdl: ctypes.CDLL) -> None:
        # SDL detaches by *device index*, which shifts as other pads come and go: find ours.
        for i in range(sdl.SDL_NumJoysticks()):
            if sdl.SDL_JoystickGetDeviceInstanceID(i) == self._instance_id:
                sdl.SDL_JoystickDetachVirtual(i)
                return

    def set_axis(self, axis: str | int, value: float) -> None:
        """Move an axis: sticks in [-1, 1], triggers (controller kinds) in [0, 1]."""
        index = self._axis_index(axis)
        v = max(-1.0, min(1.0, float(value)))
        if isinstance(axis, str) and axis.startswith("trigger"):
            raw = int(round(-32768 + max(0.0, v) * 65535))
        else:
            raw = int(round(v * 32767)) if v >= 0 else int(round(v * 32768))
        sdl_library().SDL_JoystickSetVirtualAxis(self._need(), index, raw)

    def set_button(self, button: str | int, pressed: bool) -> None:
        sdl_library().SDL_JoystickSetVirtualButton(self._need(), self._button_index(button),
                                                   1 if pressed else 0)

    def set_hat(self, direction: str, pressed: bool, hat: int = 0) -> None:
        """Press or release one direction of a hat (``joystick`` kind)."""
        bit = _HAT_BITS[direction]
        self._hats[hat] = (self._hats[hat] | bit) if pressed else (self._hats[hat] & ~bit)
        sdl_library().SDL_JoystickSetVirtualHat(self._need(), hat, self._hats[hat])

    def center(self) -> None:
        """Every axis at rest, every button and hat released."""
        controller = self.kind.joystick_type == SDL_JOYSTICK_TYPE_GAMECONTROLLER
        for i in range(self.kind.axes):
            self.set_axis(CONTROLLER_AXES[i] if controller else i, 0.0)
        for i in range(self.kind.buttons):
            self.set_button(i, False)
        for h in range(self.kind.hats):
            self._hats[h] = 0
            sdl_library().SDL_JoystickSetVirtualHat(self._need(), h, 0)

    def _need(self) -> int:
        if self._handle is None:
            raise DeviceError("the virtual gamepad is not attached; call attach() first")
        return self._handle

    def _axis_index(self, axis: str | int) -> int:
        if isinstance(axis, int):
            return axis
        if axis in CONTROLLER_AXES:
            return CONTROLLER_AXES.index(axis)
        raise ValueError(f"unknown axis {axis!r}; axes: {', '.join(CONTROLLER_AXES)} or an index")

    def _button_index(self, button: str | int) -> int:
        if isinstance(button, int):
            return button
        if button in CONTROLLER_BUTTONS:
            return CONTROLLER_BUTTONS.index(button)
        raise ValueError(f"unknown button {button!r}; buttons: {', '.join(CONTROLLER_BUTTONS)} "
                         "or an index")
