"""`vla-studio serve`'s server: openpi's real client against it, our client against it, auth,
limits, malformed messages and reconnects (all on loopback, in this process tree)."""

from __future__ import annotations

import http.client
import socket
import time

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.policies.policy_doubles import ScriptedConfig, ScriptedPolicy
from tests.waiting import wait_until
from vla_studio.core.types import Frame, Observation
from vla_studio.policies import msgpack_numpy
from vla_studio.policies.errors import (PolicyAuthError, PolicyConnectionError, PolicyError,
                                        PolicyProtocolError)
from vla_studio.policies.remote import RemotePolicy
from vla_studio.policies.server import PolicyServer, check_bind

from openpi_client import msgpack_numpy as openpi_msgpack
from openpi_client.websocket_client_policy import WebsocketClientPolicy

# openpi_client 0.1.2 opens its connection the way websockets >= 16 deprecates (its code, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


def scripted(**kw) -> ScriptedPolicy:
    cfg = dict(name="scripted", chunk=6, cameras=("front",), state_keys=("ee_pos", "gripper"))
    cfg.update(kw)
    return ScriptedPolicy(ScriptedConfig(**cfg))


@pytest.fixture
def served():
    servers = []

    def start(policy=None, **kw) -> PolicyServer:
        server = PolicyServer(policy or scripted(), port=0, **kw)
        server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def observation_from_spec(metadata: dict, prompt: str = "pick") -> dict:
    """What any client can build from the metadata alone."""
    obs = {}
    for key, info in metadata["observation_spec"].items():
        if info["dtype"] == "str":
            obs[key] = prompt
        else:
            obs[key] = np.zeros(info["shape"], dtype=info["dtype"])
    return obs


def test_openpi_s_own_client_gets_metadata_and_chunks(served):
    server = served()
    client = WebsocketClientPolicy("127.0.0.1", server.port)
    meta = client.get_server_metadata()
    assert meta["instruction_key"] == "prompt"
    assert meta["observation_spec"]["observation/image/front"] == {"shape": [32, 32, 3], "dtype": "uint8"}
    assert meta["observation_spec"]["observation/state/ee_pos"] == {"shape": [3], "dtype": "float32"}
    assert meta["action_shape"] == [6, 7]
    answer = client.infer(observation_from_spec(meta))
    assert answer["actions"].shape == (6, 7) and answer["actions"].dtype == np.float32
    assert answer["server_timing"]["infer_ms"] >= 0.0
    second = client.infer(observation_from_spec(meta))
    assert "prev_total_ms" in second["server_timing"]


def test_openpi_s_client_may_send_camera_sized_images_and_float64_state(served):
    server = served()
    client = WebsocketClientPolicy("127.0.0.1", server.port)
    obs = observation_from_spec(client.get_server_metadata())
    obs["observation/image/front"] = np.zeros((240, 320, 3), np.uint8)
    obs["observation/state/ee_pos"] = np.zeros(3, np.float64)
    assert client.infer(obs)["actions"].shape == (6, 7)


def test_a_changed_prompt_resets_the_policy_for_openpi_clients(served):
    policy = scripted()
    server = served(policy)
    client = WebsocketClientPolicy("127.0.0.1", server.port)
    meta = client.get_server_metadata()
    client.infer(observation_from_spec(meta, "a"))
    client.infer(observation_from_spec(meta, "a"))
    client.infer(observation_from_spec(meta, "b"))
    assert policy.resets == 2 and policy.instruction == "b"


def frame_obs(t: float) -> Observation:
    return Observation(7, t, {"ee_pos": np.zeros(3, np.float32), "gripper": np.ones(1, np.float32)},
                       {"front": Frame("front", 1, t, color=np.zeros((48, 64, 3), np.uint8))})


def test_our_client_reads_the_spec_and_stamps_chunks_with_its_own_clock(served):
    policy = scripted()
    server = served(policy)
    remote = RemotePolicy.connect(server.url)
    assert remote.spec.cameras == ("front",) and remote.spec.chunk_size == 6
    assert remote.spec.action_space == policy.spec.action_space
    remote.reset("stack the cubes")
    assert policy.instruction == "stack the cubes"
    t = time.monotonic()
    chunk = remote.infer(frame_obs(t))
    assert chunk.actions.shape == (6, 7)
    assert chunk.t_observation == t and t <= chunk.t_start <= chunk.t_end <= time.monotonic()
    assert chunk.extras["server_timing"]["infer_ms"] >= 0.0
    remote.close()


def test_api_keys_are_required_and_checked(served):
    server = served(api_key="s3cret")
    with pytest.raises(PolicyAuthError, match="requires an API key"):
        RemotePolicy.connect(server.url)
    with pytest.raises(PolicyAuthError, match="refused the API key"):
        RemotePolicy.connect(server.url, api_key="wrong")
    assert RemotePolicy.connect(server.url, api_key="s3cret").spec.chunk_size == 6
    openpi = WebsocketClientPolicy("127.0.0.1", server.port, api_key="s3cret")
    assert openpi.infer(observation_from_spec(openpi.get_server_metadata()))["actions"].shape == (6, 7)


def test_the_health_check_answers_without_a_key(served):
    server = served(api_key="s3cret")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200


def test_serving_beyond_loopback_needs_a_key_or_insecure():
    with pytest.raises(PolicyError, match="without an API key"):
        check_bind("0.0.0.0", None, False)
    with pytest.raises(PolicyError, match="--insecure"):
        PolicyServer(scripted(), host="192.0.2.10")
    check_bind("0.0.0.0", "key", False)
    check_bind("0.0.0.0", None, True)
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        check_bind(host, None, False)


def raw_client(server: PolicyServer):
    ws = connect(server.url, compression=None, max_size=None, proxy=None, legacy=True)
    msgpack_numpy.unpackb(ws.recv(timeout=5))  # metadata
    return ws


def test_malformed_messages_get_an_error_and_the_connection_keeps_working(served):
    server = served()
    meta = server.metadata
    ws = raw_client(server)
    object_array = msgpack.packb({"observation/state/ee_pos": {
        b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O", b"shape": [1]}})
    short_array = msgpack.packb({"observation/image/front": {
        b"__ndarray__": True, b"data": b"\x00" * 5, b"dtype": "|u1", b"shape": [32, 32, 3]}})
    wrong_shape = dict(observation_from_spec(meta), **{"observation/state/ee_pos": np.zeros(5, np.float32)})
    missing = {"prompt": "x"}
    for bad in (b"\xc1garbage", object_array, short_array, msgpack_numpy.packb(wrong_shape),
                msgpack_numpy.packb(missing), msgpack_numpy.packb([1, 2, 3])):
        ws.send(bad)
        answer = ws.recv(timeout=5)
        assert isinstance(answer, str) and answer.startswith("error: ") and "\n" not in answer
    ws.send("a text frame")
    assert "text frame" in ws.recv(timeout=5)
    ws.send(msgpack_numpy.packb(observation_from_spec(meta)))
    good = msgpack_numpy.unpackb(ws.recv(timeout=5))
    assert good["actions"].shape == (6, 7)
    assert server.errors == 7
    ws.close()


def test_an_oversized_message_closes_only_that_connection(served):
    server = served(max_message_bytes=64 << 10)
    other = WebsocketClientPolicy("127.0.0.1", server.port)
    remote = RemotePolicy.connect(server.url)
    msg = observation_from_spec(server.metadata)
    msg["observation/image/front"] = np.zeros((400, 400, 3), np.uint8)  # 480 kB
    with pytest.raises(ConnectionClosed) as err:
        other.infer(msg)
    assert err.value.rcvd.code == 1009  # "message too big"
    ours = RemotePolicy.connect(server.url)
    with pytest.raises(PolicyProtocolError, match="size limit"):
        ours.client.infer(msg, timeout=5)
    assert remote.infer(frame_obs(time.monotonic())).actions.shape == (6, 7)


def test_a_policy_failure_is_answered_and_the_server_keeps_serving(served):
    policy = scripted()
    server = served(policy)
    remote = RemotePolicy.connect(server.url)
    remote.reset("fail")
    with pytest.raises(PolicyProtocolError, match="scripted failure"):
        remote.infer(frame_obs(time.monotonic()))
    remote.reset("fine")
    assert remote.infer(frame_obs(time.monotonic())).actions.shape == (6, 7)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_our_client_reconnects_after_the_server_comes_back():
    port = free_port()
    first = PolicyServer(scripted(), port=port)
    first.start()
    remote = RemotePolicy.connect(f"ws://127.0.0.1:{port}")
    first.stop()
    with pytest.raises(PolicyConnectionError):
        remote.infer(frame_obs(time.monotonic()))
    second = PolicyServer(scripted(), port=port)
    second.start()
    try:
        assert wait_until(lambda: _infers(remote), timeout=10, interval=0.1)
    finally:
        remote.close()
        second.stop()


def _infers(remote: RemotePolicy) -> bool:
    try:
        return remote.infer(frame_obs(time.monotonic())).actions.shape == (6, 7)
    except PolicyConnectionError:
        return False


def test_unreachable_server_is_one_clear_line():
    with pytest.raises(PolicyConnectionError, match="cannot reach the policy server"):
        RemotePolicy.connect(f"ws://127.0.0.1:{free_port()}")


def test_our_arrays_and_openpi_s_are_the_same_bytes_on_the_wire():
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(2.5), "p": "x"}
    ours, theirs = msgpack_numpy.packb(data), openpi_msgpack.packb(data)
    assert ours == theirs
    back = msgpack_numpy.unpackb(theirs)
    np.testing.assert_array_equal(back["a"], data["a"])
    assert back["s"] == 2.5 and back["p"] == "x"
