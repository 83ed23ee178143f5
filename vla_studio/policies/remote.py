"""A policy that runs elsewhere: on a GPU server, or in VLA Studio's own child process.

:class:`RemotePolicy` is a :class:`Policy` whose ``infer`` sends the observation to an
openpi-protocol server and reads back the chunk. Its spec comes from the server's metadata: our
server sends the full spec; another openpi server must at least send ``observation_spec`` with our
key names and ``action_space``/``action_shape``, or VLA Studio cannot build its observation.

A broken connection is reopened on the next call (with backoff, so a dead server costs one
connect attempt per second, not one per tick); a refused key is never retried.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.types import Feature, Observation
from vla_studio.policies.base import ActionChunk, Policy, PolicyConfig, PolicySpec
from vla_studio.policies.client import PolicyClient, connect_with_retry
from vla_studio.policies.errors import (PolicyAuthError, PolicyConnectionError, PolicyLoadError,
                                        PolicyProtocolError)
from vla_studio.policies.wire import (IMAGE_PREFIX, STATE_PREFIX, decode_chunk, encode_observation,
                                      spec_from_dict, spec_to_dict)

RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


def spec_from_metadata(metadata: Mapping[str, Any], where: str) -> PolicySpec:
    """The policy spec a server describes in its metadata.

    Raises:
        PolicyLoadError: the metadata does not say what the policy reads and outputs.
    """
    if "policy_spec" in metadata:
        try:
            return spec_from_dict(metadata["policy_spec"], f"{where}: policy_spec")
        except PolicyProtocolError as exc:
            raise PolicyLoadError(str(exc)) from None
    obs_spec, space = metadata.get("observation_spec"), metadata.get("action_space")
    shape = metadata.get("action_shape")
    if not isinstance(obs_spec, Mapping) or not isinstance(space, Mapping):
        raise PolicyLoadError(
            f"{where}: the server's metadata has no observation_spec and action_space, so VLA "
            "Studio cannot tell which cameras and state it reads; serve the policy with "
            "`vla-studio serve`, or add them to the server's metadata")
    try:
        cams, size, state = [], (0, 0), {}
        for key, info in obs_spec.items():
            dims = tuple(int(n) for n in info.get("shape", ()))
            if key.startswith(IMAGE_PREFIX):
                cams.append(key[len(IMAGE_PREFIX):])
                size = (dims[0], dims[1])
            elif key.startswith(STATE_PREFIX):
                state[key[len(STATE_PREFIX):]] = Feature("float32", dims)
        action_space = ActionSpace(str(space["kind"]), tuple(str(n) for n in space["names"]))
        chunk = int(shape[0]) if isinstance(shape, (list, tuple)) and shape else 1
        return PolicySpec(tuple(cams), size, state, action_space,
                          float(metadata.get("control_rate_hz", 0.0)) or 1.0, chunk)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise PolicyLoadError(f"{where}: malformed observation_spec or action_space ({exc})") from None


class RemotePolicy(Policy):
    """A policy behind an openpi-protocol server.

    Args:
        client: a connected :class:`PolicyClient`.
        request_timeout: seconds to wait for one chunk before calling the server hung.
    """

    def __init__(self, client: PolicyClient, request_timeout: float = 10.0) -> None:
        super().__init__(PolicyConfig(name=client.address))
        self.client = client
        self.request_timeout = request_timeout
        self._spec = spec_from_metadata(client.metadata, client.address)
        self._instruction = ""
        self._next_attempt = 0.0
        self._failures = 0

    @classmethod
    def connect(cls, url: str, *, api_key: str | None = None, attempts: int = 1,
                request_timeout: float = 10.0) -> "RemotePolicy":
        """Connect to ``url`` (``ws://host:port``) and read the spec from its metadata."""
        client = PolicyClient(url, api_key=api_key)
        connect_with_retry(client, attempts)
        return cls(client, request_timeout)

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    @property
    def metadata(self) -> dict[str, Any]:
        return self.client.metadata

    def reset(self, instruction: str) -> None:
        self._instruction = instruction
        if self.client.connected:
            self.client.reset(instruction, self.request_timeout)

    def infer(self, observation: Observation) -> ActionChunk:
        self._ensure_connected()
        msg = encode_observation(observation, self._spec, self._instruction)
        t_start = time.monotonic()
        try:
            answer = self.client.infer(msg, self.request_timeout)
        except PolicyConnectionError:
            self._failures += 1
            self._next_attempt = time.monotonic() + self._backoff()
            raise
        t_end = time.monotonic()
        self._failures = 0
        return decode_chunk(answer, self._spec.action_space.dim, observation.t, t_start, t_end)

    def _backoff(self) -> float:
        return RECONNECT_BACKOFF_S[min(self._failures, len(RECONNECT_BACKOFF_S)) - 1]

    def _ensure_connected(self) -> None:
        if self.client.connected:
            return
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            raise PolicyConnectionError(f"policy server at {self.client.address} is unreachable; "
                                        f"next attempt in {wait:.1f} s")
        try:
            self.client.connect()
        except PolicyAuthError:
            raise
        except PolicyConnectionError:
            self._failures += 1
            self._next_attempt = time.monotonic() + self._backoff()
            raise
        spec = spec_from_metadata(self.client.metadata, self.client.address)
        if spec_to_dict(spec) != spec_to_dict(self._spec):
            self.client.close()
            raise PolicyLoadError(f"the policy at {self.client.address} changed while connected "
                                  "(its spec differs); load it again")
        if self._instruction:
            self.client.reset(self._instruction, self.request_timeout)

    def close(self) -> None:
        self.client.close()
