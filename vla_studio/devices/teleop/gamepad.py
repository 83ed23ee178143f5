"""Gamepads (kind ``gamepad``) through pygame/SDL, with hot-plug.

The pads are read by the process-wide SDL hub thread (:mod:`.sdl_joysticks`); each gamepad device
claims one pad (``index``-th attached, optionally filtered by name) and publishes its state on
every hub cycle (at least every 10 ms), so a pad that is unplugged stops advancing the stamp and the
arm holds. Plugging a pad back in resumes once its sticks have been seen at rest.

Default bindings (Xbox labels; PlayStation in brackets)::

    Left stick    forward/back, left/right        A (Cross)       gripper (toggle)
    Right stick   up/down, yaw                    B (Circle)      STOP: latch the e-stop
    D-pad ↑↓      pitch                           Y (Triangle)    mark success
    D-pad ←→      roll                            X (Square)      mark failure
    LB (L1)       deadman, if required            Menu (Options)  start / stop recording
    RB (R1)       take over from a policy (hold)  View (Share)    next task
    LT (L2)       precision: slow motion (hold)   RS click (R3)   rotation on / off

Profile example::

    [[teleops]]
    type = "gamepad"
    layout = "auto"          # auto | xbox | playstation | generic
    linear_speed = 0.15      # m/s at full deflection
    [teleops.buttons]
    gripper = "rb"           # aliases such as lb, rt, cross, l1 are accepted
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import ClassVar, Literal

from vla_studio.core.config import option
from vla_studio.devices.base import DetectedDevice, DeviceConfig, DeviceError
from vla_studio.devices.teleop.base import MappedTeleop, TeleopStatus
from vla_studio.devices.teleop.bindings import (Bindings, ChannelBinding, check_calibration,
                                                check_names, resolve_bindings)
from vla_studio.devices.teleop.gamepad_layouts import (
    CONTROLLER_AXES, CONTROLLER_AXIS_NAMES, CONTROLLER_BUTTON_NAMES, CONTROLLER_BUTTONS,
    CONTROLLER_FUNCTIONS, CONTROLLER_MOTION, GENERIC, GENERIC_AXIS_NAMES, GENERIC_BUTTON_NAMES,
    GENERIC_FUNCTIONS, GENERIC_MOTION, HAT_DIRECTIONS, LAYOUTS, TRIGGERS, XBOX, PadLayout,
    canonical, family_of)
from vla_studio.devices.teleop.mapping import MappedTeleopConfig
from vla_studio.devices.teleop.sdl_joysticks import PadReading, SdlJoystickHub

log = logging.getLogger(__name__)
TRIGGER_ON, TRIGGER_OFF = 0.55, 0.45  # a trigger "button" presses past 55 % and releases below 45 %


@dataclass(frozen=True)
class GamepadConfig(MappedTeleopConfig):
    """A ``[[teleops]]`` table of ``type = "gamepad"``."""

    layout: Literal["auto", "xbox", "playstation", "generic"] = option(
        "auto", help="auto: from the pad's USB ids; generic: controls named axis0, button3, "
                     "hat0_up (pads SDL does not know)")
    index: int = option(0, min=0, max=15, help="which pad: 0 = the first one plugged in")
    name_contains: str = option("", help="only pads whose name contains this text")
    deadzone: float = option(0.12, min=0.0, max=0.95, help="stick readings below this are zero")
    expo: float = option(1.5, min=1.0, max=5.0,
                         help="response curve: 1 = linear, 2 = finer control near the centre")

    def __post_init__(self) -> None:
        generic = self.layout == "generic"
        bindings = gamepad_bindings(self, generic)
        if generic:
            check_names(bindings, GENERIC_AXIS_NAMES, GENERIC_BUTTON_NAMES,
                        "axis0, axis1, ...", "button0, button1, ..., hat0_up/down/left/right")
            check_calibration(self.calibration, GENERIC_AXIS_NAMES, "axis0, axis1, ...")
        else:
            buttons_hint = ", ".join(CONTROLLER_BUTTONS + TRIGGERS) + " (or lb, rb, lt, rt, " \
                "cross, circle, square, triangle, l1, r1, ...)"
            check_names(bindings, CONTROLLER_AXIS_NAMES, CONTROLLER_BUTTON_NAMES,
                        ", ".join(CONTROLLER_AXES), buttons_hint)
            cal = {canonical(k): v for k, v in self.calibration.items()}
            check_calibration(cal, CONTROLLER_AXIS_NAMES, ", ".join(CONTROLLER_AXES))


def _canonical_motion(text: str) -> str:
    b = ChannelBinding.parse(text)
    return ChannelBinding(canonical(b.axis) if b.axis else "", b.sign, canonical(b.plus),
                          canonical(b.minus)).text()


def gamepad_bindings(config: MappedTeleopConfig, generic: bool, overrides: bool = True) -> Bindings:
    """Defaults of the controller or generic naming, with the profile's overrides (aliases
    resolved) unless ``overrides`` is False."""
    motion = {k: _canonical_motion(v) for k, v in config.motion.items()} if overrides else {}
    buttons = ({k: canonical(v.strip().lower()) for k, v in config.buttons.items()}
               if overrides else {})
    if generic:
        return resolve_bindings(GENERIC_MOTION, GENERIC_FUNCTIONS, motion, buttons)
    return resolve_bindings(CONTROLLER_MOTION, CONTROLLER_FUNCTIONS, motion, buttons)


class GamepadTeleop(MappedTeleop):
    """An Xbox, PlayStation or other gamepad, read through SDL (pygame)."""

    config_class: ClassVar[type[DeviceConfig]] = GamepadConfig
    config: GamepadConfig
    device_label: ClassVar[str] = "gamepad"
    deadman_default_on_real_robots: ClassVar[bool] = True

    def __init__(self, config: GamepadConfig | None = None) -> None:
        config = config or GamepadConfig(name="gamepad")
        self._layout: PadLayout = GENERIC if config.layout == "generic" else \
            LAYOUTS.get(config.layout, XBOX)
        self._lock = threading.Lock()
        self._hub: SdlJoystickHub | None = None
        self._unsubscribe = None
        self._pad: PadReading | None = None
        self._attached_count = 0
        self._trigger_down = {t: False for t in TRIGGERS}
        self._connects = 0
        self._unplugs = 0
        super().__init__(config)

    # ----- Teleop -------------------------------------------------------------------------------
    @property
    def axis_names(self) -> tuple[str, ...]:
        if self._layout.is_generic:
            return tuple(sorted(self.mapping.bindings.used_axes()))
        return CONTROLLER_AXES

    @property
    def button_names(self) -> tuple[str, ...]:
        if self._layout.is_generic:
            return tuple(sorted(self.mapping.bindings.used_buttons()))
        return CONTROLLER_BUTTONS + TRIGGERS

    @property
    def is_connected(self) -> bool:
        return self._hub is not None

    @property
    def layout(self) -> PadLayout:
        return self._layout

    def connect(self) -> None:
        """Start reading pads (a missing pad is not an error: it is picked up when plugged in).

        Raises:
            DeviceError: SDL cannot start (pygame missing, no input subsystem).
        """
        if self._hub is not None:
            return
        hub = SdlJoystickHub.acquire()
        if hub.error:
            error = hub.error
            hub.release()
            raise DeviceError(f"gamepad '{self.name}': {error}")
        with self._lock:
            self._hub = hub
            self._unsubscribe = hub.subscribe(self._on_readings)
        self._start_dispatch()

    def disconnect(self) -> None:
        with self._lock:
            hub, self._hub = self._hub, None
            if hub is None:
                return
            if self._unsubscribe is not None:
                self._unsubscribe()
            self._pad = None
            self._publish_disconnected()
        hub.release()
        self._stop_dispatch()

    def bindings(self) -> Bindings:
        generic = self._layout.is_generic
        auto_fallback = generic and self.config.layout == "auto"
        return gamepad_bindings(self.config, generic, overrides=not auto_fallback)

    def control_label(self, name: str) -> str:
        return self._layout.label(name)

    def status(self) -> TeleopStatus:
        hub = self._hub
        if hub is None:
            return TeleopStatus(False, "gamepad (not connected)")
        pad = self._pad
        rate = self.reads_per_s()
        if pad is None:
            wanted = f" whose name contains '{self.config.name_contains}'" \
                if self.config.name_contains else ""
            seen = len(hub.readings)
            extra = (f" {seen} pad(s) attached, but not pad #{self.config.index}{wanted}."
                     if seen else "")
            return TeleopStatus(False, "no gamepad", f"Plug in a gamepad.{extra} The arm holds "
                                "until one is connected.", rate,
                                {"pads attached": str(seen), "unplugged": str(self._unplugs)})
        kind = "SDL game controller" if pad.is_controller else \
            ("raw joystick, generic names" if self._layout.is_generic
             else f"raw joystick, {self._layout.name} index table")
        ids = f"{pad.vendor_id:04x}:{pad.product_id:04x}" if pad.vendor_id is not None else "unknown"
        return TeleopStatus(True, f"{pad.name} ({self._layout.name} layout)", "", rate,
                            {"SDL name": pad.name, "USB id": ids, "mapping": kind,
                             "GUID": pad.guid, "plugged in": f"{self._connects} time(s)",
                             "unplugged": f"{self._unplugs} time(s)"})

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        hub = SdlJoystickHub.acquire()
        try:
            if hub.error or not hub.wait_cycles(2):
                return []
            found = []
            for i, r in enumerate(hub.readings):
                ids = f"{r.vendor_id:04x}:{r.product_id:04x}" if r.vendor_id is not None else "?"
                layout = family_of(r.vendor_id, r.is_controller)
                found.append(DetectedDevice("gamepad", str(i), r.name,
                                            {"usb_id": ids, "layout": layout}))
            return found
        finally:
            hub.release()

    # ----- hub thread ---------------------------------------------------------------------------
    def _on_readings(self, readings: list[PadReading], t: float) -> None:
        with self._lock:
            if self._hub is None:
                return
            pad = self._select(readings)
            previous = self._pad
            if pad is None:
                if previous is not None:
                    self._pad = None
                    self._unplugs += 1
                    self._publish_disconnected()
                    self._emit("teleop.disconnected", f"Gamepad '{self.name}' ({previous.name}) "
                               "was unplugged: the arm holds. Plug it back in to continue.",
                               logging.WARNING)
                return
            if previous is None or previous.instance_id != pad.instance_id:
                self._use_pad(pad)
            self._pad = pad
            axes, buttons = self._convert(pad)
            self._publish(pad.t, axes, buttons)

    def _select(self, readings: list[PadReading]) -> PadReading | None:
        text = self.config.name_contains.lower()
        matching = [r for r in readings if text in r.name.lower()]
        return matching[self.config.index] if len(matching) > self.config.index else None

    def _use_pad(self, pad: PadReading) -> None:
        layout = self._layout_for(pad)
        if layout is not self._layout:
            was_generic = self._layout.is_generic
            self._layout = layout
            if layout.is_generic != was_generic:
                self._set_bindings(self.bindings())
                if layout.is_generic and self.config.layout == "auto" and \
                        (self.config.motion or self.config.buttons):
                    log.warning("gamepad '%s': %s is a raw joystick SDL has no mapping for; the "
                                "profile's bindings name controller controls, so generic defaults "
                                "apply. Set layout = \"generic\" and bind axisN/buttonN.",
                                self.name, pad.name)
        self._trigger_down = {t: False for t in TRIGGERS}
        self._begin_connection()
        self._connects += 1
        self._emit("teleop.connected", f"Gamepad '{self.name}': {pad.name} connected "
                   f"({layout.name} layout).")

    def _layout_for(self, pad: PadReading) -> PadLayout:
        chosen = self.config.layout
        if chosen == "generic":
            return GENERIC
        if chosen == "auto":
            return LAYOUTS[family_of(pad.vendor_id, pad.is_controller)]
        return LAYOUTS[chosen]

    def _convert(self, pad: PadReading) -> tuple[dict[str, float], dict[str, bool]]:
        layout = self._layout
        if layout.is_generic:
            axes = {f"axis{i}": v for i, v in enumerate(pad.axes)}
            buttons = {f"button{i}": b for i, b in enumerate(pad.buttons)}
            for h, hat in enumerate(pad.hats):
                buttons.update(_hat_buttons(f"hat{h}_", hat))
            return axes, buttons
        if pad.is_controller:
            axes = dict(zip(CONTROLLER_AXES, pad.axes))
            buttons = dict(zip(CONTROLLER_BUTTONS, pad.buttons))
        else:  # a raw joystick read with the family's Linux driver index table
            axes, buttons = {}, {}
            for name, (index, trigger) in layout.raw_axes.items():
                if index < len(pad.axes):
                    v = pad.axes[index]
                    axes[name] = max(0.0, min(1.0, (v + 1.0) / 2.0)) if trigger else v
            for name, index in layout.raw_buttons.items():
                buttons[name] = index < len(pad.buttons) and pad.buttons[index]
            hat = layout.raw_dpad_hat
            if hat is not None and hat < len(pad.hats):
                buttons.update(_hat_buttons("dpad_", pad.hats[hat]))
        for trigger in TRIGGERS:
            value = axes.get(trigger, 0.0)
            down = self._trigger_down[trigger]
            self._trigger_down[trigger] = value > TRIGGER_ON or (down and value > TRIGGER_OFF)
            buttons[trigger] = self._trigger_down[trigger]
        return axes, buttons


def _hat_buttons(prefix: str, hat: tuple[int, int]) -> dict[str, bool]:
    x, y = hat
    values = {"up": y > 0, "down": y < 0, "left": x < 0, "right": x > 0}
    return {prefix + d: values[d] for d in HAT_DIRECTIONS}
