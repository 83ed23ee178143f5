"""Video4Linux2 enumeration (Linux): capture nodes with their names and modes.

OpenCV cannot list the modes a webcam offers, so ``vla-studio cameras list`` asks the kernel
directly with the V4L2 ioctls ``VIDIOC_QUERYCAP``, ``VIDIOC_ENUM_FMT``,
``VIDIOC_ENUM_FRAMESIZES`` and ``VIDIOC_ENUM_FRAMEINTERVALS``. The struct layouts below are the
kernel's (``linux/videodev2.h``); parsing is kept in small functions, and the device I/O is an
injectable object, so the whole walk is testable without a camera.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vla_studio.devices.cameras.discovery import CameraMode

_IOC_WRITE, _IOC_READ = 1, 2
V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_DEVICE_CAPS = 0x80000000
FRMSIZE_DISCRETE, FRMSIZE_CONTINUOUS, FRMSIZE_STEPWISE = 1, 2, 3
FRMIVAL_DISCRETE = 1

# struct v4l2_capability: driver[16] card[32] bus_info[32] version capabilities device_caps res[3]
CAPABILITY = struct.Struct("=16s32s32sIII12x")
# struct v4l2_fmtdesc: index type flags description[32] pixelformat mbus_code reserved[3]
FMTDESC = struct.Struct("=III32sII12x")
# struct v4l2_frmsizeenum: index pixel_format type union{discrete w,h | stepwise 6 x u32} res[2]
FRMSIZEENUM = struct.Struct("=III6I8x")
# struct v4l2_frmivalenum: index pixel_format width height type union{fract | 3 fracts} res[2]
FRMIVALENUM = struct.Struct("=IIIII6I8x")


def ioc(direction: int, nr: int, size: int, kind: str = "V") -> int:
    """The Linux ``_IOC`` request number."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


VIDIOC_QUERYCAP = ioc(_IOC_READ, 0, CAPABILITY.size)
VIDIOC_ENUM_FMT = ioc(_IOC_READ | _IOC_WRITE, 2, FMTDESC.size)
VIDIOC_ENUM_FRAMESIZES = ioc(_IOC_READ | _IOC_WRITE, 74, FRMSIZEENUM.size)
VIDIOC_ENUM_FRAMEINTERVALS = ioc(_IOC_READ | _IOC_WRITE, 75, FRMIVALENUM.size)


class DeviceIO(Protocol):
    """How the walk talks to a device node (the OS, or a test double)."""

    def open(self, path: str) -> int: ...
    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes: ...
    def close(self, fd: int) -> None: ...


class OSDeviceIO:
    """Real device nodes: ``os.open`` (non-blocking, so a busy camera does not stall us)."""

    def open(self, path: str) -> int:
        return os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes:
        import fcntl

        return fcntl.ioctl(fd, request, arg)

    def close(self, fd: int) -> None:
        os.close(fd)


@dataclass(frozen=True)
class V4L2Device:
    """A video capture node."""

    path: str
    index: int  # N of /dev/videoN: the OpenCV index
    card: str
    driver: str
    bus_info: str
    modes: tuple[CameraMode, ...]


def fourcc_to_str(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


def _enumerate(io: DeviceIO, fd: int, request: int, layout: struct.Struct, head: tuple,
               limit: int = 256) -> list[tuple]:
    """Call an ENUM ioctl with index 0, 1, ... until the driver says EINVAL (the end)."""
    out = []
    for index in range(limit):
        # The leading fields (index, then the u32s naming what to enumerate) are inputs; the
        # rest of the struct is zeroed for the driver to fill in.
        lead = struct.pack(f"={1 + len(head)}I", index, *head)
        arg = lead + bytes(layout.size - len(lead))
        try:
            out.append(layout.unpack(io.ioctl(fd, request, arg)))
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOTTY):
                break
            raise
    return out


def _frame_rates(io: DeviceIO, fd: int, fourcc: int, width: int, height: int) -> tuple[float, ...]:
    rates: list[float] = []
    for row in _enumerate(io, fd, VIDIOC_ENUM_FRAMEINTERVALS, FRMIVALENUM, (fourcc, width, height)):
        kind, values = row[4], row[5:]
        if kind == FRMIVAL_DISCRETE:
            num, den = values[0], values[1]
            if num:
                rates.append(round(den / num, 2))
        else:  # stepwise/continuous: min and max interval -> max and min rate
            (min_n, min_d, max_n, max_d) = values[:4]
            rates.extend(round(d / n, 2) for n, d in ((min_n, min_d), (max_n, max_d)) if n)
            break
    return tuple(sorted(set(rates), reverse=True))


def _sizes(io: DeviceIO, fd: int, fourcc: int) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    for row in _enumerate(io, fd, VIDIOC_ENUM_FRAMESIZES, FRMSIZEENUM, (fourcc,)):
        kind, values = row[2], row[3:]
        if kind == FRMSIZE_DISCRETE:
            sizes.append((values[0], values[1]))
        else:  # stepwise/continuous: the extremes are what a profile would ask for
            min_w, max_w, _, min_h, max_h, _ = values
            sizes.extend([(max_w, max_h), (min_w, min_h)])
            break
    return sizes


def query_device(path: str, io: DeviceIO | None = None) -> V4L2Device | None:
    """Name and modes of one ``/dev/videoN`` node; None for nodes that cannot capture video
    (UVC metadata nodes, output-only devices).

    Raises:
        OSError: the node cannot be opened or queried.
    """
    io = io or OSDeviceIO()
    match = re.search(r"(\d+)$", path)
    index = int(match.group(1)) if match else -1
    fd = io.open(path)
    try:
        driver, card, bus, _version, caps, device_caps = CAPABILITY.unpack(
            io.ioctl(fd, VIDIOC_QUERYCAP, bytes(CAPABILITY.size)))
        effective = device_caps if caps & V4L2_CAP_DEVICE_CAPS else caps
        if not effective & V4L2_CAP_VIDEO_CAPTURE:
            return None
        modes: list[CameraMode] = []
        for fmt in _enumerate(io, fd, VIDIOC_ENUM_FMT, FMTDESC, (V4L2_BUF_TYPE_VIDEO_CAPTURE,)):
            fourcc = fmt[4]
            for width, height in _sizes(io, fd, fourcc):
                modes.append(CameraMode("color", fourcc_to_str(fourcc), width, height,
                                        _frame_rates(io, fd, fourcc, width, height)))
        return V4L2Device(path, index, _cstr(card), _cstr(driver), _cstr(bus), tuple(modes))
    finally:
        io.close(fd)


def capture_nodes(sysfs: Path = Path("/sys/class/video4linux"), dev: Path = Path("/dev")) -> list[str]:
    """``/dev/videoN`` paths in index order (from sysfs, else by listing /dev)."""
    if sysfs.is_dir():
        names = [p.name for p in sysfs.iterdir() if p.name.startswith("video")]
    elif dev.is_dir():
        names = [p.name for p in dev.iterdir() if re.fullmatch(r"video\d+", p.name)]
    else:
        return []
    names = [n for n in names if re.fullmatch(r"video\d+", n)]
    return [str(dev / n) for n in sorted(names, key=lambda n: int(n[5:]))]


def list_devices(io: DeviceIO | None = None, nodes: list[str] | None = None) -> list[V4L2Device]:
    """Every capture-capable node; nodes that cannot be opened are skipped (busy, no access)."""
    found = []
    for path in capture_nodes() if nodes is None else nodes:
        try:
            device = query_device(path, io)
        except OSError:
            continue
        if device is not None:
            found.append(device)
    return found
