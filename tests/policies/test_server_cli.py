"""`vla-studio serve` as a user runs it: a real process, an openpi client, Ctrl-C, bad arguments."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


def ctrl_c_as_in_a_terminal() -> None:
    """In the child: Ctrl-C (SIGINT) as a terminal delivers it. A test run started in the
    background by a non-interactive shell ignores SIGINT, and children inherit that; the
    server would then never see the Ctrl-C these tests send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def serve(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "vla_studio", "serve", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)


def first_line(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "serve printed nothing"
    return proc.stdout.readline()


def test_serve_answers_an_openpi_client_and_stops_cleanly_on_ctrl_c():
    proc = serve("--policy", "plugin:circle", "--port", "0")
    try:
        line = first_line(proc)
        match = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        assert match, line
        assert "no API key" in line and "8x7 ee_delta" in line
        client = WebsocketClientPolicy("127.0.0.1", int(match.group(1)))
        meta = client.get_server_metadata()
        assert meta["observation_spec"] == {"prompt": {"shape": [], "dtype": "str"}}
        actions = client.infer({"prompt": "draw a circle"})["actions"]
        assert actions.shape == (8, 7) and np.all(actions[:, 6] == 1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--policy", "plugin:circle", "--host", "0.0.0.0"], "without an API key"),
    (["--policy", "/no/such/checkpoint"], "no such file"),
    (["--policy", "plugin:circle", "--port", "70000"], "not a TCP port"),
])
def test_serve_refuses_with_one_line(args, message):
    proc = serve(*args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("vla-studio: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_serve_untrained_hosts_a_fresh_reference_vla_for_the_default_station():
    """`--policy untrained`: the reference architecture, random weights, the default station's
    cameras and state; an openpi client builds an observation from the metadata alone."""
    proc = serve("--policy", "untrained", "--port", "0")
    try:
        line = first_line(proc, timeout=120)
        match = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        assert match, line
        assert "untrained:vla" in line and "front, wrist" in line and "ee_delta at 20 Hz" in line
        client = WebsocketClientPolicy("127.0.0.1", int(match.group(1)))
        spec = client.get_server_metadata()["observation_spec"]
        obs = {key: (np.zeros(v["shape"], v["dtype"]) if v["dtype"] != "str"
                     else "pick up the red cube") for key, v in spec.items()}
        assert {"observation/image/front", "observation/image/wrist",
                "observation/state/ee_quat", "prompt"} <= set(obs)
        actions = client.infer(obs)["actions"]
        assert actions.ndim == 2 and actions.shape[1] == 7 and np.isfinite(actions).all()
        # bounded: at most half the default station's per-step caps
        assert np.abs(actions[:, :3]).max() <= 0.0100001 and actions[:, 6].min() >= 0.0
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err
