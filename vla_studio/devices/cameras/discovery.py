"""Camera discovery: what is attached, with the modes each camera offers.

Backends describe their hardware as :class:`CameraInfo` records (``OpenCVCamera.enumerate``,
``RealSenseCamera.enumerate``); ``Device.detect`` turns them into the generic
:class:`~vla_studio.devices.base.DetectedDevice` rows of ``vla-studio devices``, and
``vla-studio cameras list`` prints them in full, with a profile snippet per camera. Every probe
runs in its own thread with a deadline, so a driver that hangs cannot hang the listing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from vla_studio.devices.base import DetectedDevice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraMode:
    """One stream format a camera offers.

    Attributes:
        stream: ``"color"``, ``"depth"`` or ``"infrared"``.
        pixel_format: FOURCC or librealsense format name (``"MJPG"``, ``"YUYV"``, ``"rgb8"``).
        width, height: pixels.
        fps: frame rates offered at this size (empty when the driver does not say).
    """

    stream: str
    pixel_format: str
    width: int
    height: int
    fps: tuple[float, ...] = ()

    def describe(self) -> str:
        rates = ",".join(f"{r:g}" for r in self.fps)
        return f"{self.width}x{self.height}" + (f"@{rates}" if rates else "")


@dataclass(frozen=True)
class CameraInfo:
    """A camera found on this machine.

    Attributes:
        kind: registry type (``"opencv"``, ``"realsense"``).
        id: what selects it in a profile (OpenCV index, RealSense serial).
        name: the device's own name.
        path: device node or bus address, when there is one.
        modes: what it can stream.
        details: extra facts (driver, firmware, USB type).
    """

    kind: str
    id: str
    name: str
    path: str = ""
    modes: tuple[CameraMode, ...] = ()
    details: Mapping[str, str] = field(default_factory=dict)

    def modes_by_format(self) -> dict[tuple[str, str], list[CameraMode]]:
        """Modes grouped by (stream, pixel format), in the order the device listed them."""
        groups: dict[tuple[str, str], list[CameraMode]] = {}
        for mode in self.modes:
            groups.setdefault((mode.stream, mode.pixel_format), []).append(mode)
        return groups

    def modes_summary(self) -> str:
        """One line: ``color MJPG 1920x1080@30 1280x720@30,60; color YUYV 640x480@30``."""
        return "; ".join(f"{stream} {fmt} " + " ".join(m.describe() for m in modes)
                         for (stream, fmt), modes in self.modes_by_format().items())

    def to_detected(self) -> DetectedDevice:
        details = {"name": self.name, **dict(self.details)}
        if self.path:
            details["path"] = self.path
        if self.modes:
            details["modes"] = self.modes_summary()
        return DetectedDevice(self.kind, self.id, self.name, details)


@dataclass(frozen=True)
class DiscoveryResult:
    """Cameras found by every backend, and the probes that failed or timed out."""

    cameras: tuple[CameraInfo, ...]
    problems: tuple[str, ...] = ()


def discover(probes: Mapping[str, Callable[[], list[CameraInfo]]],
             timeout_s: float = 5.0) -> DiscoveryResult:
    """Run each backend's probe in its own thread, waiting at most ``timeout_s`` in total.

    Args:
        probes: backend name -> function listing its cameras (may raise; may hang).
        timeout_s: deadline for all probes together. A probe still running then is reported
            and abandoned (daemon thread), so a hung driver cannot hang the caller or its exit.
    """
    results: dict[str, list[CameraInfo] | BaseException] = {}
    threads = []
    for name, fn in probes.items():
        def run(name: str = name, fn: Callable[[], list[CameraInfo]] = fn) -> None:
            try:
                results[name] = list(fn())
            except Exception as exc:  # a broken driver must not break the listing
                log.debug("camera probe %s failed", name, exc_info=True)
                results[name] = exc
        thread = threading.Thread(target=run, name=f"camera-probe-{name}", daemon=True)
        thread.start()
        threads.append((name, thread))
    deadline = time.monotonic() + timeout_s
    cameras: list[CameraInfo] = []
    problems: list[str] = []
    for name, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        result = results.get(name)
        if thread.is_alive() or result is None:
            problems.append(f"{name}: no answer within {timeout_s:g} s (driver busy or hung?)")
        elif isinstance(result, BaseException):
            problems.append(f"{name}: {result}")
        else:
            cameras.extend(result)
    return DiscoveryResult(tuple(cameras), tuple(problems))
