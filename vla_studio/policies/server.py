"""Serve a policy over openpi's websocket + msgpack-numpy protocol.

Compatible with openpi's ``WebsocketPolicyServer`` and its client: on connect the server sends a
metadata map (with ``observation_spec``, ``instruction_key`` and ``action_shape``, see
:mod:`vla_studio.policies.wire`); each binary message is an observation map answered with
``{"actions": [H, D], "server_timing": {"infer_ms": ..., "prev_total_ms": ...}}``; ``GET /healthz``
answers ``OK``. Beyond openpi:

* ``Authorization: Api-Key <key>`` is checked when the server has a key (HTTP 401 otherwise).
* Loopback by default; another address without a key is refused unless ``insecure``.
* Messages over ``max_message_bytes`` close that connection (code 1009); a malformed message is
  answered with a one-line text error and the connection stays usable: other clients never
  notice.
* The policy runs on one inference thread (it is not thread-safe), so the event loop keeps
  accepting and answering other clients while a chunk is computed.
* ``{"__reset__": true, "prompt": ...}`` resets the policy for a new episode; a changed prompt
  does too (openpi clients never send a reset).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import http
import ipaddress
import logging
import os
import threading
import time
from typing import Any

from websockets.asyncio.server import Request, Response, Server, ServerConnection, serve, unix_serve
from websockets.exceptions import ConnectionClosed

from vla_studio.policies import msgpack_numpy
from vla_studio.policies.base import Policy
from vla_studio.policies.errors import PolicyError, PolicyProtocolError, one_line
from vla_studio.policies.wire import (INSTRUCTION_KEY, RESET_KEY, decode_observation, encode_chunk,
                                      observation_spec, server_metadata)

log = logging.getLogger(__name__)
MIN_MESSAGE_BYTES = 16 << 20


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to serve a policy on the network without an API key (unless ``insecure``)."""
    if not is_loopback(host) and not api_key and not insecure:
        raise PolicyError(f"refusing to serve on {host} without an API key: anyone who can reach "
                          "it could drive the robot's policy. Pass --api-key KEY, or --insecure "
                          "on a network you control")


def default_max_message(policy: Policy) -> int:
    """Room for a few times the observation the policy reads (clients may send camera-sized
    images, which the server resizes), never under 16 MiB."""
    total = 0
    for info in observation_spec(policy.spec).values():
        n = 1
        for d in info["shape"]:
            n *= int(d)
        total += n * (1 if info["dtype"] in ("uint8", "str") else 8)
    return max(MIN_MESSAGE_BYTES, 4 * total)


class PolicyServer:
    """Hosts one loaded policy for any number of clients.

    Args:
        policy: a loaded policy.
        host, port: TCP address (port 0 picks a free one; see :attr:`port`).
        unix_path: serve on this Unix socket instead of TCP (the local child process).
        api_key: required from clients when set.
        insecure: allow a non-loopback host without a key.
        max_message_bytes: largest observation accepted (default: :func:`default_max_message`).
        policy_id: sent in the metadata.
    """

    def __init__(self, policy: Policy, *, host: str = "127.0.0.1", port: int = 8000,
                 unix_path: str | None = None, api_key: str | None = None, insecure: bool = False,
                 max_message_bytes: int | None = None, policy_id: str = "") -> None:
        if unix_path is None:
            check_bind(host, api_key, insecure)
        self.policy, self.host, self.port, self.unix_path = policy, host, port, unix_path
        self.api_key = api_key
        self.max_message_bytes = max_message_bytes or default_max_message(policy)
        self.metadata = server_metadata(policy.spec, policy_id or policy.config.name,
                                        self.max_message_bytes)
        self._packed_metadata = msgpack_numpy.packb(self.metadata)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="policy-infer")
        self._prompt: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.requests = 0
        self.errors = 0

    @property
    def url(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"ws://{self.host}:{self.port}"

    # ----- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Serve on a background thread; returns once the socket is bound (``port`` is real)."""
        self._thread = threading.Thread(target=self.serve_forever, name="policy-server",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise PolicyError(f"policy server could not start on {self.url}: "
                              f"{one_line(self._error) if self._error else 'timed out'}")

    def serve_forever(self) -> None:
        """Serve on the calling thread until :meth:`stop` (or Ctrl-C in the CLI)."""
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); the CLI sees it re-raised
            self._error = exc
            self._ready.set()
            if self._thread is None or threading.current_thread() is not self._thread:
                raise
        finally:
            # Never wait for a chunk in progress: a hung model must not hang the shutdown.
            self._executor.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        """Close the listening socket and every connection; join the serving thread."""
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(server.close)
            except RuntimeError:  # the loop finished between the check and the call
                pass
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10.0)
            if thread.is_alive():
                log.error("policy server thread did not stop within 10 s")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the serving thread to end; True once it has (False: still serving)."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        common: dict[str, Any] = dict(compression=None, max_size=self.max_message_bytes,
                                      process_request=self._process_request, ping_interval=None)
        if self.unix_path:
            server = await unix_serve(self._handler, self.unix_path, **common)
            os.chmod(self.unix_path, 0o600)  # only this user's processes reach the model
        else:
            server = await serve(self._handler, self.host, self.port, **common)
            self.port = server.sockets[0].getsockname()[1]
        self._server = server
        log.debug("serving policy %s on %s", self.metadata["policy_id"], self.url)
        self._ready.set()
        await server.wait_closed()

    # ----- connections -------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if self.api_key:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Api-Key {self.api_key}".encode()):
                log.warning("policy server: refused a connection from %s (missing or wrong API "
                            "key)", connection.remote_address)
                return connection.respond(http.HTTPStatus.UNAUTHORIZED,
                                          "missing or wrong API key (Authorization: Api-Key <key>)\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        peer = ws.remote_address or "local"
        log.info("policy client connected: %s", peer)
        loop = asyncio.get_running_loop()
        prev_total_ms: float | None = None
        try:
            await ws.send(self._packed_metadata)
            async for message in ws:
                start = time.monotonic()
                try:
                    reply = await loop.run_in_executor(self._executor, self._answer, message)
                except PolicyProtocolError as exc:
                    self.errors += 1
                    await ws.send(f"error: {exc}")
                    continue
                except Exception as exc:  # the policy's own failure: report it, keep serving
                    self.errors += 1
                    log.exception("policy failed on a request from %s", peer)
                    await ws.send(f"error: the policy failed: {one_line(exc)}")
                    continue
                if "actions" in reply:
                    timing = {"infer_ms": reply.pop("_infer_ms")}
                    if prev_total_ms is not None:
                        timing["prev_total_ms"] = prev_total_ms
                    reply["server_timing"] = timing
                await ws.send(msgpack_numpy.packb(reply))
                prev_total_ms = (time.monotonic() - start) * 1000.0
        except ConnectionClosed:
            pass
        finally:
            log.info("policy client disconnected: %s", peer)

    def _answer(self, message: bytes | str) -> dict[str, Any]:
        """Decode, check and answer one message (on the inference thread)."""
        if isinstance(message, str):
            raise PolicyProtocolError("expected a binary msgpack observation, got a text frame")
        msg = msgpack_numpy.unpackb(message, self.max_message_bytes)
        if isinstance(msg, dict) and msg.get(RESET_KEY):
            prompt = msg.get(INSTRUCTION_KEY, "")
            if not isinstance(prompt, str):
                raise PolicyProtocolError("a reset's 'prompt' must be a string")
            self.policy.reset(prompt)
            self._prompt = prompt
            return {"reset": True}
        obs, prompt = decode_observation(msg, self.policy.spec, self.requests)
        if prompt != self._prompt:
            self.policy.reset(prompt)
            self._prompt = prompt
        t0 = time.monotonic()
        chunk = self.policy.infer(obs)
        infer_ms = (time.monotonic() - t0) * 1000.0
        self.requests += 1
        reply = encode_chunk(chunk)
        reply["_infer_ms"] = infer_ms
        return reply
