"""A synchronous client of openpi-protocol policy servers (ours or anyone's).

One request at a time, as openpi's own ``WebsocketClientPolicy``: send an observation map, wait
for the answer. Connects over TCP (``ws://host:port``) or a Unix socket (the local child process),
sends ``Authorization: Api-Key <key>`` when given a key, reads the metadata map the server sends
on connect, and turns every failure into a :class:`PolicyError` that says what to do:

* refused key -> :class:`PolicyAuthError`; nothing listening -> :class:`PolicyConnectionError`;
* an answer that does not come within ``timeout`` -> :class:`PolicyTimeout` (the connection is
  dropped: a late answer must never be taken for the next one);
* a text frame instead of an answer (openpi servers send their traceback) -> PolicyProtocolError.

The client is used from one thread (the runner's client thread); it is not thread-safe.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect, unix_connect

from vla_studio.policies import msgpack_numpy
from vla_studio.policies.errors import (PolicyAuthError, PolicyConnectionError, PolicyError,
                                        PolicyProtocolError)
from vla_studio.policies.wire import RESET_KEY

log = logging.getLogger(__name__)
DEFAULT_MAX_MESSAGE = 64 << 20
# websockets >= 16 wants connect() as a context manager unless told ``legacy=True``; we keep the
# connection open across calls, so we ask for the direct connection where the flag exists.
_DIRECT = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
MESSAGE_TOO_BIG = 1009


class PolicyTimeout(PolicyConnectionError):
    """The server did not answer in time (a hung model, or a dead link)."""


class PolicyClient:
    """Connection to one policy server.

    Args:
        url: ``ws://host:port`` (or ``wss://``); ignored when ``unix_path`` is given.
        unix_path: a Unix socket path (the local policy process).
        api_key: sent as ``Authorization: Api-Key <key>``.
        open_timeout: seconds to connect and receive the metadata.
        max_message_bytes: the largest answer accepted.
    """

    def __init__(self, url: str = "", *, unix_path: str | None = None, api_key: str | None = None,
                 open_timeout: float = 10.0, max_message_bytes: int = DEFAULT_MAX_MESSAGE) -> None:
        self.url, self.unix_path, self.api_key = url, unix_path, api_key
        self.open_timeout, self.max_message_bytes = open_timeout, max_message_bytes
        self.metadata: dict[str, Any] = {}
        self._ws: ClientConnection | None = None
        self.connects = 0

    @property
    def address(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else self.url

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def connect(self) -> dict[str, Any]:
        """Open the connection and read the server's metadata (returned).

        Raises:
            PolicyAuthError: the server refused the key or wants one.
            PolicyConnectionError: nothing listening, handshake failure, no metadata in time.
        """
        self.close()
        headers = {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else None
        common: dict[str, Any] = dict(compression=None, max_size=self.max_message_bytes,
                                      additional_headers=headers, open_timeout=self.open_timeout,
                                      ping_interval=None, close_timeout=1.0, **_DIRECT)
        try:
            if self.unix_path:
                ws = unix_connect(self.unix_path, uri="ws://localhost/", **common)
            else:
                ws = connect(self.url, proxy=None, **common)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise PolicyAuthError(self._auth_message(status)) from None
            raise PolicyConnectionError(f"policy server at {self.address} refused the connection "
                                        f"(HTTP {status})") from None
        except InvalidURI:
            raise PolicyConnectionError(f"'{self.url}' is not a websocket URL; expected "
                                        "ws://host:port") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise PolicyConnectionError(f"cannot reach the policy server at {self.address} "
                                        f"({reason}); is it running (`vla-studio serve`)?") from None
        try:
            raw = ws.recv(timeout=self.open_timeout)
        except (TimeoutError, ConnectionClosed) as exc:
            ws.close()
            raise PolicyConnectionError(f"policy server at {self.address} sent no metadata "
                                        f"({type(exc).__name__})") from None
        try:
            metadata = msgpack_numpy.unpackb(raw) if isinstance(raw, bytes) else None
        except PolicyProtocolError:
            metadata = None
        if not isinstance(metadata, dict):
            ws.close()
            raise PolicyConnectionError(f"policy server at {self.address} does not speak the "
                                        "openpi protocol (its first message is not a metadata map)")
        self._ws, self.metadata = ws, metadata
        self.connects += 1
        return metadata

    def _auth_message(self, status: int) -> str:
        if self.api_key:
            return (f"policy server at {self.address} refused the API key (HTTP {status}): pass "
                    "the key it was started with")
        return (f"policy server at {self.address} requires an API key (HTTP {status}): pass "
                "--api-key (or enter it in the policy panel)")

    def infer(self, observation: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one observation map and return the answer map.

        Raises:
            PolicyTimeout: no answer within ``timeout`` seconds (the connection is dropped).
            PolicyConnectionError: not connected, or the connection broke.
            PolicyProtocolError: the server answered with an error.
        """
        return self._request(msgpack_numpy.packb(observation), timeout)

    def reset(self, prompt: str, timeout: float | None = None) -> bool:
        """Ask the server to reset the policy for a new episode; False when the server (a plain
        openpi one) does not take reset messages, in which case nothing is sent."""
        if not self.metadata.get("accepts_reset"):
            return False
        self._request(msgpack_numpy.packb({RESET_KEY: True, "prompt": prompt}), timeout)
        return True

    def _request(self, data: bytes, timeout: float | None) -> dict[str, Any]:
        ws = self._ws
        if ws is None:
            raise PolicyConnectionError(f"not connected to the policy server at {self.address}")
        try:
            ws.send(data)
            answer = ws.recv(timeout=timeout)
        except TimeoutError:
            self.close()
            raise PolicyTimeout(f"policy server at {self.address} did not answer within "
                                f"{timeout:.1f} s") from None
        except ConnectionClosed as exc:
            self.close()
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code == MESSAGE_TOO_BIG:
                raise PolicyProtocolError(f"the observation ({len(data)} bytes) is over the "
                                          f"server's message size limit") from None
            raise PolicyConnectionError(f"the connection to the policy server at {self.address} "
                                        f"closed ({exc})") from None
        except OSError as exc:
            self.close()
            raise PolicyConnectionError(f"the connection to {self.address} broke ({exc})") from None
        if isinstance(answer, str):
            lines = [ln for ln in answer.strip().splitlines() if ln.strip()]
            raise PolicyProtocolError("policy server error: " + (lines[-1] if lines else "(empty)"))
        msg = msgpack_numpy.unpackb(answer, self.max_message_bytes)
        if not isinstance(msg, dict):
            raise PolicyProtocolError(f"policy server answered with a {type(msg).__name__}, "
                                      "not a map")
        return msg

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # closing a broken socket: nothing more to do
                log.debug("closing policy connection failed", exc_info=True)


def connect_with_retry(client: PolicyClient, attempts: int, backoff_s: float = 0.2,
                       max_backoff_s: float = 5.0) -> dict[str, Any]:
    """Connect, retrying refused connections with exponential backoff (never an auth failure:
    a wrong key stays wrong)."""
    delay = backoff_s
    for _ in range(max(1, attempts) - 1):
        try:
            return client.connect()
        except PolicyAuthError:
            raise
        except PolicyError:
            time.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
    return client.connect()  # the last attempt's error is the one the user sees
