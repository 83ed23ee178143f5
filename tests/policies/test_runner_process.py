"""A local policy in its own process: a crash or a hang in model code never takes the app down."""

from __future__ import annotations

import os

import pytest

from tests.policies.runner_rig import RATE, make_rig, scripted_host
from tests.waiting import wait_until
from vla_studio.core.session import RunState
from vla_studio.core.types import SourceKind
from vla_studio.devices.robots.null import NullRobot
from vla_studio.policies.errors import PolicyLoadError, PolicySpecMismatch
from vla_studio.policies.hosts import ChildHost
from vla_studio.policies.runner import PolicyRunner, RunnerSettings
from vla_studio.policies.station_fit import StationOffer


@pytest.fixture
def rigs():
    made = []
    yield made
    for rig in made:
        rig.close()


def test_the_policy_runs_in_a_child_process_not_in_this_one(rigs):
    host = scripted_host("child", chunk=10)
    rig = make_rig(host)
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.chunks >= 3, timeout=60)
    assert host.process.pid != os.getpid() and host.process.alive()
    assert any(s.source == SourceKind.POLICY for s in rig.drain())


def test_a_segfault_in_model_code_holds_the_run_pauses_and_says_so(rigs):
    host = scripted_host("child", chunk=10)
    rig = make_rig(host, instruction="crash")
    rigs.append(rig)
    assert wait_until(lambda: rig.runner.state == "crashed", timeout=60)
    assert "policy.crashed" in rig.kinds()
    crash = next(e for e in rig.seen if e.kind == "policy.crashed")
    assert "SIGSEGV" in crash.message
    assert rig.session.state == RunState.PAUSED
    assert not host.process.alive()
    tick = rig.loop.snapshot.get().index
    assert wait_until(lambda: rig.loop.snapshot.get().index > tick + 3, timeout=10)  # loop lives on
    # Restarting brings a fresh process; with a sane instruction it drives again.
    rig.runner.reset("behave")
    rig.runner.restart()
    assert wait_until(lambda: rig.runner.state == "idle" and rig.runner.restarts == 1, timeout=60)
    assert host.process.alive()


def test_a_hung_model_is_killed_and_restarted(rigs):
    host = scripted_host("child", chunk=10, request_timeout=1.0)
    rig = make_rig(host, RunnerSettings(request_timeout_s=1.0), instruction="hang")
    rigs.append(rig)
    first_pid = host.process.pid
    assert wait_until(lambda: "policy.hung" in rig.kinds(), timeout=30)
    assert rig.session.state == RunState.PAUSED
    assert wait_until(lambda: rig.runner.restarts == 1, timeout=60)
    assert host.process.pid != first_pid and host.process.alive()
    holds = [s for s in rig.drain() if s.source == SourceKind.HOLD]
    assert holds and not any(s.source == SourceKind.POLICY for s in rig.drain())


def test_a_policy_that_does_not_fit_the_station_is_refused_before_anything_moves():
    robot = NullRobot()
    offer = StationOffer({"front": (240, 320)}, robot.observation_features, robot.action_space, RATE)
    host = ChildHost("plugin:test_scripted", options={"cameras": ["wrist"], "rate_hz": 5.0})
    runner = PolicyRunner(host, offer)
    with pytest.raises(PolicySpecMismatch) as err:
        runner.start()
    text = str(err.value)
    assert "camera 'wrist'" in text and "front" in text
    assert "5 Hz" in text and "20 Hz" in text
    assert not host.process.alive()  # the child was reaped
    assert runner.state == "closed"


def test_a_load_failure_in_the_child_comes_back_as_one_line(tmp_path):
    bad = tmp_path / "ckpt"
    bad.mkdir()
    (bad / "config.json").write_text('{"policy_type": "test_tiny_torch", "config": {')
    host = ChildHost(str(bad))
    with pytest.raises(PolicyLoadError) as err:
        host.open()
    assert "not valid JSON" in str(err.value) and "\n" not in str(err.value)
    assert not host.process.alive()


PARENT = """
import sys, time
from vla_studio.policies.process import PolicyProcess
p = PolicyProcess("plugin:circle")
p.start()
print(p.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] in "ZX"  # exited (a zombie waits for its reaper)
    except FileNotFoundError:
        return True


def test_the_policy_process_ends_when_its_app_is_killed():
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=root, stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=str(root)))
    try:
        child = int(parent.stdout.readline())
        assert not _gone(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    assert wait_until(lambda: _gone(child), timeout=10), "the policy process outlived its app"
