"""What gamepads, SpaceMice and keyboards share: latest raw state, button functions, legend.

```
 reader thread (the device's own)            any thread                      loop thread
 read device -> _publish(axes, buttons) --> InputState (immutable, latest) --> TeleopActionSource
                  | press edges                                                 .propose()
                  +-- STOP  -> ctx.latch.trigger()   (right here: no Qt, no loop involved)
                  +-- record/success/... -> CommandDispatcher thread -> ctx.on_command(name)
```
A device only knows its raw controls (names, values); :class:`TeleopMapping` turns them into
motion and :class:`~vla_studio.devices.teleop.source.TeleopActionSource` into actions.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

from vla_studio.core.arbiter import ActionSource
from vla_studio.devices.base import DeviceConfig, Teleop, TeleopContext, TeleopState
from vla_studio.devices.teleop.bindings import (CHANNEL_TITLES, CHANNELS, DEADMAN, FUNCTION_COMMANDS,
                                                FUNCTION_TITLES, FUNCTIONS, GRIPPER, STOP, Bindings)
from vla_studio.devices.teleop.command_dispatch import CommandDispatcher
from vla_studio.devices.teleop.mapping import MappedTeleopConfig, TeleopMapping, Tuning

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputState(TeleopState):
    """A teleop device's raw state plus what the mapping needs to never miss a short press.

    Attributes:
        presses: button -> number of presses since the device object was made. A tap shorter
            than a control period still counts once, whatever the control rate.
        generation: increments on every (re)connection, so a source notices a replug.
    """

    presses: Mapping[str, int] = field(default_factory=dict)
    generation: int = 0


@dataclass(frozen=True)
class TeleopStatus:
    """How a device is doing, for the teleop panel and ``vla-studio devices``.

    Attributes:
        connected: the device is attached and being read.
        summary: what is attached ("Xbox Wireless Controller, xbox layout") or what is missing.
        message: what the operator should do about a problem ("" when all is well).
        reads_per_s: how often the reader published a state recently.
        details: extra facts for the device test page (ids, paths, battery, ...).
    """

    connected: bool
    summary: str
    message: str = ""
    reads_per_s: float = 0.0
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LegendRow:
    """One line of the bindings legend.

    Attributes:
        action: what it does ("Forward / back", "Gripper (toggle)").
        control: the control, as printed on the device ("Left stick ↕", "A", "W / S").
        controls: raw control names involved (the controller diagram highlights them).
        kind: "motion" or "button".
        name: the motion channel or button function ("x", "gripper", ...).
    """

    action: str
    control: str
    controls: tuple[str, ...]
    kind: str
    name: str = ""


class MappedTeleop(Teleop):
    """Base of the built-in teleop devices.

    Subclasses read their hardware on their own thread and call :meth:`_publish` with every
    reading; they provide the raw control names, default bindings and labels.
    """

    config_class: ClassVar[type[DeviceConfig]] = MappedTeleopConfig
    config: MappedTeleopConfig
    device_label: ClassVar[str] = "device"  # "gamepad", "SpaceMouse", "keyboard"
    # Whether ``require_deadman`` defaults to on when the station's robot is not simulated (a
    # hand-held device can be dropped or knocked while deflected; a keyboard is not carried).
    deadman_default_on_real_robots: ClassVar[bool] = False

    def __init__(self, config: MappedTeleopConfig) -> None:
        super().__init__(config)
        self._state = InputState(stamp=0.0, connected=False)
        self._tuning = Tuning(rotation=config.rotation)
        self._tuning_lock = threading.Lock()
        self._ctx: TeleopContext | None = None
        self._dispatcher = CommandDispatcher(config.name)
        self._presses: collections.Counter[str] = collections.Counter()
        self._prev_buttons: Mapping[str, bool] | None = None
        self._generation = 0
        self._publish_times: collections.deque[float] = collections.deque(maxlen=128)
        self._mapping = TeleopMapping(config, self.bindings())

    # ----- what subclasses provide ------------------------------------------------------------
    @abc.abstractmethod
    def bindings(self) -> Bindings:
        """The resolved bindings for the current layout (defaults + profile overrides)."""

    @abc.abstractmethod
    def control_label(self, name: str) -> str:
        """A raw control's name as printed on the device ("A", "Cross", "Left stick ↕", "W")."""

    @abc.abstractmethod
    def status(self) -> TeleopStatus:
        """Connection state and what to do about a problem."""

    # ----- station wiring ---------------------------------------------------------------------
    def attach(self, ctx: TeleopContext) -> None:
        """Remember the station's latch, event bus and command sink (see :meth:`Teleop.attach`)."""
        self._ctx = ctx
        self._dispatcher.set_handler(ctx.on_command)

    def make_action_source(self, ctx: TeleopContext) -> ActionSource:
        from vla_studio.devices.teleop.source import TeleopActionSource

        if self._ctx is None:
            self.attach(ctx)
        return TeleopActionSource(self, ctx)

    # ----- state --------------------------------------------------------------------------------
    def get_state(self) -> InputState:
        return self._state

    @property
    def mapping(self) -> TeleopMapping:
        return self._mapping

    @property
    def tuning(self) -> Tuning:
        return self._tuning

    def set_tuning(self, **changes: object) -> Tuning:
        """Change sensitivity or the rotation switch from any thread; returns the new tuning."""
        with self._tuning_lock:
            self._tuning = dataclasses.replace(self._tuning, **changes)
            return self._tuning

    def reads_per_s(self) -> float:
        times = list(self._publish_times)
        if len(times) < 2 or time.monotonic() - times[-1] > 1.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    # ----- legend -------------------------------------------------------------------------------
    def legend(self) -> list[LegendRow]:
        """The active bindings, motion first, as the operator should read them."""
        b = self._mapping.bindings
        rows = []
        for channel in CHANNELS:
            binding = b.motion[channel]
            if binding.axis:
                rows.append(LegendRow(CHANNEL_TITLES[channel], self.control_label(binding.axis),
                                      (binding.axis,), "motion", channel))
            elif binding.buttons:
                label = " / ".join(self.control_label(n) if n else "-" for n in
                                   (binding.plus, binding.minus))
                rows.append(LegendRow(CHANNEL_TITLES[channel], label, binding.buttons, "motion",
                                      channel))
        for function in FUNCTIONS:
            button = b.functions.get(function)
            if not button or (function == DEADMAN and not self.config.require_deadman):
                continue
            title = FUNCTION_TITLES[function]
            if function == GRIPPER:
                title += " (toggle)" if self.config.gripper_mode == "toggle" else " (hold to close)"
            rows.append(LegendRow(title, self.control_label(button), (button,), "button",
                                  function))
        return rows

    # ----- for subclasses' reader threads ---------------------------------------------------
    def _set_bindings(self, bindings: Bindings) -> None:
        """Switch to other bindings (a gamepad of another layout was plugged in)."""
        self._mapping = TeleopMapping(self.config, bindings)

    def _begin_connection(self) -> None:
        """A (re)connection: no press edges against the previous device's last reading."""
        self._generation += 1
        self._prev_buttons = None

    def _publish(self, t: float, axes: Mapping[str, float], buttons: Mapping[str, bool]) -> None:
        """Store a successful reading taken at host time ``t`` and act on button presses."""
        prev = self._prev_buttons
        pressed = [n for n, down in buttons.items() if down and prev is not None and not prev.get(n)]
        for name in pressed:
            self._presses[name] += 1
        self._prev_buttons = buttons
        self._state = InputState(t, axes, buttons, True, dict(self._presses), self._generation)
        self._publish_times.append(time.monotonic())
        for name in pressed:
            self._on_press(name)

    def _publish_disconnected(self) -> None:
        """The device went away: keep the last stamp (it goes stale), show all controls at rest."""
        old = self._state
        self._state = InputState(old.stamp, {}, {}, False, old.presses, old.generation)
        self._prev_buttons = None

    def _on_press(self, button: str) -> None:
        for function in self._mapping.bindings.functions_of(button):
            if function == STOP:
                ctx = self._ctx
                if ctx is None:
                    log.error("%s: STOP pressed but the device is not attached to a station",
                              self.name)
                    continue
                ctx.latch.trigger(f"STOP button ({self.control_label(button)}) on "
                                  f"{self.device_label} '{self.name}'", f"teleop:{self.name}")
            elif function in FUNCTION_COMMANDS:
                self._dispatcher.submit(FUNCTION_COMMANDS[function])

    def _emit(self, kind: str, message: str, level: int = logging.INFO) -> None:
        """Tell the operator (event bus when attached, the log otherwise)."""
        ctx = self._ctx
        if ctx is not None:
            ctx.events.emit(kind, message, level, teleop=self.name)
        else:
            log.log(level, "%s", message)

    def _start_dispatch(self) -> None:
        self._dispatcher.start()

    def _stop_dispatch(self) -> None:
        self._dispatcher.stop()
