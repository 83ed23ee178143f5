"""Write the ROS 2 message definitions the plugin uses, from rosbags' built-in ROS 2 Jazzy types.

Run offline when the list changes (the output is committed and ships with the package)::

    python plugins/vla-studio-ros2/tools/generate_messages.py

zenoh-ros2-sdk reads ``<dir>/<package>/msg/<Name>.msg`` (and computes each type's RIHS01 hash
from them); without them it would clone ROS 2's interface repositories at run time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.base import Nodetype

OUT = Path(__file__).resolve().parents[1] / "vla_studio_ros2" / "messages"
# What the bridge publishes and subscribes; their dependencies are added automatically.
ROOTS = (
    "sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
    "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped",
    "trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Bool", "std_msgs/msg/Float32",
    "std_msgs/msg/Float64MultiArray", "std_msgs/msg/String",
)


def short(typename: str) -> str:
    """``pkg/msg/Name`` as a .msg file refers to it: ``pkg/Name``."""
    pkg, _, name = typename.split("/")
    return f"{pkg}/{name}"


def field_type(desc: tuple) -> tuple[str, set[str]]:
    """A rosbags field description as .msg text, and the message types it uses."""
    kind, rest = desc
    if kind == Nodetype.BASE:
        name, bound = rest
        return (f"{name}<={bound}" if bound else name), set()
    if kind == Nodetype.NAME:
        return short(rest), {rest}
    sub, size = rest
    text, deps = field_type(sub)
    if kind == Nodetype.ARRAY:
        return f"{text}[{size}]", deps
    return (f"{text}[<={size}]" if size else f"{text}[]"), deps  # SEQUENCE


def msg_text(typestore, typename: str) -> tuple[str, set[str]]:
    consts, fields = typestore.fielddefs[typename]
    lines, deps = [], set()
    for name, ctype, value in consts:
        if isinstance(value, bool):
            value = str(value).lower()
        lines.append(f"{ctype} {name}={value}")
    for name, desc in fields:
        text, used = field_type(desc)
        deps |= used
        lines.append(f"{text} {name}")
    return "\n".join(lines) + "\n", deps


def generate(out: Path = OUT) -> dict[str, str]:
    """All definitions (typename -> text) reachable from :data:`ROOTS`, written under ``out``."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    todo, done = list(ROOTS), {}
    while todo:
        typename = todo.pop()
        if typename in done:
            continue
        text, deps = msg_text(typestore, typename)
        done[typename] = text
        todo.extend(sorted(deps - done.keys()))
    for typename, text in sorted(done.items()):
        pkg, kind, name = typename.split("/")
        path = out / pkg / kind / f"{name}.msg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return done


if __name__ == "__main__":
    written = generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
    print(f"wrote {len(written)} message definitions")
