"""A fake ROS 2 arm node, written with zenoh-ros2-sdk, and the Zenoh router it connects through.

Run as a child process by the tests (``ros2_processes.py``) or by hand for the example station::

    python plugins/vla-studio-ros2/tests/ros2_fake_arm.py --port 7447

It starts a Zenoh router listening on ``tcp/127.0.0.1:PORT`` only, then a node ``fake_arm`` that

* publishes ``/joint_states`` (7 joints + ``gripper``), ``/ee_pose`` and ``/camera/image_raw``
  (a 160x120 picture of the arm seen from above; ``/camera/image_raw/compressed`` as JPEG) at
  ``--rate`` Hz, each with the stamp and a sequence number (``frame_id`` ``"seq:N"``);
* integrates ``/cmd_twist`` into its end-effector position and stops by itself when no Twist came
  for 0.2 s (an arm-side command timeout, as MoveIt Servo's);
* moves its joints towards ``/joint_trajectory`` targets, its gripper to ``/gripper/command``;
* latches its own stop on ``/vla_studio/estop`` = true (and ignores motion commands then).

With ``--pattern``, joint positions and image pixels are a known function of the sequence number
(for the intact-delivery test). It prints ``ready`` once serving, ``estop true|false`` when the
stop topic changes, and answers ``twists`` with one line of the Twists it received
(``seq recv_wall_time`` pairs; the test encodes the sequence number in ``angular.z``). Commands
on stdin: ``silence`` / ``speak`` (stop / resume the joint states), ``twists``, ``quit``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np


JOINTS = [f"joint{i}" for i in range(1, 8)]
W, H = 160, 120


def pattern_joints(seq: int) -> list[float]:
    return [round(0.001 * seq + 0.1 * i, 6) for i in range(7)] + [0.5]


def pattern_image(seq: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = seq % 256
    img[..., 1] = np.arange(W, dtype=np.uint8)[None, :]
    img[..., 2] = np.arange(H, dtype=np.uint8)[:, None]
    return img


def draw_arm(pos: np.ndarray, gripper: float, estop: bool) -> np.ndarray:
    """A top view: the table, the base, a line to the tool and the tool as a disc."""
    import cv2

    img = np.full((H, W, 3), (60, 90, 120) if not estop else (140, 40, 40), np.uint8)
    px = lambda x, y: (int(W / 2 - y * 150), int(H - 10 - x * 150))  # noqa: E731
    cv2.line(img, px(0, 0), px(pos[0], pos[1]), (230, 230, 230), 3)
    cv2.circle(img, px(0, 0), 8, (40, 40, 40), -1)
    cv2.circle(img, px(pos[0], pos[1]), int(4 + 6 * (1 - pos[2])), (240, 200, 60), -1)
    cv2.putText(img, f"z {pos[2]:.2f} g {gripper:.1f}", (4, 12), cv2.FONT_HERSHEY_SIMPLEX,
                0.35, (255, 255, 255), 1)
    return img


class FakeArm:
    def __init__(self, port: int, rate: float, pattern: bool) -> None:
        from zenoh_ros2_sdk import ROS2Publisher, ROS2Subscriber
        from zenoh_ros2_sdk.qos import QosProfile, QosReliability

        from vla_studio_ros2 import sdk

        sdk.prepare()
        self.rate, self.pattern = rate, pattern
        self.pos = np.array([0.45, 0.0, 0.3])
        self.vel = np.zeros(3)
        self.q = np.zeros(7)
        self.q_target = self.q.copy()
        self.gripper = 1.0
        self.estop = False
        self.silent = False
        self.last_twist = 0.0
        self.twists: list[tuple[int, float]] = []
        self.lock = threading.Lock()
        common = dict(node_name="fake_arm", router_ip="127.0.0.1", router_port=port)
        best = QosProfile(reliability=QosReliability.BEST_EFFORT, history_depth=4)
        self.session = sdk.acquire(f"tcp/127.0.0.1:{port}")
        self.js = ROS2Publisher("/joint_states", "sensor_msgs/msg/JointState", **common)
        self.pose = ROS2Publisher("/ee_pose", "geometry_msgs/msg/PoseStamped", **common)
        self.image = ROS2Publisher("/camera/image_raw", "sensor_msgs/msg/Image", qos=best,
                                   **common)
        self.jpeg = ROS2Publisher("/camera/image_raw/compressed",
                                  "sensor_msgs/msg/CompressedImage", qos=best, **common)
        self.subs = [
            ROS2Subscriber("/cmd_twist", "geometry_msgs/msg/Twist", self.on_twist, **common),
            ROS2Subscriber("/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                           self.on_trajectory, **common),
            ROS2Subscriber("/gripper/command", "std_msgs/msg/Float32", self.on_gripper, **common),
            ROS2Subscriber("/vla_studio/estop", "std_msgs/msg/Bool", self.on_estop, **common),
        ]
        reg = sdk.message_class
        self.cls = {n: reg(self.session, n) for n in (
            "std_msgs/msg/Header", "builtin_interfaces/msg/Time", "geometry_msgs/msg/Pose",
            "geometry_msgs/msg/Point", "geometry_msgs/msg/Quaternion")}

    # ----- subscriptions ----------------------------------------------------------------------
    def on_twist(self, msg) -> None:
        now = time.time()
        with self.lock:
            self.twists.append((int(round(msg.angular.z * 1000.0)), now))
            if not self.estop:
                self.vel = np.array([msg.linear.x, msg.linear.y, msg.linear.z])
                self.last_twist = time.monotonic()

    def on_trajectory(self, msg) -> None:
        if msg.points and not self.estop:
            names = list(msg.joint_names)
            target = np.asarray(msg.points[0].positions, dtype=float)
            with self.lock:
                for i, name in enumerate(JOINTS):
                    if name in names:
                        self.q_target[i] = target[names.index(name)]

    def on_gripper(self, msg) -> None:
        if not self.estop:
            self.gripper = min(1.0, max(0.0, float(msg.data)))

    def on_estop(self, msg) -> None:
        value = bool(msg.data)
        with self.lock:
            changed = value != self.estop
            self.estop = value
            if value:
                self.vel[:] = 0.0
                self.q_target = self.q.copy()
        if changed:
            print(f"estop {str(value).lower()}", flush=True)

    # ----- the node's loop --------------------------------------------------------------------
    def header(self, seq: int):
        ns = time.time_ns()
        stamp = self.cls["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
        return self.cls["std_msgs/msg/Header"](stamp=stamp, frame_id=f"seq:{seq}")

    def run(self, stop: threading.Event) -> None:
        period, seq, t_next = 1.0 / self.rate, 0, time.monotonic()
        while not stop.is_set():
            t_next += period
            with self.lock:
                if time.monotonic() - self.last_twist > 0.2:  # the arm's own command timeout
                    self.vel[:] = 0.0
                self.pos = self.pos + self.vel * period
                step = 2.0 * period
                self.q = self.q + np.clip(self.q_target - self.q, -step, step)
                pos, q, gripper, estop = self.pos.copy(), self.q.copy(), self.gripper, self.estop
            joints = pattern_joints(seq) if self.pattern else [*q.tolist(), gripper]
            if not self.silent:
                self.js.publish(header=self.header(seq), name=[*JOINTS, "gripper"],
                                position=np.array(joints), velocity=np.zeros(8),
                                effort=np.zeros(0))
                c = self.cls
                self.pose.publish(header=self.header(seq), pose=c["geometry_msgs/msg/Pose"](
                    position=c["geometry_msgs/msg/Point"](x=pos[0], y=pos[1], z=pos[2]),
                    orientation=c["geometry_msgs/msg/Quaternion"](x=1.0, y=0.0, z=0.0, w=0.0)))
            img = pattern_image(seq) if self.pattern else draw_arm(pos, gripper, estop)
            self.image.publish(header=self.header(seq), height=H, width=W, encoding="rgb8",
                               is_bigendian=0, step=W * 3, data=img.reshape(-1))
            if seq % 3 == 0:
                import cv2

                ok, jpg = cv2.imencode(".jpg", img[..., ::-1])
                self.jpeg.publish(header=self.header(seq), format="jpeg",
                                  data=np.frombuffer(jpg.tobytes(), np.uint8))
            seq += 1
            time.sleep(max(0.0, t_next - time.monotonic()))


def open_router(port: int):
    import zenoh

    conf = zenoh.Config()
    conf.insert_json5("mode", '"router"')
    conf.insert_json5("listen/endpoints", json.dumps([f"tcp/127.0.0.1:{port}"]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    return zenoh.open(conf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7447, help="router port on 127.0.0.1")
    parser.add_argument("--rate", type=float, default=30.0, help="publishing rate, Hz")
    parser.add_argument("--pattern", action="store_true", help="known values for delivery tests")
    args = parser.parse_args()
    router = open_router(args.port)
    arm = FakeArm(args.port, args.rate, args.pattern)
    stop = threading.Event()
    thread = threading.Thread(target=arm.run, args=(stop,), name="fake-arm", daemon=True)
    thread.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            word = line.strip()
            if word == "quit":
                break
            if word == "silence":
                arm.silent = True
            elif word == "speak":
                arm.silent = False
            elif word == "twists":
                with arm.lock:
                    print("twists " + json.dumps(arm.twists), flush=True)
                continue
            print(f"ok {word}", flush=True)
    finally:
        stop.set()
        thread.join(timeout=2.0)
        for sub in arm.subs:
            sub.close()
        from vla_studio_ros2 import sdk
        sdk.release()
        router.close()


if __name__ == "__main__":
    main()
