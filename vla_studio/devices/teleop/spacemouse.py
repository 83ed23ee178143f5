"""3Dconnexion SpaceMouse (kind ``spacemouse``) through hidapi, with hot-plug.

The reader thread (``spacemouse-<name>``) finds a known model (:data:`.spacemouse_reports.MODELS`),
opens it, and reads HID reports with a 10 ms timeout, publishing a state after every read. A
SpaceMouse streams reports while its cap is displaced and goes quiet at rest, so:

* at rest, every read (even a timeout) refreshes the stamp: the device is there, nothing moved;
* while displaced, the stamp is the last *motion report*: a wireless link that drops while the cap
  is pushed stops the stamp, and the arm holds after the 100 ms watchdog instead of moving on a
  frozen reading.

A read error means the device went away: the state shows it disconnected (the arm holds) and the
thread looks for it again every half second. Opening failures are explained (permission: udev rule;
busy: spacenavd / 3DxWare) in :meth:`SpaceMouseTeleop.status` and on the event bus.

Default bindings: the cap moves the gripper as if it were held (push away = forward, twist =
yaw, tilt = roll/pitch); left button = gripper (toggle), right button = take over (hold). Pro
models: 1 = gripper, 2 = take over, Esc = STOP, Shift = precision, rotation-lock key = rotation
on/off, Menu = record, 3 / 4 = success / failure.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from vla_studio.core.config import option
from vla_studio.devices.base import DetectedDevice, DeviceConfig
from vla_studio.devices.teleop.base import MappedTeleop, TeleopStatus
from vla_studio.devices.teleop.bindings import (Bindings, NameCheck, check_calibration,
                                                check_names, resolve_bindings)
from vla_studio.devices.teleop.mapping import MappedTeleopConfig
from vla_studio.devices.teleop.spacemouse_reports import (
    ALL_BUTTON_NAMES, AXES, MODELS, RawSpaceMouse, ReportError, SpaceMouseModel,
    apply_report, button_states, explain_open_error, find_model, probe_open_errno, spacenavd_pid,
    to_device_axes)

log = logging.getLogger(__name__)
READ_TIMEOUT_MS = 10
RESCAN_S = 0.5

DEFAULT_MOTION = {"x": "y", "y": "-x", "z": "z", "roll": "ry", "pitch": "-rx", "yaw": "rz"}
TWO_BUTTON_FUNCTIONS = {"gripper": "left", "intervention": "right"}
PRO_FUNCTIONS = {"gripper": "1", "intervention": "2", "stop": "esc", "precision": "shift",
                 "rotation_toggle": "rotation_lock", "record": "menu", "success": "3",
                 "failure": "4"}
BUTTON_LABELS = {"left": "Left button", "right": "Right button", "menu": "Menu", "fit": "Fit",
                 "top": "T", "right_view": "R", "left_view": "L", "front": "F", "roll": "Roll",
                 "esc": "Esc", "alt": "Alt", "shift": "Shift", "ctrl": "Ctrl",
                 "rotation_lock": "Rotation lock", "iso": "ISO", "pan_zoom": "Pan/Zoom",
                 "dominant": "Dominant", "plus": "+", "minus": "-", "panel": "Panel",
                 "zoom_minus": "Zoom -", "zoom_plus": "Zoom +", "3d_lock": "3D lock",
                 "config": "Config", "2d": "2D"}
AXIS_LABELS = {"x": "Cap left / right", "y": "Cap push / pull", "z": "Cap lift / press",
               "rx": "Cap tilt forward / back", "ry": "Cap tilt left / right",
               "rz": "Cap twist"}


@dataclass(frozen=True)
class SpaceMouseConfig(MappedTeleopConfig):
    """A ``[[teleops]]`` table of ``type = "spacemouse"``."""

    model: str = option("", help="only this model (a name from the known-models table); "
                                 "default: the first known SpaceMouse found")
    path: str = option("", help="HID path of the device when several are attached "
                                "(see `vla-studio devices`)")
    full_scale: float = option(350.0, min=1.0, max=5000.0,
                               help="raw reading at full deflection (350 on most models)")
    deadzone: float = option(0.08, min=0.0, max=0.95, help="cap readings below this are zero")

    def __post_init__(self) -> None:
        if self.model and self.model not in {m.name for m in MODELS}:
            raise ValueError(f"model {self.model!r} is not a known SpaceMouse; known: "
                             + ", ".join(m.name for m in MODELS))
        axes = NameCheck(AXES)
        for defaults in (TWO_BUTTON_FUNCTIONS, PRO_FUNCTIONS):
            bindings = resolve_bindings(DEFAULT_MOTION, defaults, self.motion, self.buttons)
            check_names(bindings, axes, NameCheck(ALL_BUTTON_NAMES), ", ".join(AXES),
                        ", ".join(sorted(ALL_BUTTON_NAMES, key=lambda n: (len(n), n))))
        check_calibration(self.calibration, axes, ", ".join(AXES))


@dataclass(frozen=True)
class HidDeviceInfo:
    """One HID interface of a known model (from ``hid.enumerate``)."""

    path: str
    model: SpaceMouseModel
    serial: str = ""
    product: str = ""


class ReportStream(Protocol):
    """An open device: ``read`` returns one report (b"" on timeout) or raises OSError."""

    def read(self, timeout_ms: int) -> bytes: ...
    def close(self) -> None: ...


class HidBackend(Protocol):
    """Finds and opens devices (hidapi by default)."""

    def enumerate(self) -> list[HidDeviceInfo]: ...
    def open(self, info: HidDeviceInfo) -> ReportStream: ...


class HidapiBackend:
    """The real backend: the ``hid`` module of the ``hidapi`` package."""

    def enumerate(self) -> list[HidDeviceInfo]:
        import hid

        found: dict[tuple[int, int, str], tuple[int, HidDeviceInfo]] = {}
        for d in hid.enumerate():
            model = find_model(d.get("vendor_id", 0), d.get("product_id", 0))
            if model is None:
                continue
            path = d.get("path", b"")
            path = path.decode(errors="replace") if isinstance(path, bytes) else str(path)
            info = HidDeviceInfo(path, model, d.get("serial_number") or "",
                                 d.get("product_string") or "")
            # Several interfaces per device: prefer the multi-axis controller (page 1, usage 8).
            rank = 0 if (d.get("usage_page"), d.get("usage")) == (1, 8) else 1
            key = (model.vendor_id, model.product_id, info.serial or path)
            if key not in found or rank < found[key][0]:
                found[key] = (rank, info)
        return [info for _, info in sorted(found.values(), key=lambda r: r[1].path)]

    def open(self, info: HidDeviceInfo) -> ReportStream:
        return _HidapiStream(info.path)


class _HidapiStream:
    def __init__(self, path: str) -> None:
        import hid

        self._dev: Any = hid.device()
        self._dev.open_path(path.encode())  # raises OSError("open failed")

    def read(self, timeout_ms: int) -> bytes:
        return bytes(self._dev.read(64, timeout_ms))

    def close(self) -> None:
        self._dev.close()


class SpaceMouseTeleop(MappedTeleop):
    """A 3Dconnexion SpaceMouse: six axes on one cap, plus buttons.

    Args:
        config: the profile's table.
        backend: how devices are found and opened (hidapi unless given).
    """

    config_class: ClassVar[type[DeviceConfig]] = SpaceMouseConfig
    config: SpaceMouseConfig
    device_label: ClassVar[str] = "SpaceMouse"
    deadman_default_on_real_robots: ClassVar[bool] = True

    def __init__(self, config: SpaceMouseConfig | None = None,
                 backend: HidBackend | None = None) -> None:
        config = config or SpaceMouseConfig(name="spacemouse")
        self._backend: HidBackend = backend or HidapiBackend()
        self._model: SpaceMouseModel | None = None
        self._info: HidDeviceInfo | None = None
        self._raw = RawSpaceMouse()
        self._error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connects = 0
        self._unplugs = 0
        self._last_motion_t = 0.0
        super().__init__(config)

    # ----- Teleop -------------------------------------------------------------------------------
    @property
    def axis_names(self) -> tuple[str, ...]:
        return AXES

    @property
    def button_names(self) -> tuple[str, ...]:
        model = self._model
        return model.button_names if model else ("left", "right")

    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    @property
    def model(self) -> SpaceMouseModel | None:
        return self._model

    def connect(self) -> None:
        """Start the reader thread (a missing device is picked up when plugged in)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"spacemouse-{self.name}",
                                        daemon=True)
        self._thread.start()
        self._start_dispatch()

    def disconnect(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(5.0)
        if thread.is_alive():
            log.error("SpaceMouse reader '%s' did not stop within 5 s", self.name)
        self._publish_disconnected()
        self._stop_dispatch()

    def bindings(self) -> Bindings:
        model = self._model
        two = model is None or "left" in model.buttons.values()
        defaults = TWO_BUTTON_FUNCTIONS if two else PRO_FUNCTIONS
        if model is not None:  # a default naming a button this model lacks is dropped
            defaults = {f: b for f, b in defaults.items() if b in model.buttons.values()}
        return resolve_bindings(DEFAULT_MOTION, defaults, self.config.motion, self.config.buttons)

    def control_label(self, name: str) -> str:
        if name in AXIS_LABELS:
            return AXIS_LABELS[name]
        return BUTTON_LABELS.get(name, f"Button {name}" if name.isdigit() else name)

    def status(self) -> TeleopStatus:
        if self._thread is None:
            return TeleopStatus(False, "SpaceMouse (not connected)")
        info, raw = self._info, self._raw
        if info is None:
            message = self._error or ("Plug in a 3Dconnexion SpaceMouse (wired, wireless or "
                                      f"through the universal receiver: {len(MODELS)} known "
                                      "models). The arm holds until one is connected.")
            return TeleopStatus(False, "no SpaceMouse", message, 0.0,
                                {"unplugged": f"{self._unplugs} time(s)"})
        details = {"model": info.model.name, "USB id": info.model.usb_id, "path": info.path,
                   "connection": info.model.connection, "reports": info.model.report,
                   "raw counts": " ".join(f"{c:+4d}" for c in raw.counts),
                   "plugged in": f"{self._connects} time(s)",
                   "unplugged": f"{self._unplugs} time(s)"}
        if raw.battery is not None:
            details["battery"] = f"{raw.battery} %"
        return TeleopStatus(True, info.product or info.model.name, "", self.reads_per_s(), details)

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        try:
            infos = HidapiBackend().enumerate()
        except Exception:  # no hidapi: nothing to detect
            return []
        return [DetectedDevice("spacemouse", i.path, i.model.name,
                               {"usb_id": i.model.usb_id, "connection": i.model.connection})
                for i in infos]

    # ----- the reader thread --------------------------------------------------------------------
    def _run(self) -> None:
        stream: ReportStream | None = None
        try:
            while not self._stop.is_set():
                if stream is None:
                    stream = self._open_one()
                    if stream is None:
                        self._stop.wait(RESCAN_S)
                    continue
                try:
                    report = stream.read(READ_TIMEOUT_MS)
                except OSError as exc:
                    self._lost(stream, exc)
                    stream = None
                    continue
                self._handle(report)
        except Exception:
            log.exception("SpaceMouse reader '%s' failed; the arm holds", self.name)
            self._error = "the SpaceMouse reader failed (see the log)"
        finally:
            if stream is not None:
                _close_quietly(stream)

    def _open_one(self) -> ReportStream | None:
        try:
            infos = self._backend.enumerate()
        except Exception as exc:
            self._set_error(f"cannot list HID devices: {exc}. Install hidapi "
                            "(`pip install hidapi`) and libhidapi-hidraw0.")
            return None
        infos = [i for i in infos if (not self.config.model or i.model.name == self.config.model)
                 and (not self.config.path or i.path == self.config.path)]
        if not infos:
            self._error = ""  # nothing to open: the status asks for a device
            return None
        info = infos[0]
        try:
            stream = self._backend.open(info)
        except OSError as exc:
            code = exc.errno if exc.errno is not None else probe_open_errno(info.path)
            self._set_error(explain_open_error(info.model, info.path, code, spacenavd_pid()))
            return None
        self._error = ""
        self._info, self._model, self._raw = info, info.model, RawSpaceMouse()
        self._last_motion_t = 0.0
        self._set_bindings(self.bindings())
        self._begin_connection()
        self._connects += 1
        self._emit("teleop.connected", f"SpaceMouse '{self.name}': {info.model.name} connected.")
        self._handle(b"")  # publish the at-rest baseline at once
        return stream

    def _lost(self, stream: ReportStream, exc: OSError) -> None:
        _close_quietly(stream)
        name = self._info.model.name if self._info else "SpaceMouse"
        self._info = None
        self._unplugs += 1
        self._publish_disconnected()
        self._emit("teleop.disconnected", f"SpaceMouse '{self.name}' ({name}) stopped answering "
                   f"({exc}): the arm holds. Plug it back in to continue.", logging.WARNING)

    def _handle(self, report: bytes) -> None:
        now = time.monotonic()
        before = self._raw.motion_reports
        try:
            self._raw = apply_report(self._raw, report)
        except ReportError as exc:
            log.warning("SpaceMouse '%s': ignored a malformed report: %s", self.name, exc)
        raw = self._raw
        if raw.motion_reports != before:
            self._last_motion_t = now
        model = self._model
        if model is None:
            return
        axes = to_device_axes(raw.counts, self.config.full_scale)
        # Displaced: the stamp is the last motion report (a silent link goes stale); at rest,
        # any successful read proves the device is there.
        stamp = self._last_motion_t if any(raw.counts) else now
        self._publish(stamp, axes, button_states(model, raw.buttons))

    def _set_error(self, message: str) -> None:
        if message != self._error:
            self._error = message
            self._emit("teleop.error", f"SpaceMouse '{self.name}': {message}", logging.WARNING)


def _close_quietly(stream: ReportStream) -> None:
    try:
        stream.close()
    except Exception:
        log.debug("closing a SpaceMouse stream failed", exc_info=True)
