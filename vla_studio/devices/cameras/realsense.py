"""Intel RealSense cameras through librealsense (pyrealsense2): colour, depth, recordings.

```
  serial -> rs.device (query_devices) -> options set before streaming (pipeline.set_device)
         -> pipeline.start(colour rgb8 + depth z16) -> try_wait_for_frames -> [align to colour]
  playback = "clip.db3" -> config.enable_device_from_file -> the same pipeline, real-time
```
Every frame carries the device's own timestamp (``t_device``, seconds in the frame's timestamp
domain) and frame number (exact drop counts). The host capture time is the sensor timestamp
mapped onto the monotonic clock when the device reports it on the host clock (``global_time``),
else the driver's arrival time, else the moment the pipeline handed the frame over.

pyrealsense2 is imported only when a camera opens or probes, so profiles validate and the rest of
VLA Studio runs on machines without librealsense.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from vla_studio.core.config import option
from vla_studio.core.types import Feature
from vla_studio.devices.base import DetectedDevice
from vla_studio.devices.cameras.base import (Camera, CameraConfig, CameraIntrinsics, RawFrame,
                                             StreamEnded)
from vla_studio.devices.cameras.discovery import CameraInfo, CameraMode

log = logging.getLogger(__name__)

DeviceSource = Callable[[], Sequence[Any]]  # -> rs.device objects (tests pass software devices)


@dataclass(frozen=True)
class RealSenseCameraConfig(CameraConfig):
    """A RealSense camera (or a recording of one)."""

    serial: str = option("", help="serial number to use; empty = the only RealSense attached")
    playback: str = option("", help="play this recording (.db3, .bag) instead of a live camera")
    loop: bool = option(True, help="playback: start again at the end (false: the camera ends)")
    align_depth: bool = option(False, help="align depth to the colour image (same size and "
                                           "viewpoint as colour)")
    depth_width: int = option(0, min=0, help="depth stream width; 0 = same as width")
    depth_height: int = option(0, min=0, help="depth stream height; 0 = same as height")
    exposure: float | None = option(None, min=1.0, help="colour exposure in microseconds "
                                                        "(turns auto exposure off)")
    gain: float | None = option(None, min=0.0, help="colour sensor gain")
    white_balance: float | None = option(None, min=1000.0, max=12000.0,
                                         help="colour white balance in kelvin (turns auto "
                                              "white balance off)")
    auto_exposure: bool | None = option(None, help="colour auto exposure on/off")
    auto_white_balance: bool | None = option(None, help="colour auto white balance on/off")
    depth_options: dict[str, float] = option(
        default_factory=dict, help="depth sensor options by librealsense name, e.g. "
                                   "{laser_power = 150, emitter_enabled = 1}")

    def __post_init__(self) -> None:
        if not (self.color or self.depth):
            raise ValueError("a RealSense camera needs 'color' or 'depth' (or both) to be true")
        if self.align_depth and not (self.color and self.depth):
            raise ValueError("align_depth aligns depth to colour: set both 'color' and 'depth' "
                             "to true, or remove align_depth")
        if self.exposure is not None and self.auto_exposure:
            raise ValueError("exposure sets a manual exposure; remove it or set "
                             "auto_exposure = false")
        if self.white_balance is not None and self.auto_white_balance:
            raise ValueError("white_balance sets a manual white balance; remove it or set "
                             "auto_white_balance = false")

    @property
    def depth_size(self) -> tuple[int, int]:
        """(width, height) of the depth stream as it arrives from the device."""
        return (self.depth_width or self.width, self.depth_height or self.height)

    @property
    def colour_options(self) -> list[tuple[str, float, bool]]:
        """Colour-sensor options as (librealsense name, value, asked for explicitly), in the
        order they must be set: an auto mode is switched off before its manual value is set."""
        opts: list[tuple[str, float, bool]] = []
        if self.auto_exposure is not None or self.exposure is not None:
            opts.append(("enable_auto_exposure", float(bool(self.auto_exposure)),
                         self.auto_exposure is not None))
        if self.auto_white_balance is not None or self.white_balance is not None:
            opts.append(("enable_auto_white_balance", float(bool(self.auto_white_balance)),
                         self.auto_white_balance is not None))
        for name in ("exposure", "gain", "white_balance"):
            value = getattr(self, name)
            if value is not None:
                opts.append((name, float(value), True))
        return opts


def import_pyrealsense2() -> Any:
    """pyrealsense2, or an error that says how to install it."""
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise OSError(f"pyrealsense2 cannot be imported ({exc}): `pip install pyrealsense2`; on "
                      "Linux it also needs libusb (`apt install libusb-1.0-0`)") from None
    return rs


class RealSenseCamera(Camera):
    """A RealSense depth camera: colour, depth (optionally aligned), options, recordings.

    Args:
        config: the camera's profile entry.
        device_source: returns the librealsense devices to choose from (default: every device
            ``rs.context().query_devices()`` sees). Tests pass ``rs.software_device`` objects.
    """

    config_class: ClassVar[type] = RealSenseCameraConfig
    config: RealSenseCameraConfig

    def __init__(self, config: RealSenseCameraConfig, device_source: DeviceSource | None = None) -> None:
        super().__init__(config)
        self._device_source = device_source
        self._pipe: Any = None
        self._align: Any = None
        self._playback: Any = None
        self._last_number: int | None = None
        self._unmatched = 0
        self._domain_reported = False
        self.depth_intrinsics: CameraIntrinsics | None = None

    @property
    def features(self) -> dict[str, Feature]:
        feats = super().features
        if self.config.depth and not self.config.align_depth:
            w, h = self.config.depth_size
            feats["depth"] = Feature("uint16", (h, w), unit="depth units")
        return feats

    # ----- discovery ------------------------------------------------------------------------
    @classmethod
    def enumerate(cls, devices: Sequence[Any] | None = None) -> list[CameraInfo]:
        """Attached RealSense cameras with every stream mode their sensors offer."""
        rs = import_pyrealsense2()
        found = []
        for dev in (devices if devices is not None else rs.context().query_devices()):
            info = {key: _info(rs, dev, key) for key in
                    ("firmware_version", "usb_type_descriptor", "physical_port", "product_line")}
            found.append(CameraInfo("realsense", _info(rs, dev, "serial_number"),
                                    _info(rs, dev, "name") or "RealSense", info.pop("physical_port"),
                                    device_modes(dev), {k: v for k, v in info.items() if v}))
        return found

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        try:
            return [info.to_detected() for info in cls.enumerate()]
        except Exception:  # detection never raises (vla-studio devices must always list)
            log.debug("RealSense detection failed", exc_info=True)
            return []

    # ----- capture thread -------------------------------------------------------------------
    def _open(self) -> None:
        rs = import_pyrealsense2()
        c = self.config
        pipe, cfg = rs.pipeline(), rs.config()
        device = None
        if c.playback:
            path = str(Path(c.playback).expanduser())
            if not os.path.isfile(path):
                raise FileNotFoundError(f"RealSense recording {path} does not exist; check "
                                        "'playback'")
            cfg.enable_device_from_file(path, repeat_playback=c.loop)
        else:
            device = self._select_device(rs)
            cfg.enable_device(_info(rs, device, "serial_number"))
            pipe.set_device(device)  # the pipeline streams exactly the device chosen here
            self._apply_options(rs, device)
        fps = int(round(c.fps))
        if c.color:
            cfg.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, fps)
        if c.depth:
            dw, dh = c.depth_size
            cfg.enable_stream(rs.stream.depth, dw, dh, rs.format.z16, fps)
        try:
            profile = pipe.start(cfg)
        except RuntimeError as exc:
            raise OSError(self._start_failure(rs, device, exc)) from None
        self._pipe = pipe
        active = profile.get_device()
        self._playback = None
        if c.playback:
            self._playback = active.as_playback()
            self._playback.set_real_time(True)  # frames at the recorded pace, like a camera
            if c.colour_options or c.depth_options:
                self._warn("sensor options are not applied to a recording (playback)")
        self._align = rs.align(rs.stream.color) if c.align_depth else None
        self._last_number = None
        self._unmatched = 0
        self._domain_reported = False
        self._describe(rs, profile, active)

    def _select_device(self, rs: Any) -> Any:
        c = self.config
        devices = list(self._device_source() if self._device_source else rs.context().query_devices())
        serials = [_info(rs, d, "serial_number") for d in devices]
        if c.serial:
            for dev, serial in zip(devices, serials):
                if serial == c.serial:
                    return dev
            raise OSError(f"RealSense {c.serial} is not connected (connected: "
                          f"{', '.join(serials) or 'none'}); check the USB cable, or run "
                          "`vla-studio cameras list`")
        if not devices:
            raise OSError("no RealSense camera is connected; check the USB cable (USB 3) or run "
                          "`vla-studio cameras list`")
        if len(devices) > 1:
            raise OSError(f"{len(devices)} RealSense cameras are connected ({', '.join(serials)}); "
                          "set 'serial' in the profile to choose one")
        return devices[0]

    def _apply_options(self, rs: Any, device: Any) -> None:
        c = self.config
        colour, depth = _sensor_for(device, rs.stream.color), _sensor_for(device, rs.stream.depth)
        depth_options = [(name, value, True) for name, value in c.depth_options.items()]
        for label, sensor, options in (("colour", colour, c.colour_options),
                                       ("depth", depth, depth_options)):
            for name, value, explicit in options:
                opt = getattr(rs.option, name, None)
                if not explicit and (sensor is None or opt is None or not sensor.supports(opt)):
                    continue  # switching auto off before a manual value: moot without the auto
                problem = set_sensor_option(rs, sensor, name, value)
                if problem:
                    self._warn(f"{label} option {problem}")

    def _start_failure(self, rs: Any, device: Any, exc: Exception) -> str:
        c = self.config
        wanted = []
        if c.color:
            wanted.append(f"color rgb8 {c.width}x{c.height}@{c.fps:g}")
        if c.depth:
            dw, dh = c.depth_size
            wanted.append(f"depth z16 {dw}x{dh}@{c.fps:g}")
        if device is None and c.playback:
            try:
                device = rs.context().load_device(str(Path(c.playback).expanduser()))
            except RuntimeError:
                device = None
        offered = CameraInfo("realsense", "", "", modes=device_modes(device)).modes_summary() \
            if device is not None else "(unknown)"
        source = f"recording {c.playback}" if c.playback else "the camera"
        return (f"{source} cannot stream {' + '.join(wanted)} ({exc}). It offers: {offered}. "
                "Change width/height/fps (depth_width/depth_height) in the profile")

    def _describe(self, rs: Any, profile: Any, device: Any) -> None:
        c = self.config
        depth_scale = None
        if c.depth:
            depth_sensor = _sensor_for(device, rs.stream.depth)
            if depth_sensor is not None and depth_sensor.supports(rs.option.depth_units):
                depth_scale = float(depth_sensor.get_option(rs.option.depth_units))
        streams = {}
        for kind, stream in (("color", rs.stream.color), ("depth", rs.stream.depth)):
            if getattr(c, kind):
                streams[kind] = profile.get_stream(stream).as_video_stream_profile()
        primary = streams.get("color") or streams["depth"]
        self._set_intrinsics(_intrinsics(primary, depth_scale))
        self.depth_intrinsics = (_intrinsics(streams["depth"], depth_scale)
                                 if "depth" in streams and not c.align_depth else None)
        mode = {"width": primary.width(), "height": primary.height(), "fps": primary.fps(),
                "fourcc": primary.format().name.upper(), "serial": _info(rs, device, "serial_number"),
                "device": _info(rs, device, "name"), "aligned": bool(c.align_depth)}
        if "depth" in streams:
            d = streams["depth"]
            mode.update(depth_width=d.width(), depth_height=d.height(), depth_scale=depth_scale)
        firmware = _info(rs, device, "firmware_version")
        if firmware:
            mode["firmware"] = firmware
        if c.playback:
            mode["playback"] = c.playback
        self._set_mode(**mode)

    def _read(self, timeout_s: float) -> RawFrame | None:
        rs = import_pyrealsense2()
        c = self.config
        ok, frames = self._pipe.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        if not ok:
            if (self._playback is not None and not c.loop
                    and self._playback.current_status() == rs.playback_status.stopped):
                raise StreamEnded(f"end of RealSense recording {c.playback} (set loop = true "
                                  "to repeat it)")
            return None
        colour = frames.get_color_frame() if c.color else None
        depth = frames.get_depth_frame() if c.depth else None
        if (c.color and not colour) or (c.depth and not depth):
            return None  # an incomplete set while the streams start
        primary = colour or depth
        number = int(primary.get_frame_number())
        if number == self._last_number:
            return None  # a set repeated because only the other stream advanced
        if colour and depth and not self._matched(colour, depth):
            return None  # wait for the depth frame taken with this colour frame
        self._last_number = number
        if self._align is not None:
            frames = self._align.process(frames)
            depth = frames.get_depth_frame()
        if not self._domain_reported:
            self._domain_reported = True
            self._set_mode(**self._mode, timestamp_domain=primary.get_frame_timestamp_domain().name)
        return RawFrame(color=_copy(colour), depth=_copy(depth),
                        t_device=primary.get_timestamp() / 1000.0, device_index=number,
                        t_capture=host_capture_time(rs, primary))

    def _matched(self, colour: Any, depth: Any) -> bool:
        """Whether colour and depth were captured together (timestamps within half a period).

        The syncer may hand over a new colour frame with the previous depth frame before the
        matching one arrives; such a set is skipped. After a few unmatched sets in a row (the
        streams really are apart) frames are delivered anyway, with a warning.
        """
        skew_ms = abs(colour.get_timestamp() - depth.get_timestamp())
        if skew_ms <= 500.0 * self.period_s:
            self._unmatched = 0
            return True
        self._unmatched += 1
        if self._unmatched < 4:
            return False
        self._warn(f"colour and depth are {skew_ms:.0f} ms apart: frames are not synchronised")
        return True

    def _close(self) -> None:
        pipe, self._pipe = self._pipe, None
        self._align = self._playback = None
        if pipe is not None:
            try:
                pipe.stop()
            except RuntimeError:  # already stopped (device gone): nothing left to release
                pass


def host_capture_time(rs: Any, frame: Any, now: float | None = None,
                      wall: float | None = None) -> float | None:
    """When the frame was captured, on the host monotonic clock; None when unknown.

    Uses the frame timestamp when its domain is the host clock (``global_time``), else the
    driver's ``time_of_arrival`` metadata; both are wall-clock milliseconds, mapped onto the
    monotonic clock. Values not in the last second are rejected (clock domains differ).
    """
    now = time.monotonic() if now is None else now
    wall = time.time() if wall is None else wall
    candidates = []
    if frame.get_frame_timestamp_domain() == rs.timestamp_domain.global_time:
        candidates.append(frame.get_timestamp())
    if frame.supports_frame_metadata(rs.frame_metadata_value.time_of_arrival):
        candidates.append(float(frame.get_frame_metadata(rs.frame_metadata_value.time_of_arrival)))
    for wall_ms in candidates:
        t = now - (wall - wall_ms / 1000.0)
        if now - 1.0 < t <= now:
            return t
    return None


def set_sensor_option(rs: Any, sensor: Any, name: str, value: float) -> str:
    """Set option ``name`` on ``sensor``; returns "" on success, else what went wrong."""
    opt = getattr(rs.option, name, None)
    if opt is None:
        return f"{name!r} is not a librealsense option name (see rs.option)"
    if sensor is None:
        return f"{name}: the device has no such sensor"
    if not sensor.supports(opt):
        return f"{name} is not supported by the {_sensor_name(rs, sensor)} sensor; ignored"
    if sensor.is_option_read_only(opt):
        return f"{name} is read-only on the {_sensor_name(rs, sensor)} sensor; ignored"
    rng = sensor.get_option_range(opt)
    if not rng.min <= value <= rng.max:
        return f"{name} = {value:g} is outside {rng.min:g}..{rng.max:g}; ignored"
    try:
        sensor.set_option(opt, value)
    except RuntimeError as exc:
        return f"{name} = {value:g} was refused: {exc}"
    return ""


def device_modes(device: Any) -> tuple[CameraMode, ...]:
    """Every video mode of every sensor, fps merged per (stream, format, size)."""
    rates: dict[tuple[str, str, int, int], set[float]] = {}
    for sensor in device.query_sensors():
        for prof in sensor.get_stream_profiles():
            if not prof.is_video_stream_profile():
                continue
            v = prof.as_video_stream_profile()
            key = (prof.stream_type().name, prof.format().name, v.width(), v.height())
            rates.setdefault(key, set()).add(float(prof.fps()))
    ordered = sorted(rates.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[0][2] * kv[0][3]))
    return tuple(CameraMode(stream, fmt, w, h, tuple(sorted(fps, reverse=True)))
                 for (stream, fmt, w, h), fps in ordered)


def _sensor_for(device: Any, stream: Any) -> Any:
    """The sensor that produces ``stream`` (sensor types are not reliable on software devices
    and recordings, so look at what each sensor streams)."""
    for sensor in device.query_sensors():
        if any(p.stream_type() == stream for p in sensor.get_stream_profiles()):
            return sensor
    return None


def _sensor_name(rs: Any, sensor: Any) -> str:
    return sensor.get_info(rs.camera_info.name) if sensor.supports(rs.camera_info.name) else "?"


def _info(rs: Any, device: Any, key: str) -> str:
    field = getattr(rs.camera_info, key)
    return device.get_info(field) if device.supports(field) else ""


def _intrinsics(stream: Any, depth_scale: float | None) -> CameraIntrinsics:
    i = stream.get_intrinsics()
    return CameraIntrinsics(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy, i.model.name,
                            tuple(float(x) for x in i.coeffs), depth_scale)


def _copy(frame: Any) -> np.ndarray | None:
    # librealsense recycles frame buffers: a frame kept by the recorder or the GUI is copied.
    if not frame:
        return None
    array = np.array(frame.get_data(), copy=True)
    array.flags.writeable = False
    return array
