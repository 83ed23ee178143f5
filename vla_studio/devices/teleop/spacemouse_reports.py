"""3Dconnexion SpaceMouse HID reports, as pure functions, and the table of known models.

Report formats (first byte = report id, values little-endian signed 16-bit):

* ``01 x x y y z z``                  translation (older "split" models)
* ``02 rx rx ry ry rz rz``            rotation (older "split" models)
* ``01 x x y y z z rx rx ry ry rz rz`` translation and rotation together (newer models, 13 bytes)
* ``03 b0 b1 ...``                    buttons: bit ``8 * (k - 1) + i`` of byte k is one button
* ``17 pp``                           battery level in percent (wireless models)

The HID frame is x right, y towards the operator, z down (pushing the cap down is +z), with
rotations right-handed about those axes. :func:`to_device_axes` turns it into the frame the
mapping uses: x right, y forward (away from the operator), z up.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field, replace
from typing import Mapping

LOGITECH, CONNEXION = 0x046D, 0x256F  # older models carry Logitech's vendor id
AXES = ("x", "y", "z", "rx", "ry", "rz")

TWO_BUTTONS = {0: "left", 1: "right"}
PRO_BUTTONS = {0: "menu", 1: "fit", 2: "top", 4: "right_view", 5: "front", 8: "roll", 12: "1",
               13: "2", 14: "3", 15: "4", 22: "esc", 23: "alt", 24: "shift", 25: "ctrl",
               26: "rotation_lock"}
ENTERPRISE_BUTTONS = {**PRO_BUTTONS, 10: "iso", 16: "5", 17: "6", 18: "7", 19: "8", 20: "9",
                      21: "10"}
SPACEPILOT_PRO_BUTTONS = {0: "menu", 1: "fit", 2: "top", 4: "right_view", 5: "front", 8: "roll",
                          10: "iso", 14: "3", 15: "4", 16: "5", 17: "1", 18: "2", 22: "esc",
                          23: "alt", 24: "shift", 25: "ctrl", 26: "rotation_lock",
                          27: "pan_zoom", 28: "dominant", 29: "plus", 30: "minus"}
SPACEEXPLORER_BUTTONS = {0: "1", 1: "2", 2: "top", 3: "left_view", 4: "right_view", 5: "front",
                         6: "esc", 7: "alt", 8: "shift", 9: "ctrl", 10: "fit", 11: "panel",
                         12: "plus", 13: "minus", 14: "2d"}
SPACEPILOT_BUTTONS = {0: "1", 1: "2", 2: "3", 3: "4", 4: "5", 5: "6", 6: "top", 7: "left_view",
                      8: "right_view", 9: "front", 10: "esc", 11: "alt", 12: "shift", 13: "ctrl",
                      14: "fit", 15: "panel", 16: "zoom_minus", 17: "zoom_plus", 18: "dominant",
                      19: "3d_lock", 20: "config"}
# The universal receiver serves both the 2-button Wireless and the Pro Wireless: bits 0 and 1
# are the left/right buttons of the one, Menu/Fit of the other.
RECEIVER_BUTTONS = {**PRO_BUTTONS, 0: "left", 1: "right"}


def _numbered(n: int) -> dict[int, str]:
    return {i: str(i + 1) for i in range(n)}


@dataclass(frozen=True)
class SpaceMouseModel:
    """One 3Dconnexion product.

    Attributes:
        name: product name.
        vendor_id, product_id: USB ids.
        connection: "wired", "wireless" (its own receiver / Bluetooth) or "receiver" (the
            universal receiver, any paired device).
        report: "split" (translation and rotation in separate reports) or "combined".
        buttons: bit index -> button name.
    """

    name: str
    vendor_id: int
    product_id: int
    connection: str
    report: str
    buttons: Mapping[int, str] = field(default_factory=dict)

    @property
    def usb_id(self) -> str:
        return f"{self.vendor_id:04x}:{self.product_id:04x}"

    @property
    def button_names(self) -> tuple[str, ...]:
        return tuple(self.buttons[b] for b in sorted(self.buttons))


MODELS: tuple[SpaceMouseModel, ...] = (
    SpaceMouseModel("SpaceMouse Plus USB", LOGITECH, 0xC603, "wired", "split", _numbered(9)),
    SpaceMouseModel("SpaceMouse Classic USB", LOGITECH, 0xC606, "wired", "split", _numbered(8)),
    SpaceMouseModel("SpaceBall 5000 USB", LOGITECH, 0xC621, "wired", "split", _numbered(12)),
    SpaceMouseModel("SpaceTraveler", LOGITECH, 0xC623, "wired", "split", _numbered(8)),
    SpaceMouseModel("SpacePilot", LOGITECH, 0xC625, "wired", "split", SPACEPILOT_BUTTONS),
    SpaceMouseModel("SpaceNavigator", LOGITECH, 0xC626, "wired", "split", TWO_BUTTONS),
    SpaceMouseModel("SpaceExplorer", LOGITECH, 0xC627, "wired", "split", SPACEEXPLORER_BUTTONS),
    SpaceMouseModel("SpaceNavigator for Notebooks", LOGITECH, 0xC628, "wired", "split",
                    TWO_BUTTONS),
    SpaceMouseModel("SpacePilot Pro", LOGITECH, 0xC629, "wired", "split", SPACEPILOT_PRO_BUTTONS),
    SpaceMouseModel("SpaceMouse Pro", LOGITECH, 0xC62B, "wired", "split", PRO_BUTTONS),
    SpaceMouseModel("SpaceMouse Wireless (cable)", CONNEXION, 0xC62E, "wired", "combined",
                    TWO_BUTTONS),
    SpaceMouseModel("SpaceMouse Wireless (receiver)", CONNEXION, 0xC62F, "wireless", "combined",
                    TWO_BUTTONS),
    SpaceMouseModel("SpaceMouse Pro Wireless (cable)", CONNEXION, 0xC631, "wired", "combined",
                    PRO_BUTTONS),
    SpaceMouseModel("SpaceMouse Pro Wireless (receiver)", CONNEXION, 0xC632, "wireless",
                    "combined", PRO_BUTTONS),
    SpaceMouseModel("SpaceMouse Enterprise", CONNEXION, 0xC633, "wired", "combined",
                    ENTERPRISE_BUTTONS),
    SpaceMouseModel("SpaceMouse Compact", CONNEXION, 0xC635, "wired", "split", TWO_BUTTONS),
    SpaceMouseModel("SpaceMouse Module", CONNEXION, 0xC636, "wired", "split", {}),
    SpaceMouseModel("SpaceMouse Pro Wireless (Bluetooth)", CONNEXION, 0xC638, "wireless",
                    "combined", PRO_BUTTONS),
    SpaceMouseModel("SpaceMouse Wireless (Bluetooth)", CONNEXION, 0xC63A, "wireless",
                    "combined", TWO_BUTTONS),
    SpaceMouseModel("SpaceMouse (USB)", CONNEXION, 0xC641, "wired", "split", {}),
    SpaceMouseModel("3Dconnexion Universal Receiver", CONNEXION, 0xC652, "receiver", "combined",
                    RECEIVER_BUTTONS),
)
_BY_ID = {(m.vendor_id, m.product_id): m for m in MODELS}
ALL_BUTTON_NAMES = frozenset(n for m in MODELS for n in m.buttons.values())


def find_model(vendor_id: int, product_id: int) -> SpaceMouseModel | None:
    """The known model with these USB ids, or None."""
    return _BY_ID.get((vendor_id, product_id))


@dataclass(frozen=True)
class RawSpaceMouse:
    """Everything the device has reported so far, in HID units.

    Attributes:
        counts: x, y, z, rx, ry, rz in the HID frame (about +-350 at full deflection).
        buttons: bit mask of the buttons held.
        battery: percent, when a wireless device reported it.
        motion_reports: how many motion reports were applied (to tell "moving" from "idle").
    """

    counts: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
    buttons: int = 0
    battery: int | None = None
    motion_reports: int = 0


class ReportError(ValueError):
    """A report too short for its id (a broken device or a wrong interface)."""


def _int16s(report: bytes, start: int, n: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(report[start + 2 * i:start + 2 * i + 2], "little", signed=True)
                 for i in range(n))


def apply_report(raw: RawSpaceMouse, report: bytes) -> RawSpaceMouse:
    """The device state after ``report`` (unknown report ids leave it unchanged).

    Raises:
        ReportError: a motion or button report that is too short.
    """
    if not report:
        return raw
    rid = report[0]
    if rid == 1:
        if len(report) >= 13:  # combined translation + rotation
            return replace(raw, counts=_int16s(report, 1, 6), motion_reports=raw.motion_reports + 1)
        if len(report) >= 7:
            return replace(raw, counts=_int16s(report, 1, 3) + raw.counts[3:],
                           motion_reports=raw.motion_reports + 1)
        raise ReportError(f"translation report of {len(report)} bytes (expected 7 or 13)")
    if rid == 2:
        if len(report) < 7:
            raise ReportError(f"rotation report of {len(report)} bytes (expected 7)")
        return replace(raw, counts=raw.counts[:3] + _int16s(report, 1, 3),
                       motion_reports=raw.motion_reports + 1)
    if rid == 3:
        if len(report) < 2:
            raise ReportError("button report without button bytes")
        return replace(raw, buttons=int.from_bytes(report[1:], "little"))
    if rid == 0x17 and len(report) >= 2:
        return replace(raw, battery=min(100, report[1]))
    return raw


def to_device_axes(counts: tuple[int, ...], full_scale: float) -> dict[str, float]:
    """HID counts -> axes in [-1, 1]: x right, y forward, z up; rx, ry, rz right-handed about
    them (so pushing the cap away is +y, lifting it +z, twisting it anticlockwise +rz)."""
    x, y, z, rx, ry, rz = counts
    values = (x, -y, -z, rx, -ry, -rz)
    return {name: max(-1.0, min(1.0, v / full_scale)) for name, v in zip(AXES, values)}


def button_states(model: SpaceMouseModel, mask: int) -> dict[str, bool]:
    """Named button states from a button bit mask."""
    return {name: bool(mask >> bit & 1) for bit, name in model.buttons.items()}


# ----- why a device cannot be opened ---------------------------------------------------------------

def udev_rule(vendor_id: int) -> str:
    return (f'KERNEL=="hidraw*", ATTRS{{idVendor}}=="{vendor_id:04x}", MODE="0660", '
            'TAG+="uaccess"')


def explain_open_error(model: SpaceMouseModel, path: str, code: int | None,
                       spacenavd_pid: int | None) -> str:
    """What went wrong opening ``path`` and how to fix it, for an ``errno`` ``code``."""
    where = f"{model.name} ({model.usb_id}) at {path}"
    driver = (f"spacenavd is running (pid {spacenavd_pid}); " if spacenavd_pid else "")
    if code in (errno.EACCES, errno.EPERM):
        return (f"{where}: permission denied. Let your user read 3Dconnexion devices with a udev "
                f"rule: echo '{udev_rule(model.vendor_id)}' | sudo tee "
                "/etc/udev/rules.d/99-spacemouse.rules && sudo udevadm control --reload-rules "
                "&& sudo udevadm trigger, then unplug and replug the SpaceMouse.")
    if code == errno.EBUSY:
        return (f"{where}: the device is held by another driver. {driver}Stop it "
                "(sudo systemctl stop spacenavd, or quit 3DxWare / 3DxService) and reconnect.")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"{where}: the device went away while opening it; plug it in again."
    detail = os.strerror(code) if code else "open failed"
    return (f"{where}: cannot open it ({detail}). {driver}Check the permissions (udev rule: "
            f"{udev_rule(model.vendor_id)}) and that no other driver (spacenavd, 3DxWare) "
            "holds it.")


def probe_open_errno(path: str) -> int | None:
    """Try opening a hidraw node read/write; the errno it fails with, or None if it opens.

    hidapi only says "open failed"; the operating system says why (permission, busy, gone).
    """
    if not path.startswith("/dev/"):
        return None  # a libusb-style path: nothing to probe
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        return exc.errno
    os.close(fd)
    return None


def spacenavd_pid(proc: str = "/proc") -> int | None:
    """The pid of a running spacenavd daemon, if any (it may compete for the device)."""
    try:
        entries = os.listdir(proc)
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "comm"), encoding="utf-8") as f:
                if f.read().strip() == "spacenavd":
                    return int(entry)
        except OSError:
            continue
    return None
