"""Robot kind ``ros2``: drive a ROS 2 arm through its topics, over Zenoh (rmw_zenoh's format).

```
 arm --sensor_msgs/JointState (joint_state_topic)----> latest state  (subscriber callbacks)
     --geometry_msgs/PoseStamped (ee_pose_topic)-----> latest pose
 control loop --ee_delta--> geometry_msgs/Twist (twist_topic): delta / period, base frame
              --joint_position--> trajectory_msgs/JointTrajectory (trajectory_topic), one point
              --gripper--> std_msgs/Float32 (gripper_topic): opening, 1 = open
 "estop-relay" --emergency_hold()--> std_msgs/Bool true (estop_topic) + a zero Twist
 "ros2-watchdog" -- no command for watchdog_periods --> a zero Twist / a hold trajectory
```
The arm's state is only as good as its age: a JointState (or pose) older than
``state_timeout_ms`` is left out of the observation, so the command gate holds the robot and
raises ``STATE_INVALID`` until the topic speaks again. The arm must stop by itself when commands
stop (as MoveIt Servo's incoming-command timeout does): VLA Studio's process may die.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from vla_studio.core.action_space import EE_DELTA, JOINT_POSITION, ActionSpace, JointLimits
from vla_studio.core.config import option
from vla_studio.core.types import Feature
from vla_studio.devices.base import DeviceError, Robot, RobotConfig

from vla_studio_ros2 import sdk
from vla_studio_ros2.messages_util import (Stamp, header, qos_profile, stamp_seconds)

log = logging.getLogger(__name__)

DEFAULT_JOINTS = tuple(f"joint{i}" for i in range(1, 8))


@dataclass(frozen=True)
class Ros2RobotConfig(RobotConfig):
    """The ``[robot]`` table of a station with ``type = "ros2"``."""

    router: str = option(sdk.DEFAULT_ROUTER, help="Zenoh router, 'tcp/HOST:PORT'")
    domain_id: int = option(0, min=0, max=232, help="ROS_DOMAIN_ID")
    node_name: str = option("vla_studio", help="ROS 2 node name of the bridge")
    namespace: str = option("/", help="ROS 2 namespace of the bridge's node")
    joint_state_topic: str = option("/joint_states", help="sensor_msgs/JointState in")
    ee_pose_topic: str = option("/ee_pose", help="geometry_msgs/PoseStamped in ('' = none)")
    twist_topic: str = option("/cmd_twist", help="geometry_msgs/Twist out (ee_delta)")
    trajectory_topic: str = option("/joint_trajectory",
                                   help="trajectory_msgs/JointTrajectory out (joint_position)")
    gripper_topic: str = option("/gripper/command", help="std_msgs/Float32 opening out ('' = none)")
    estop_topic: str = option("/vla_studio/estop", help="std_msgs/Bool out, true = stop now")
    joint_names: tuple[str, ...] = option(default_factory=lambda: DEFAULT_JOINTS,
                                          help="the arm's joints, in action order")
    joint_lower: tuple[float, ...] = option(default_factory=lambda: (-2.9,) * 7,
                                            help="joint position lower limits, rad")
    joint_upper: tuple[float, ...] = option(default_factory=lambda: (2.9,) * 7,
                                            help="joint position upper limits, rad")
    joint_max_velocity: tuple[float, ...] = option(default_factory=lambda: (2.0,) * 7,
                                                   help="joint top speeds, rad/s")
    gripper_joint: str = option("gripper", help="JointState entry of the gripper ('' = none)")
    gripper_open_position: float = option(1.0, min=1e-6, help="its position when fully open")
    state_timeout_ms: float = option(200.0, min=10.0, max=10000.0,
                                     help="older arm state holds the robot")
    watchdog_periods: float = option(3.0, min=1.5, max=100.0,
                                     help="send a stop when no command came for this many periods")
    reliability: str = option("reliable", choices=("reliable", "best_effort"),
                              help="QoS reliability of every topic")
    depth: int = option(10, min=1, max=1000, help="QoS history depth")


@dataclass(frozen=True)
class ArmReading:
    """The latest arm state received (immutable: written by Zenoh's threads, read by the loop)."""

    position: np.ndarray
    velocity: np.ndarray
    gripper: float | None
    t_device: float  # header stamp, seconds (the arm's clock)
    t_host: float  # host monotonic arrival time
    frame_id: str = ""


class Ros2Robot(Robot):
    """A ROS 2 arm behind JointState/PoseStamped in and Twist or JointTrajectory out.

    Attributes:
        watchdog_stops: zero commands the driver's watchdog sent because commands stopped.
        states_received: JointState messages received.
        latencies: stamp-to-arrival delay of recent JointStates, seconds (wall clocks; only
            meaningful when the arm runs on this machine).
    """

    config_class: ClassVar[type[RobotConfig]] = Ros2RobotConfig
    config: Ros2RobotConfig
    supported_action_kinds = (EE_DELTA, JOINT_POSITION)
    simulated = False

    def __init__(self, config: Ros2RobotConfig | None = None, action_kind: str = EE_DELTA) -> None:
        super().__init__(config or Ros2RobotConfig(name="ros2"), action_kind)
        c = self.config
        n = len(c.joint_names)
        for name in ("joint_lower", "joint_upper", "joint_max_velocity"):
            if len(getattr(c, name)) != n:
                raise DeviceError(f"robot {self.name!r}: {name} has {len(getattr(c, name))} "
                                  f"values for {n} joint_names")
        self._session: Any = None
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._classes: dict[str, type] = {}
        self._arm: ArmReading | None = None
        self._pose: tuple[np.ndarray, np.ndarray, float] | None = None  # pos, quat wxyz, t_host
        self._pub_lock = threading.Lock()  # publishers are shared by loop, relay and watchdog
        self._last_command = 0.0
        self._moving = False
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self.watchdog_stops = 0
        self.states_received = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=2000)

    # ----- schema -----------------------------------------------------------------------------
    @property
    def action_space(self) -> ActionSpace:
        if self.action_kind == JOINT_POSITION:
            return ActionSpace.joint_position(tuple(self.config.joint_names))
        return ActionSpace.ee_delta()

    @property
    def joint_limits(self) -> JointLimits:
        c = self.config
        return JointLimits(tuple(c.joint_names), tuple(c.joint_lower), tuple(c.joint_upper),
                           tuple(c.joint_max_velocity))

    @property
    def observation_features(self) -> dict[str, Feature]:
        names = tuple(self.config.joint_names)
        features = {"joint_pos": Feature("float32", (len(names),), names, "rad"),
                    "joint_vel": Feature("float32", (len(names),), names, "rad/s")}
        if self.config.ee_pose_topic:
            features["ee_pos"] = Feature("float32", (3,), ("x", "y", "z"), "m")
            features["ee_quat"] = Feature("float32", (4,), ("w", "x", "y", "z"))
        if self.config.gripper_joint:
            features["gripper"] = Feature("float32", (1,), ("opening",))
        return features

    # ----- lifecycle --------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._session is not None

    def connect(self) -> None:
        if self._session is not None:
            return
        c = self.config
        try:
            self._session = sdk.acquire(c.router)
            self._open_topics()
        except (sdk.Ros2Error, ValueError) as exc:
            self._close_topics()
            raise DeviceError(f"robot {self.name!r}: {exc}") from None
        except Exception as exc:
            self._close_topics()
            raise DeviceError(f"robot {self.name!r}: cannot open its ROS 2 topics through "
                              f"{c.router}: {exc}. Is a Zenoh router running there "
                              "(`zenohd`, or rmw_zenoh's `ros2 run rmw_zenoh_cpp rmw_zenohd`)?"
                              ) from None
        self._watchdog_stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="ros2-watchdog", daemon=True)
        self._watchdog.start()
        log.info("ROS 2 robot %r: %s in, %s out, via %s", self.name, c.joint_state_topic,
                 c.twist_topic if self.action_kind == EE_DELTA else c.trajectory_topic, c.router)

    def disconnect(self) -> None:
        self._watchdog_stop.set()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.join(timeout=2.0)
        if self._session is not None:
            try:
                self._publish_stop()
            except Exception as exc:
                log.warning("ROS 2 robot %r: the stop at disconnect failed: %s", self.name, exc)
        self._close_topics()

    def _open_topics(self) -> None:
        from zenoh_ros2_sdk import ROS2Publisher, ROS2Subscriber

        c = self.config
        qos = qos_profile(c.reliability, c.depth)
        common = dict(node_name=c.node_name, namespace=c.namespace, domain_id=c.domain_id,
                      qos=qos, **_router_kwargs(c.router))
        self._subs.append(ROS2Subscriber(c.joint_state_topic, "sensor_msgs/msg/JointState",
                                         self._on_joint_state, **common))
        if c.ee_pose_topic:
            self._subs.append(ROS2Subscriber(c.ee_pose_topic, "geometry_msgs/msg/PoseStamped",
                                             self._on_pose, **common))
        if self.action_kind == EE_DELTA:
            self._pubs["twist"] = ROS2Publisher(c.twist_topic, "geometry_msgs/msg/Twist", **common)
        else:
            self._pubs["trajectory"] = ROS2Publisher(
                c.trajectory_topic, "trajectory_msgs/msg/JointTrajectory", **common)
        if c.gripper_topic:
            self._pubs["gripper"] = ROS2Publisher(c.gripper_topic, "std_msgs/msg/Float32",
                                                  **common)
        self._pubs["estop"] = ROS2Publisher(c.estop_topic, "std_msgs/msg/Bool", **common)
        for name in ("geometry_msgs/msg/Vector3", "std_msgs/msg/Header",
                     "builtin_interfaces/msg/Time", "builtin_interfaces/msg/Duration",
                     "trajectory_msgs/msg/JointTrajectoryPoint"):
            self._classes[name] = sdk.message_class(self._session, name)

    def _close_topics(self) -> None:
        for endpoint in [*self._subs, *self._pubs.values()]:
            try:
                endpoint.close()
            except Exception as exc:
                log.debug("closing a ROS 2 endpoint failed: %s", exc)
        self._subs, self._pubs = [], {}
        if self._session is not None:
            self._session = None
            sdk.release()

    # ----- subscriptions (Zenoh's threads) ----------------------------------------------------
    def _on_joint_state(self, msg: Any) -> None:
        names = list(msg.name)
        pos = np.asarray(msg.position, dtype=np.float64)
        vel = np.asarray(msg.velocity, dtype=np.float64)
        index = {n: i for i, n in enumerate(names)}
        want = self.config.joint_names
        if not all(n in index for n in want):
            return  # another robot's joints on the same topic (or a partial message)
        order = [index[n] for n in want]
        position = pos[order]
        velocity = vel[order] if vel.size == pos.size else np.zeros(len(want))
        gripper = None
        g = self.config.gripper_joint
        if g and g in index and index[g] < pos.size:
            gripper = float(pos[index[g]]) / self.config.gripper_open_position
        stamp = stamp_seconds(msg.header.stamp)
        self._arm = ArmReading(position, velocity, gripper, stamp, time.monotonic(),
                               str(msg.header.frame_id))
        self.latencies.append(time.time() - stamp)  # both wall clocks: same machine only
        self.states_received += 1

    def _on_pose(self, msg: Any) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self._pose = (np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z]),
                      time.monotonic())

    @property
    def arm_state(self) -> ArmReading | None:
        """The latest JointState received (any age), for diagnostics and tests."""
        return self._arm

    # ----- loop thread ------------------------------------------------------------------------
    def get_observation(self) -> dict[str, np.ndarray]:
        if self._session is None:
            raise DeviceError(f"robot {self.name!r} is not connected")
        now = time.monotonic()
        timeout = self.config.state_timeout_ms / 1000.0
        obs: dict[str, np.ndarray] = {}
        arm = self._arm
        # A silent topic leaves the state out: the command gate holds the robot (STATE_INVALID)
        if arm is not None and now - arm.t_host <= timeout:
            obs["joint_pos"] = arm.position.astype(np.float32)
            obs["joint_vel"] = arm.velocity.astype(np.float32)
            if self.config.gripper_joint and arm.gripper is not None:
                obs["gripper"] = np.array([min(1.0, max(0.0, arm.gripper))], np.float32)
        pose = self._pose
        if pose is not None and now - pose[2] <= timeout:
            obs["ee_pos"] = pose[0].astype(np.float32)
            obs["ee_quat"] = pose[1].astype(np.float32)
        return obs

    def _send(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if self.emergency_held:
            self._publish_stop()
            return a
        with self._pub_lock:
            if self.action_kind == EE_DELTA:
                self._publish_twist(a[:6] / self.control_period_s)
            else:
                lim = self.joint_limits
                a[:-1] = np.clip(a[:-1], lim.lower, lim.upper)
                self._publish_trajectory(a[:-1])
            if "gripper" in self._pubs and math.isfinite(a[-1]):
                self._pubs["gripper"].publish(data=float(a[-1]))
            self._moving, self._last_command = True, time.monotonic()
        return a

    def hold(self, state: Mapping[str, np.ndarray]) -> np.ndarray:
        """A zero Twist (or the measured joints as the target); the gripper is left alone."""
        action = self.action_space.hold_action(state, self._last_sent)
        self._last_sent = action
        with self._pub_lock:
            if self.action_kind == EE_DELTA:
                self._publish_twist(np.zeros(6))
            else:
                self._publish_trajectory(action[:-1])
            self._moving = False
        return action

    # ----- emergency hold (the e-stop relay) --------------------------------------------------
    def _emergency_hold(self) -> None:
        """Bool true on the e-stop topic, then a zero Twist: two Zenoh puts, no waiting."""
        self._publish_stop()

    def _release_emergency_hold(self) -> None:
        with self._pub_lock:
            self._pubs["estop"].publish(data=False)

    # ----- internals --------------------------------------------------------------------------
    def _publish_stop(self) -> None:
        with self._pub_lock:
            pubs = self._pubs
            if "estop" in pubs:
                pubs["estop"].publish(data=True)
            if "twist" in pubs:
                self._publish_twist(np.zeros(6))
            self._moving = False

    def _publish_twist(self, v: np.ndarray) -> None:
        vec = self._classes["geometry_msgs/msg/Vector3"]
        self._pubs["twist"].publish(linear=vec(x=float(v[0]), y=float(v[1]), z=float(v[2])),
                                    angular=vec(x=float(v[3]), y=float(v[4]), z=float(v[5])))

    def _publish_trajectory(self, q: np.ndarray) -> None:
        point = self._classes["trajectory_msgs/msg/JointTrajectoryPoint"]
        duration = self._classes["builtin_interfaces/msg/Duration"]
        period = self.control_period_s
        p = point(positions=np.asarray(q, dtype=np.float64),
                  velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
                  time_from_start=duration(sec=int(period),
                                           nanosec=int(round((period % 1.0) * 1e9))))
        self._pubs["trajectory"].publish(
            header=header(self._classes, Stamp.now(), ""),
            joint_names=list(self.config.joint_names), points=[p])

    def _watch(self) -> None:
        period = self.control_period_s
        limit = self.config.watchdog_periods * period
        while not self._watchdog_stop.wait(period / 2.0):
            if not self._moving or time.monotonic() - self._last_command <= limit:
                continue
            try:
                with self._pub_lock:
                    if not self._moving:
                        continue
                    if self.action_kind == EE_DELTA:
                        self._publish_twist(np.zeros(6))
                    elif self._arm is not None:
                        self._publish_trajectory(self._arm.position)
                    self._moving = False
                self.watchdog_stops += 1
                log.warning("ROS 2 robot %r: no command for %.0f ms; sent a stop", self.name,
                            (time.monotonic() - self._last_command) * 1000.0)
            except Exception as exc:
                log.error("ROS 2 robot %r: the watchdog's stop failed: %s", self.name, exc)


def _router_kwargs(router: str) -> dict[str, Any]:
    host, port = sdk.parse_router(router)
    return {"router_ip": host, "router_port": port}
