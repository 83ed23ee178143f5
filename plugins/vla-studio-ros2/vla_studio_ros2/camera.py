"""Camera kind ``ros2``: a ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` topic.

Frames arrive on Zenoh's threads and wait in a short queue for the camera's capture thread
(the base class's), which decodes them: the header stamp becomes the frame's device time, the
host arrival time its capture time. Encodings: ``rgb8``, ``bgr8``, ``mono8`` (raw), JPEG or PNG
(compressed).
"""

from __future__ import annotations

import collections
import logging
import queue
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_studio.core.config import option
from vla_studio.devices.cameras.base import Camera, CameraConfig, RawFrame

from vla_studio_ros2 import sdk
from vla_studio_ros2.messages_util import qos_profile, stamp_seconds

log = logging.getLogger(__name__)
QUEUE_FRAMES = 4  # newest frames kept for the capture thread; older ones are dropped


@dataclass(frozen=True)
class Ros2CameraConfig(CameraConfig):
    """A ``[[cameras]]`` table with ``type = "ros2"``."""

    topic: str = option("/camera/image_raw", help="image topic")
    compressed: bool = option(False, help="sensor_msgs/CompressedImage instead of Image")
    router: str = option(sdk.DEFAULT_ROUTER, help="Zenoh router, 'tcp/HOST:PORT'")
    domain_id: int = option(0, min=0, max=232, help="ROS_DOMAIN_ID")
    node_name: str = option("vla_studio_camera", help="ROS 2 node name of this subscriber")
    reliability: str = option("best_effort", choices=("reliable", "best_effort"),
                              help="QoS reliability (camera drivers publish best effort)")


def decode_image(msg: Any) -> np.ndarray:
    """An RGB uint8 image from a ``sensor_msgs/Image``.

    Raises:
        ValueError: an encoding VLA Studio does not read.
    """
    h, w, enc = int(msg.height), int(msg.width), str(msg.encoding).lower()
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1}.get(enc)
    if channels is None:
        raise ValueError(f"image encoding {msg.encoding!r} is not supported (rgb8, bgr8, mono8)")
    step = int(msg.step) or w * channels
    rows = data[: h * step].reshape(h, step)[:, : w * channels]
    img = rows.reshape(h, w, channels)
    if enc == "bgr8":
        img = img[..., ::-1]
    elif enc == "mono8":
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def decode_compressed(msg: Any) -> np.ndarray:
    """An RGB uint8 image from a ``sensor_msgs/CompressedImage`` (JPEG or PNG)."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"compressed image ({msg.format!r}) could not be decoded")
    return np.ascontiguousarray(bgr[..., ::-1])


class Ros2Camera(Camera):
    """Images from a ROS 2 topic, with the message's header stamp as device time."""

    config_class = Ros2CameraConfig
    config: Ros2CameraConfig

    def __init__(self, config: Ros2CameraConfig) -> None:
        super().__init__(config)
        self._frames: queue.Queue[tuple[Any, float]] = queue.Queue(QUEUE_FRAMES)
        self._sub: Any = None
        self._session: Any = None
        self._count = 0
        self._mode_set = False
        # stamp-to-arrival delay of recent frames, seconds (wall clocks: same machine only)
        self.latencies: collections.deque[float] = collections.deque(maxlen=2000)

    def _open(self) -> None:
        from zenoh_ros2_sdk import ROS2Subscriber

        c = self.config
        host, port = sdk.parse_router(c.router)
        self._session = sdk.acquire(c.router)
        msg_type = "sensor_msgs/msg/CompressedImage" if c.compressed else "sensor_msgs/msg/Image"
        try:
            self._sub = ROS2Subscriber(c.topic, msg_type, self._on_image, node_name=c.node_name,
                                       domain_id=c.domain_id, router_ip=host, router_port=port,
                                       qos=qos_profile(c.reliability, QUEUE_FRAMES))
        except Exception:
            self._session = None
            sdk.release()
            raise
        self._mode_set = False

    def _on_image(self, msg: Any) -> None:
        """Zenoh's thread: queue the message, dropping the oldest when the reader is late."""
        item = (msg, time.monotonic())
        self.latencies.append(time.time() - stamp_seconds(msg.header.stamp))
        try:
            self._frames.put_nowait(item)
        except queue.Full:
            try:
                self._frames.get_nowait()
            except queue.Empty:
                pass
            try:
                self._frames.put_nowait(item)
            except queue.Full:
                pass

    def _read(self, timeout_s: float) -> RawFrame | None:
        try:
            msg, t_arrival = self._frames.get(timeout=timeout_s)
        except queue.Empty:
            return None
        img = decode_compressed(msg) if self.config.compressed else decode_image(msg)
        if not self._mode_set:
            self._set_mode(width=img.shape[1], height=img.shape[0], fps=self.config.fps,
                           fourcc="JPEG" if self.config.compressed else "RGB3")
            self._mode_set = True
        self._count += 1
        return RawFrame(color=img, t_device=stamp_seconds(msg.header.stamp),
                        device_index=self._count, t_capture=t_arrival)

    def _close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                sub.close()
            except Exception as exc:
                log.debug("closing the image subscriber failed: %s", exc)
        if self._session is not None:
            self._session = None
            sdk.release()
