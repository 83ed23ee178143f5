"""The message definitions that ship with the bridge: generated from rosbags' ROS 2 Jazzy types,
hashed exactly as ROS 2 Jazzy hashes them, and never downloaded."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from vla_studio_ros2 import sdk

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "generate_messages.py"

# RIHS01 hashes of ROS 2 Jazzy (as `ros2 topic info --verbose` prints them).
JAZZY = {
    "sensor_msgs/msg/JointState":
        "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e",
    "sensor_msgs/msg/Image":
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    "geometry_msgs/msg/Twist":
        "RIHS01_9c45bf16fe0983d80e3cfe750d6835843d265a9a6c46bd2e609fcddde6fb8d2a",
    "geometry_msgs/msg/PoseStamped":
        "RIHS01_10f3786d7d40fd2b54367835614bff85d4ad3b5dab62bf8bca0cc232d73b4cd8",
    "trajectory_msgs/msg/JointTrajectory":
        "RIHS01_179b33eba59d676f6d967ac71fe35e7ca2f64b2f3928f4a018cec115e213796e",
    "std_msgs/msg/String":
        "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
    "std_msgs/msg/Header":
        "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
}


def test_shipped_definitions_are_exactly_what_rosbags_generates(tmp_path):
    spec = importlib.util.spec_from_file_location("generate_messages", TOOLS)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    written = generator.generate(tmp_path)
    assert len(written) >= 20
    for path in tmp_path.rglob("*.msg"):
        shipped = sdk.MESSAGES_DIR / path.relative_to(tmp_path)
        assert shipped.read_text() == path.read_text(), shipped
    assert {p.relative_to(sdk.MESSAGES_DIR) for p in sdk.MESSAGES_DIR.rglob("*.msg")} == \
        {p.relative_to(tmp_path) for p in tmp_path.rglob("*.msg")}


@pytest.mark.parametrize("msg_type", sorted(JAZZY))
def test_type_hashes_equal_ros2_jazzys(msg_type):
    assert sdk.type_hash(msg_type) == JAZZY[msg_type]


def test_compressed_image_hash_agrees_with_rosbags_own_rihs01():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for msg_type in ("sensor_msgs/msg/CompressedImage", "std_msgs/msg/Float64MultiArray",
                     "std_msgs/msg/Bool", "std_msgs/msg/Float32"):
        assert sdk.type_hash(msg_type) == store.hash_rihs01(msg_type)


def test_a_type_that_does_not_ship_is_refused_not_downloaded(caplog):
    from zenoh_ros2_sdk import message_registry

    sdk.prepare()
    with caplog.at_level(logging.ERROR):
        path = message_registry.get_registry().get_msg_file_path("nav_msgs/msg/Odometry")
    assert path is None
    assert "nothing is downloaded" in caplog.text


def test_router_endpoints_are_checked():
    assert sdk.parse_router("tcp/localhost:7447") == ("127.0.0.1", 7447)
    assert sdk.parse_router("tcp/127.0.0.1:17447") == ("127.0.0.1", 17447)
    for bad in ("udp/127.0.0.1:7447", "tcp/127.0.0.1", "127.0.0.1:7447", "tcp/h:0"):
        with pytest.raises(ValueError, match="tcp/HOST:PORT"):
            sdk.parse_router(bad)
