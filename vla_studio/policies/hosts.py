"""Where a policy runs, behind one interface the runner drives.

| host                 | model code runs in      | hung model            | crash in model code   |
|----------------------|-------------------------|-----------------------|-----------------------|
| :class:`ChildHost`   | a child process         | killed and restarted  | the child dies only   |
| :class:`RemoteHost`  | a server elsewhere      | connection dropped    | the server's problem  |
| :class:`InProcessHost` | this process (debug)  | cannot be killed      | takes the app down    |

The child host is the default for local policies: it talks to its child over a Unix socket with
the same protocol and client as a remote server, so both paths are the same code.
"""

from __future__ import annotations

import abc
import logging
from typing import Any, Mapping

from vla_studio.policies.base import Policy
from vla_studio.policies.client import PolicyClient
from vla_studio.policies.loaders import REMOTE, load_policy, parse_source
from vla_studio.policies.process import PolicyProcess
from vla_studio.policies.remote import RemotePolicy

log = logging.getLogger(__name__)


class PolicyHost(abc.ABC):
    """Opens, watches and restarts one policy. Methods are called from the runner's client
    thread, except :meth:`open` (called by ``runner.start``) and :meth:`close`."""

    label: str = ""
    can_kill: bool = True

    @abc.abstractmethod
    def open(self) -> Policy:
        """Load (or connect to) the policy; raises PolicyError with one line."""

    def alive(self) -> bool:
        """False when the policy's process died (a crash)."""
        return True

    def exit_description(self) -> str:
        return ""

    def kill(self) -> None:
        """Abort a hung inference (kill the child, drop the connection)."""

    def restart(self) -> Policy:
        self.close()
        return self.open()

    @abc.abstractmethod
    def close(self) -> None:
        """Release the policy and anything started for it (always safe to call)."""


class InProcessHost(PolicyHost):
    """Runs the policy on the runner's client thread in this process (debugging only)."""

    can_kill = False

    def __init__(self, source: str, *, trusted: bool = False,
                 options: Mapping[str, Any] | None = None) -> None:
        self.source, self.trusted, self.options = source, trusted, options
        self.label = f"in-process: {source}"
        self._policy: Policy | None = None

    def open(self) -> Policy:
        self._policy = load_policy(self.source, trusted=self.trusted, options=self.options)
        return self._policy

    def close(self) -> None:
        policy, self._policy = self._policy, None
        if policy is not None:
            policy.close()


class ChildHost(PolicyHost):
    """Runs the policy in a child process, reached through a Unix socket.

    Args:
        source: a local policy source (folder, file, plugin).
        request_timeout: seconds one chunk may take before the model counts as hung.
    """

    def __init__(self, source: str, *, trusted: bool = False, threads: int = 1,
                 options: Mapping[str, Any] | None = None, request_timeout: float = 5.0,
                 load_timeout_s: float = 120.0) -> None:
        self.label = f"child process: {source}"
        self.process = PolicyProcess(source, trusted=trusted, threads=threads, options=options,
                                     load_timeout_s=load_timeout_s)
        self.request_timeout = request_timeout
        self._policy: RemotePolicy | None = None

    def open(self) -> Policy:
        path = self.process.start()
        client = PolicyClient(unix_path=path)
        try:
            client.connect()
            self._policy = RemotePolicy(client, self.request_timeout)
        except Exception:
            self.process.stop()
            raise
        return self._policy

    def alive(self) -> bool:
        return self.process.alive()

    def exit_description(self) -> str:
        return self.process.exit_description()

    def kill(self) -> None:
        self.process.kill()

    def close(self) -> None:
        policy, self._policy = self._policy, None
        if policy is not None:
            policy.close()
        self.process.stop()


class RemoteHost(PolicyHost):
    """A policy server elsewhere (``ws://host:port``)."""

    def __init__(self, url: str, *, api_key: str | None = None, request_timeout: float = 5.0,
                 connect_attempts: int = 3) -> None:
        self.url, self.api_key = url, api_key
        self.label = f"remote: {url}"
        self.request_timeout, self.connect_attempts = request_timeout, connect_attempts
        self._policy: RemotePolicy | None = None

    def open(self) -> Policy:
        self._policy = RemotePolicy.connect(self.url, api_key=self.api_key,
                                            attempts=self.connect_attempts,
                                            request_timeout=self.request_timeout)
        return self._policy

    def kill(self) -> None:
        if self._policy is not None:  # the next call reconnects
            self._policy.client.close()

    def restart(self) -> Policy:
        if self._policy is None:
            return self.open()
        self._policy.client.close()
        return self._policy  # reconnects (and re-checks the spec) on its next call

    def close(self) -> None:
        policy, self._policy = self._policy, None
        if policy is not None:
            policy.close()


def make_host(source: str, *, where: str = "child", trusted: bool = False,
              api_key: str | None = None, options: Mapping[str, Any] | None = None,
              request_timeout: float = 5.0, threads: int = 1) -> PolicyHost:
    """The host for ``source``: remote for URLs; else ``where`` = ``child`` (default) or
    ``in-process``."""
    src = parse_source(source)
    if src.kind == REMOTE:
        return RemoteHost(src.location, api_key=api_key, request_timeout=request_timeout)
    if where == "in-process":
        return InProcessHost(str(src), trusted=trusted, options=options)
    return ChildHost(str(src), trusted=trusted, threads=threads, options=options,
                     request_timeout=request_timeout)
