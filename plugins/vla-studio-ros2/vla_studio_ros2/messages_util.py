"""Small helpers around ROS 2 messages: stamps, headers, QoS profiles from a profile's words."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stamp:
    """A ``builtin_interfaces/Time``: seconds and nanoseconds."""

    sec: int
    nanosec: int

    @classmethod
    def now(cls) -> "Stamp":
        """Wall-clock time, as ROS 2 stamps messages (the arm compares it to its own clock)."""
        ns = time.time_ns()
        return cls(ns // 1_000_000_000, ns % 1_000_000_000)


def stamp_seconds(stamp: Any) -> float:
    """Seconds of a ``builtin_interfaces/Time`` message."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def header(classes: dict[str, type], stamp: Stamp, frame_id: str) -> Any:
    """A ``std_msgs/Header`` built from the registered classes."""
    time_cls = classes["builtin_interfaces/msg/Time"]
    return classes["std_msgs/msg/Header"](stamp=time_cls(sec=stamp.sec, nanosec=stamp.nanosec),
                                          frame_id=frame_id)


def qos_profile(reliability: str, depth: int) -> Any:
    """zenoh-ros2-sdk's QoS for ``reliability`` ("reliable" / "best_effort") and ``depth``."""
    from zenoh_ros2_sdk.qos import QosProfile, QosReliability

    rel = QosReliability.RELIABLE if reliability == "reliable" else QosReliability.BEST_EFFORT
    return QosProfile(reliability=rel, history_depth=int(depth))
