"""Supervised policy runs without a window: load, start, pause, stop, resume, finish, the run log,
recorded runs and the task's verdict (the model the policy panel views)."""

from __future__ import annotations

import pytest

from tests.profiles import changed_profile
from tests.waiting import wait_until
from vla_studio.core.session import ControlMode, RunState, SessionError
from vla_studio.core.types import SourceKind
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.recorder import Recorder
from vla_studio.paths import resource
from vla_studio.policies.errors import PolicyError
from vla_studio.policies.runner import RunnerSettings
from vla_studio.policies.small_conv import SmallConvConfig, write_small_conv
from vla_studio.policies.supervisor import PolicySupervisor, SupervisorError, describe_spec
from vla_studio.station import Station


@pytest.fixture
def station(tmp_path):
    st = Station.from_profile(changed_profile(resource("stations", "dry_run.toml"), tmp_path))
    st.start()
    for cam in st.cameras.values():
        assert cam.wait_for_frame(timeout_s=5.0) is not None
    yield st
    st.close()


@pytest.fixture
def small_policy(tmp_path):
    return str(write_small_conv(tmp_path / "policy", SmallConvConfig(name="small_conv", width=8,
                                                                     chunk_size=6)))


def policy_moves(station) -> int:
    step = station.loop.snapshot.get()
    return int(step is not None and step.source == SourceKind.POLICY)


def test_a_run_starts_pauses_stops_resumes_and_finishes_with_every_step_logged(station,
                                                                                small_policy):
    sup = PolicySupervisor(station)
    try:
        spec = sup.load(small_policy)
        assert "cameras front, wrist at 224x224" in describe_spec(spec)
        with pytest.raises(SupervisorError, match="instruction"):
            sup.start("   ")
        sup.start("pick up the red cube")
        assert sup.run_active and station.session.mode == ControlMode.POLICY
        assert wait_until(lambda: sup.runner.chunks >= 2 and policy_moves(station), timeout=60)
        sup.pause()
        assert station.session.state == RunState.PAUSED
        sup.start("ignored when resuming")
        assert station.session.state == RunState.RUNNING
        station.latch.trigger("STOP button", "gui")
        assert wait_until(lambda: station.loop.snapshot.get().source == SourceKind.HOLD, 2.0)
        with pytest.raises(SessionError, match="reset it first"):
            sup.start("")
        station.latch.request_reset()
        assert station.latch.confirm_reset()
        assert station.session.state == RunState.PAUSED  # a reset never resumes the run
        sup.start("")
        assert wait_until(lambda: policy_moves(station), timeout=20)
        assert sup.finish() is None  # the dry-run robot cannot judge the task
        assert not sup.run_active and station.session.state == RunState.PAUSED
        sup.poll()
        kinds = sup.log.kinds()
        for kind in ("policy", "start", "pause", "resume", "stop", "reset", "outcome"):
            assert kind in kinds, (kind, kinds)
        lines = [e.text for e in sup.log.since(0)]
        assert any("STOP (gui): STOP button" in t for t in lines), lines
        assert any("Run finished: outcome unknown" in t and "1 stop(s)" in t for t in lines)
        with pytest.raises(SupervisorError, match="no run"):
            sup.finish()
    finally:
        sup.close()


def test_a_recorded_run_is_saved_as_a_policy_episode_with_its_confidence(station, small_policy,
                                                                         tmp_path):
    recorder = Recorder(station, tmp_path / "dataset")
    recorder.connect()
    sup = PolicySupervisor(station, recorder)
    try:
        sup.load(small_policy, RunnerSettings(speed_scale=0.5))
        sup.start("pick up the red cube", record=True)
        assert sup.recording
        assert wait_until(lambda: sup.runner.chunks >= 4, timeout=60)
        assert sup.finish(success=True) is True
        assert recorder.wait_idle()
        info = recorder.last_episode
        assert info.success is True and info.labels.instruction == "pick up the red cube"
        with EpisodeReader(info.path) as ep:
            assert ep.attrs["policy_id"].startswith("native:")
            assert ep.attrs["confidence_method"] == "consistency"
            assert (ep.step("action_source") == 2).any()
        summary = next(s for s in recorder.index.refresh() if s.episode_id == info.episode_id)
        assert summary.source == "policy" and summary.confidence is not None
        assert any("(the operator)" in e.text for e in sup.log.since(0))
    finally:
        sup.close()
        recorder.disconnect()


def test_a_policy_that_does_not_fit_is_refused_and_nothing_is_loaded(station, tmp_path):
    bad = write_small_conv(tmp_path / "bad", SmallConvConfig(name="small_conv", width=8,
                                                             cameras=("overhead",)))
    sup = PolicySupervisor(station)
    try:
        with pytest.raises(PolicyError, match="overhead"):
            sup.load(str(bad))
        assert sup.runner is None and station.arbiter.policy is None
        assert sup.log.kinds() == ["error"]
        with pytest.raises(SupervisorError, match="no policy"):
            sup.start("pick up the red cube")
    finally:
        sup.close()


def test_a_run_finishes_by_itself_once_the_task_has_held(station, small_policy):
    verdicts = {"done": False}
    station.robot.episode_success = lambda instruction: verdicts["done"]
    sup = PolicySupervisor(station)
    try:
        sup.auto_finish_s = 0.3
        sup.load(small_policy)
        sup.start("pick up the red cube")
        assert wait_until(lambda: (sup.poll() or True) and "verdict" in sup.log.kinds(), 10)
        assert not sup.poll()
        verdicts["done"] = True
        assert wait_until(sup.poll, timeout=10)  # True once: the caller finishes the run
        assert not sup.poll()
        assert sup.finish() is True
        texts = [e.text for e in sup.log.since(0)]
        assert "Task: not yet accomplished" in texts and \
            "Task: accomplished (the robot's verdict)" in texts
        assert any("SUCCESS (the robot's verdict)" in t for t in texts)
    finally:
        sup.close()


def test_loading_while_a_run_is_active_is_refused(station, small_policy):
    sup = PolicySupervisor(station)
    try:
        sup.load(small_policy)
        sup.start("pick up the red cube")
        with pytest.raises(SupervisorError, match="finish it"):
            sup.load(small_policy)
        sup.finish(success=False)
        sup.unload()
        assert station.arbiter.policy is None and sup.runner is None
    finally:
        sup.close()
