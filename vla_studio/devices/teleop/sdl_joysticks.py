"""One thread that owns SDL's joystick subsystem (through pygame) for the whole process.

SDL keeps a single event queue per process: two threads pumping it would steal each other's
hot-plug events. So one hub thread (``sdl-joysticks``) initialises SDL, waits for events (which
releases the GIL), opens pads as they are plugged in, closes them as they go, reads every open pad
after each wake-up (at least every ``POLL_S``) and hands the readings to its subscribers (the
gamepad devices) on that same thread.

The hub is reference-counted: the first :meth:`SdlJoystickHub.acquire` starts the thread, the
last :meth:`~SdlJoystickHub.release` closes the pads, stops and joins it. SDL itself stays
initialised for the life of the process (re-initialising is cheap to avoid, and pygame's
``joystick.quit()`` would also destroy SDL's virtual pads).

SDL runs with the ``dummy`` video driver (no window is ever opened; Qt owns the display), unless
``SDL_VIDEODRIVER`` is already set.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from vla_studio.devices.teleop.gamepad_layouts import ids_from_guid

log = logging.getLogger(__name__)
POLL_S = 0.01  # longest wait between two readings: keeps the states' stamps fresh when idle
_AXIS_FULL = 32767.0


@dataclass(frozen=True)
class PadReading:
    """One pad as read by the hub.

    Attributes:
        instance_id: SDL's id for this connection (a replug gets a new one).
        order: attach order within this process (stable while the pad stays plugged in).
        name, guid: as SDL reports them.
        vendor_id, product_id: USB ids from the GUID, when it carries them.
        is_controller: SDL knows this pad's layout (GameController API); axes and buttons are
            then in SDL's standard order, sticks in [-1, 1] and triggers in [0, 1].
        axes, buttons, hats: the readings (raw joystick order when not a controller).
        t: host monotonic time of the reading.
    """

    instance_id: int
    order: int
    name: str
    guid: str
    vendor_id: int | None
    product_id: int | None
    is_controller: bool
    axes: tuple[float, ...]
    buttons: tuple[bool, ...]
    hats: tuple[tuple[int, int], ...]
    t: float


Subscriber = Callable[[list[PadReading], float], None]


class SdlJoystickHub:
    """The process-wide SDL joystick reader (use :meth:`acquire`, never the constructor)."""

    _instance: "SdlJoystickHub | None" = None
    _class_lock = threading.Lock()

    def __init__(self) -> None:
        self._users = 0
        self._subscribers: list[Subscriber] = []
        self._sub_lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._order = itertools.count()
        self._pads: dict[int, _OpenPad] = {}  # SDL instance id -> open pad
        self.readings: list[PadReading] = []
        self.cycle = 0
        self.error: str | None = None

    # ----- reference counting -------------------------------------------------------------------
    @classmethod
    def acquire(cls, timeout_s: float = 5.0) -> "SdlJoystickHub":
        """The running hub (started on first use). Check :attr:`error` for an SDL failure."""
        with cls._class_lock:
            hub = cls._instance
            if hub is None:
                hub = cls._instance = SdlJoystickHub()
            hub._users += 1
            if hub._thread is None:
                hub._start()
        hub._ready.wait(timeout_s)
        return hub

    def release(self) -> None:
        """Drop one use; the last one stops and joins the thread."""
        with self._class_lock:
            self._users -= 1
            if self._users > 0:
                return
            thread, self._thread = self._thread, None
            if SdlJoystickHub._instance is self:
                SdlJoystickHub._instance = None
        if thread is not None:
            self._stop.set()
            thread.join(5.0)
            if thread.is_alive():
                log.error("the SDL joystick thread did not stop within 5 s")

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(readings, t)`` after every read cycle, on the hub thread (keep it
        quick). Returns the function that unsubscribes."""
        with self._sub_lock:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._sub_lock:
                self._subscribers = [s for s in self._subscribers if s is not callback]

        return unsubscribe

    def wait_cycles(self, n: int = 1, timeout_s: float = 2.0) -> bool:
        """Wait until ``n`` more read cycles have completed (e.g. to see a pad just attached)."""
        target = self.cycle + n
        deadline = time.monotonic() + timeout_s
        while self.cycle < target:
            if time.monotonic() > deadline or self.error:
                return False
            time.sleep(POLL_S / 4)
        return True

    # ----- the thread ---------------------------------------------------------------------------
    def _start(self) -> None:
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="sdl-joysticks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            pygame, controller = _init_sdl()
        except Exception as exc:  # missing pygame or an SDL init failure: say what to do
            self.error = (f"cannot start SDL for gamepads: {exc}. Install pygame "
                          "(`pip install pygame`) and check that /dev/input is readable.")
            log.error("%s", self.error)
            self._ready.set()
            return
        try:
            for index in range(pygame.joystick.get_count()):
                self._open(pygame, controller, index)
            self._ready.set()
            while not self._stop.is_set():
                pygame.event.wait(int(POLL_S * 1000))  # returns early on any event; GIL released
                for ev in pygame.event.get():
                    if ev.type == pygame.JOYDEVICEADDED:
                        self._open(pygame, controller, ev.device_index)
                    elif ev.type == pygame.JOYDEVICEREMOVED:
                        self._close(ev.instance_id)
                self._read_all(pygame)
        except Exception:
            log.exception("the SDL joystick thread failed; gamepads stop updating (the arm holds)")
            self.error = "the gamepad reader failed (see the log)"
        finally:
            # The pads are closed but SDL stays initialised: pygame.joystick.quit() would also
            # destroy SDL's virtual pads (tests, benchmarks), and the next hub re-uses SDL as is.
            for instance_id in list(self._pads):
                self._close(instance_id)
            self._ready.set()

    def _open(self, pygame: Any, controller: Any, index: int) -> None:
        try:
            joystick = pygame.joystick.Joystick(index)
            instance_id = joystick.get_instance_id()
            if instance_id in self._pads:
                return  # SDL also announces pads that were present at start-up
            is_ctl = bool(controller.is_controller(index))
            pad = _OpenPad(joystick, controller.Controller(index) if is_ctl else None,
                           next(self._order), joystick.get_name(), joystick.get_guid())
            self._pads[instance_id] = pad
            log.info("gamepad attached: %s (%s)", pad.name,
                     "SDL game controller" if is_ctl else "raw joystick")
        except Exception as exc:  # a pad that vanished while opening
            log.warning("could not open joystick %d: %s", index, exc)

    def _close(self, instance_id: int) -> None:
        pad = self._pads.pop(instance_id, None)
        if pad is None:
            return
        for device in (pad.controller, pad.joystick):
            try:
                if device is not None:
                    device.quit()
            except Exception:  # already gone with the hardware
                pass
        log.info("gamepad removed: %s", pad.name)

    def _read_all(self, pygame: Any) -> None:
        now = time.monotonic()
        readings = []
        for instance_id, pad in self._pads.items():
            if pad.controller is not None:
                c = pad.controller
                axes = tuple(_controller_axis(c.get_axis(i), i >= 4) for i in range(6))
                buttons = tuple(bool(c.get_button(i)) for i in range(15))
                hats: tuple[tuple[int, int], ...] = ()
            else:
                j = pad.joystick
                axes = tuple(j.get_axis(i) for i in range(j.get_numaxes()))
                buttons = tuple(bool(j.get_button(i)) for i in range(j.get_numbuttons()))
                hats = tuple(j.get_hat(i) for i in range(j.get_numhats()))
            readings.append(PadReading(instance_id, pad.order, pad.name, pad.guid, pad.vendor_id,
                                       pad.product_id, pad.controller is not None, axes, buttons,
                                       hats, now))
        readings.sort(key=lambda r: r.order)
        self.readings = readings
        self.cycle += 1
        for callback in self._subscribers:
            try:
                callback(readings, now)
            except Exception:
                log.exception("gamepad subscriber %r failed", callback)


class _OpenPad:
    """A pad the hub has open (hub thread only)."""

    def __init__(self, joystick: Any, controller: Any, order: int, name: str, guid: str) -> None:
        self.joystick, self.controller, self.order = joystick, controller, order
        self.name, self.guid = name, guid
        self.vendor_id, self.product_id = ids_from_guid(guid)


def _controller_axis(value: int, trigger: bool) -> float:
    """SDL controller axis (-32768..32767; triggers 0..32767) -> [-1, 1] / [0, 1]."""
    v = value / _AXIS_FULL
    return max(0.0, min(1.0, v)) if trigger else max(-1.0, min(1.0, v))


def _init_sdl() -> tuple[Any, Any]:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    # SDL would otherwise take over SIGTERM (turning it into an SDL_QUIT event nobody reads):
    # `kill` must still end VLA Studio.
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame
    import pygame._sdl2.controller as controller

    pygame.display.init()  # pygame's event functions need the (dummy) video subsystem
    pygame.joystick.init()
    controller.init()
    return pygame, controller
