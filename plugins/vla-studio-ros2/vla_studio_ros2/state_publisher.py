"""Observer kind ``ros2``: VLA Studio's own state on ROS 2 topics, so ROS tools (``ros2 topic
echo``, rqt, rviz, a rosbag) can watch a run.

```
 loop.snapshot --wait_newer()--> "ros2-state" --> PREFIX/joint_states       sensor_msgs/JointState
                                              --> PREFIX/action             Float64MultiArray
                                              --> PREFIX/confidence         std_msgs/Float32
                                              --> PREFIX/CAMERA/image_raw   sensor_msgs/Image
 latch listener (wakes) ---------> "ros2-estop" --> PREFIX/estop            std_msgs/Bool
                                               --> PREFIX/status            std_msgs/String (JSON)
```
"ros2-state" follows the loop's latest step at its own pace (a slow Zenoh put skips steps, never
delays the loop). "ros2-estop" publishes the e-stop the moment the latch changes (the latch's
listener only wakes it: no I/O on the thread that pressed STOP) and every ``ESTOP_REFRESH_S``,
so a stop shows on the graph at once, whether or not the loop still ticks. Header stamps are
wall-clock times (ROS 2's convention) converted from the steps' host monotonic stamps. The
action is the one the robot received; ``confidence`` is published on policy steps only.
A profile adds it as::

    [[observers]]
    type = "ros2"
    router = "tcp/127.0.0.1:7447"
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_studio.core.config import option
from vla_studio.core.safety import SafetyFlag
from vla_studio.core.types import Step
from vla_studio.devices.base import DeviceError
from vla_studio.devices.observers import ObserverConfig, ObserverContext, StationObserver

from vla_studio_ros2 import sdk
from vla_studio_ros2.messages_util import Stamp, header, qos_profile

log = logging.getLogger(__name__)
ESTOP_REFRESH_S = 0.2  # longest time between two e-stop messages


@dataclass(frozen=True)
class Ros2StateConfig(ObserverConfig):
    """An ``[[observers]]`` table with ``type = "ros2"``."""

    router: str = option(sdk.DEFAULT_ROUTER, help="Zenoh router, 'tcp/HOST:PORT'")
    domain_id: int = option(0, min=0, max=232, help="ROS_DOMAIN_ID")
    node_name: str = option("vla_studio_state", help="ROS 2 node name of the publisher")
    prefix: str = option("/vla_studio/state", help="namespace of the topics it publishes")
    rate_hz: float = option(0.0, min=0.0, max=1000.0,
                            help="most steps published per second (0 = every step)")
    images: bool = option(True, help="publish the cameras' latest frames (sensor_msgs/Image)")
    image_rate_hz: float = option(5.0, min=0.1, max=60.0, help="frames per second per camera")
    reliability: str = option("reliable", choices=("reliable", "best_effort"),
                              help="QoS reliability of the state topics (images: best effort)")


def wall_stamp(t_monotonic: float) -> Stamp:
    """The wall-clock ``Stamp`` of a host monotonic time (ROS 2 stamps in wall time)."""
    ns = time.time_ns() - int((time.monotonic() - t_monotonic) * 1e9)
    return Stamp(ns // 1_000_000_000, ns % 1_000_000_000)


def status_text(step: Step | None, estop: bool, reason: str) -> str:
    """The JSON of ``PREFIX/status``: what drives the robot and why it holds."""
    flags = [] if step is None else [f.name.lower() for f in SafetyFlag
                                      if f.value and step.safety_flags & f.value]
    return json.dumps({
        "tick": None if step is None else step.index,
        "source": None if step is None else step.source.value,
        "hold_reason": "" if step is None else step.hold_reason,
        "safety_flags": flags,
        "estop": estop,
        "estop_reason": reason,
    })


class Ros2StatePublisher(StationObserver):
    """Publishes joint states, actions, the e-stop, policy confidence and camera frames.

    Attributes:
        published: messages published so far, by topic suffix (``"joint_states"``, ...).
    """

    config_class = Ros2StateConfig
    config: Ros2StateConfig

    def __init__(self, config: Ros2StateConfig) -> None:
        super().__init__(config)
        self._ctx: ObserverContext | None = None
        self._session: Any = None
        self._pubs: dict[str, Any] = {}
        self._classes: dict[str, type] = {}
        self._thread: threading.Thread | None = None
        self._estop_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._estop_wake = threading.Event()
        self._errors: set[str] = set()
        self.published: collections.Counter[str] = collections.Counter()

    # ----- lifecycle --------------------------------------------------------------------------
    def start(self, context: ObserverContext) -> None:
        if self._thread is not None:
            return
        self._ctx = context
        try:
            self._session = sdk.acquire(self.config.router)
            self._open(context)
        except Exception as exc:
            self._close()
            raise DeviceError(f"cannot publish VLA Studio's state through {self.config.router}: "
                              f"{exc}") from None
        self._stop.clear()
        context.latch.add_listener(lambda tripped, event: self._estop_wake.set())
        self._thread = threading.Thread(target=self._run, name="ros2-state", daemon=True)
        self._estop_thread = threading.Thread(target=self._run_estop, name="ros2-estop",
                                              daemon=True)
        self._thread.start()
        self._estop_thread.start()
        log.info("ROS 2 state of %r on %s/* via %s", context.station_name, self.config.prefix,
                 self.config.router)

    def stop(self) -> None:
        self._stop.set()
        self._estop_wake.set()
        threads = (self._thread, self._estop_thread)
        self._thread = self._estop_thread = None
        for thread in threads:
            if thread is not None:
                thread.join(timeout=5.0)
                if thread.is_alive():
                    log.error("the ROS 2 state publisher's %s thread did not stop within 5 s",
                              thread.name)
        self._close()

    def _open(self, ctx: ObserverContext) -> None:
        from zenoh_ros2_sdk import ROS2Publisher

        c = self.config
        host, port = sdk.parse_router(c.router)
        common = dict(node_name=c.node_name, domain_id=c.domain_id, router_ip=host,
                      router_port=port)
        qos = qos_profile(c.reliability, 10)
        p = c.prefix.rstrip("/")
        for key, topic, kind in (
                ("joint_states", "joint_states", "sensor_msgs/msg/JointState"),
                ("action", "action", "std_msgs/msg/Float64MultiArray"),
                ("estop", "estop", "std_msgs/msg/Bool"),
                ("confidence", "confidence", "std_msgs/msg/Float32"),
                ("status", "status", "std_msgs/msg/String")):
            self._pubs[key] = ROS2Publisher(f"{p}/{topic}", kind, qos=qos, **common)
        if c.images:
            best = qos_profile("best_effort", 2)
            for cam in ctx.camera_names:
                self._pubs[f"image:{cam}"] = ROS2Publisher(f"{p}/{cam}/image_raw",
                                                           "sensor_msgs/msg/Image", qos=best,
                                                           **common)
        for name in ("std_msgs/msg/Header", "builtin_interfaces/msg/Time",
                     "std_msgs/msg/MultiArrayLayout", "std_msgs/msg/MultiArrayDimension"):
            self._classes[name] = sdk.message_class(self._session, name)

    def _close(self) -> None:
        for pub in self._pubs.values():
            try:
                pub.close()
            except Exception as exc:
                log.debug("closing a ROS 2 publisher failed: %s", exc)
        self._pubs = {}
        if self._session is not None:
            self._session = None
            sdk.release()

    # ----- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        ctx = self._ctx
        assert ctx is not None
        min_gap = 1.0 / self.config.rate_hz if self.config.rate_hz > 0 else 0.0
        image_gap = 1.0 / self.config.image_rate_hz
        seq, last_step_t = 0, -math.inf
        last_image: dict[str, float] = {}
        while not self._stop.is_set():
            step, new_seq = ctx.snapshot.wait_newer(seq, ESTOP_REFRESH_S)
            now = time.monotonic()
            fresh = new_seq != seq and step is not None
            seq = new_seq
            if not fresh or now - last_step_t < min_gap:
                continue
            last_step_t = now
            self._publish_step(ctx, step)
            if self.config.images:
                for cam, frame in step.observation.frames.items():
                    if frame is None or frame.color is None or \
                            now - last_image.get(cam, -math.inf) < image_gap:
                        continue
                    last_image[cam] = now
                    self._guard(f"image:{cam}", lambda: self._publish_image(cam, frame))

    def _run_estop(self) -> None:
        ctx = self._ctx
        assert ctx is not None
        while not self._stop.is_set():
            self._estop_wake.clear()
            tripped, event, step = ctx.latch.is_tripped, ctx.latch.event, ctx.snapshot.get()
            reason = event.reason if tripped and event is not None else ""
            self._guard("estop", lambda: self._pubs["estop"].publish(data=tripped))
            self._guard("status", lambda: self._pubs["status"].publish(
                data=status_text(step, tripped, reason)))
            self._estop_wake.wait(ESTOP_REFRESH_S)

    def _publish_step(self, ctx: ObserverContext, step: Step) -> None:
        stamp = wall_stamp(step.t)
        state = step.observation.state
        if "joint_pos" in state:
            feature = ctx.state_features.get("joint_pos")
            q = np.asarray(state["joint_pos"], dtype=np.float64).reshape(-1)
            names = list(feature.names) if feature is not None and feature.names else \
                [f"joint{i + 1}" for i in range(q.size)]
            dq = np.asarray(state.get("joint_vel", np.zeros(0)), dtype=np.float64).reshape(-1)
            if dq.size != q.size:
                dq = np.zeros(0)
            if "gripper" in state:  # the opening (0..1) as one more "joint", as arms publish it
                names.append("gripper")
                q = np.append(q, float(np.asarray(state["gripper"]).reshape(-1)[0]))
                dq = np.append(dq, 0.0) if dq.size else dq
            self._guard("joint_states", lambda: self._pubs["joint_states"].publish(
                header=header(self._classes, stamp, ""), name=names, position=q,
                velocity=dq, effort=np.zeros(0)))
        action = np.asarray(step.action, dtype=np.float64).reshape(-1)
        dim = self._classes["std_msgs/msg/MultiArrayDimension"](
            label=" ".join(ctx.action_names), size=action.size, stride=action.size)
        layout = self._classes["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0)
        self._guard("action", lambda: self._pubs["action"].publish(layout=layout, data=action))
        confidence = step.extras.get("confidence")
        if confidence is not None:
            value = float(np.asarray(confidence, dtype=np.float64).reshape(-1)[0])
            self._guard("confidence", lambda: self._pubs["confidence"].publish(data=value))

    def _publish_image(self, cam: str, frame: Any) -> None:
        img = np.ascontiguousarray(frame.color, dtype=np.uint8)
        h, w = img.shape[:2]
        self._pubs[f"image:{cam}"].publish(
            header=header(self._classes, wall_stamp(frame.t_capture), cam), height=h, width=w,
            encoding="rgb8", is_bigendian=0, step=w * 3, data=img.reshape(-1))

    def _guard(self, key: str, publish: Any) -> None:
        """Publish, counting it; log each distinct failure once (the run goes on regardless)."""
        try:
            publish()
        except Exception as exc:
            message = f"{key}: {exc}"
            if message not in self._errors:
                self._errors.add(message)
                log.error("ROS 2 state publisher: %s", message)
            return
        self.published[key.split(":")[0]] += 1
