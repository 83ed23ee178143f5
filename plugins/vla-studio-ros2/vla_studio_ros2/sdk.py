"""zenoh-ros2-sdk set up for VLA Studio: shipped message definitions, no downloads, and one shared
Zenoh session per process.

zenoh-ros2-sdk keeps one Zenoh session per process (``ZenohSession.get_instance``): every robot,
camera and publisher of a station shares it, so they must name the same router. The session is
opened by the first device that connects and closed when the last one disconnects.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MESSAGES_DIR = Path(__file__).resolve().with_name("messages")
DEFAULT_ROUTER = "tcp/localhost:7447"  # rmw_zenoh's default: a router on this machine
_ENDPOINT = re.compile(r"^tcp/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")

_lock = threading.Lock()
_users = 0
_router = ""
_prepared = False


class Ros2Error(RuntimeError):
    """A ROS 2 bridge problem; the message says what to check."""


def parse_router(endpoint: str) -> tuple[str, int]:
    """``"tcp/HOST:PORT"`` -> ``(HOST, PORT)``.

    Raises:
        ValueError: not a TCP endpoint.
    """
    m = _ENDPOINT.match(endpoint.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"zenoh router {endpoint!r} is not 'tcp/HOST:PORT' "
                         f"(rmw_zenoh's default: {DEFAULT_ROUTER})")
    host = m.group(1).strip("[]")
    return ("127.0.0.1" if host == "localhost" else host), int(m.group(2))


def prepare() -> None:
    """Point zenoh-ros2-sdk at the shipped definitions and forbid it to clone any at run time."""
    global _prepared
    with _lock:
        if _prepared:
            return
        os.environ.setdefault("ZENOH_ROS2_SDK_CACHE", str(MESSAGES_DIR))
        from zenoh_ros2_sdk import message_registry

        def no_download(msg_type: str, repo_name: str | None = None) -> None:
            log.error("ROS 2 message %s is not among the definitions VLA Studio ships (%s); "
                      "nothing is downloaded: add it with tools/generate_messages.py",
                      msg_type, MESSAGES_DIR)
            return None

        message_registry.get_message_file_path = no_download
        registry = message_registry.get_registry(str(MESSAGES_DIR))
        registry.messages_dir = MESSAGES_DIR  # also when something created it before us
        _prepared = True


def type_hash(msg_type: str) -> str:
    """The RIHS01 type hash zenoh-ros2-sdk puts in ``msg_type``'s key expressions."""
    prepare()
    from zenoh_ros2_sdk import message_registry
    from zenoh_ros2_sdk.utils import get_type_hash, load_dependencies_recursive

    registry = message_registry.get_registry()
    path = registry.get_msg_file_path(msg_type)
    if path is None:
        raise Ros2Error(f"no definition of {msg_type} ships with vla-studio-ros2")
    text = path.read_text(encoding="utf-8")
    return get_type_hash(msg_type, text, load_dependencies_recursive(msg_type, text, registry))


def acquire(router: str) -> Any:
    """The process's Zenoh session, opened on first use, connected to ``router``.

    Raises:
        Ros2Error: another device of this process already uses a different router, or the
            session cannot be opened.
    """
    global _users, _router
    prepare()
    host, port = parse_router(router)
    from zenoh_ros2_sdk import ZenohSession

    with _lock:
        if _users and router != _router:
            raise Ros2Error(f"zenoh router {router!r} differs from {_router!r}, which this "
                            "station already uses: every ros2 device of a station shares one "
                            "Zenoh session")
        try:
            if ZenohSession._instance is None:
                # A new session has an empty type store: the registry must register every
                # type again (it remembers what it loaded into the previous one).
                from zenoh_ros2_sdk import message_registry
                message_registry.get_registry()._loaded_types.clear()
            session = ZenohSession.get_instance(host, port)
        except Exception as exc:
            raise Ros2Error(f"cannot open a Zenoh session towards {router}: {exc}") from None
        _users += 1
        _router = router
        return session


def release() -> None:
    """One user fewer; the last one closes the session."""
    global _users
    from zenoh_ros2_sdk import ZenohSession

    with _lock:
        _users = max(0, _users - 1)
        if _users:
            return
        session = ZenohSession._instance
        if session is not None:
            try:
                session.close()
            except Exception as exc:
                log.warning("closing the Zenoh session failed: %s", exc)


def message_class(session: Any, msg_type: str) -> type:
    """The rosbags class of ``msg_type`` (registered with the session's type store)."""
    from zenoh_ros2_sdk import message_registry

    cls = message_registry.get_registry().get_message_class(msg_type)
    if cls is None:
        raise Ros2Error(f"ROS 2 message {msg_type} could not be loaded")
    return cls
