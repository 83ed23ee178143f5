"""The Recorder through the real control loop: dry-run station, synthetic cameras, real files."""

from __future__ import annotations

import errno
import logging
import threading
import time

import numpy as np
import pytest

from vla_studio.core import commands
from vla_studio.core.session import RunState
from vla_studio.core.types import SourceKind
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.episode_writer import EpisodeFileWriter
from vla_studio.data.labels import EpisodeLabels, LabelError
from vla_studio.data.recorder import Recorder, RecorderError
from vla_studio.data.recording import (EpisodeState, RecorderConfig, RecorderState,
                                       camera_lost_after_s)
from vla_studio.data.tasks import TaskFile, TaskSampler, TaskSpec

from .conftest import wait_until

LABELS = EpisodeLabels("pick up the red cube", ("grab the red cube",), operator="ada",
                       scene_id="bench-1")


def record(recorder: Recorder, station, steps: int, **start_kwargs) -> str:
    """Start an episode and wait until ``steps`` steps are recorded."""
    episode = recorder.start(start_kwargs.pop("labels", LABELS), **start_kwargs)
    wait_until(lambda: (recorder.status().episode.steps if recorder.status().episode else 0) >= steps,
               what=f"{steps} recorded steps")
    return episode


@pytest.fixture
def recorder_for(tmp_path):
    recorders: list[Recorder] = []

    def make(station, **kwargs) -> Recorder:
        rec = Recorder(station, tmp_path / "dataset", **kwargs)
        rec.connect()
        recorders.append(rec)
        return rec

    yield make
    for rec in recorders:
        rec.disconnect()


def test_every_loop_step_is_recorded_with_tick_and_capture_times(make_station, recorder_for):
    station = make_station()
    observed = station.loop.subscribe("observer", 10_000)
    rec = recorder_for(station)
    record(rec, station, 30)
    rec.stop(success=True)
    assert rec.wait_idle()
    seen = []
    while (step := observed.get(timeout=0)) is not None:
        seen.append(step)
    info = rec.last_episode
    assert info.state == EpisodeState.SAVED and info.path.name.endswith(".h5")
    with EpisodeReader(info.path) as ep:
        ts = ep.step("timestamp")
        window = [s for s in seen if ts[0] <= s.t <= ts[-1]]
        # every tick of the window is in the file, in order, none twice
        assert [s.t for s in window] == ts.tolist()
        assert ep.num_steps == len(window) >= 30
        assert ep.step("action_source").tolist() == [1] * ep.num_steps
        np.testing.assert_allclose(ep.step("action"), np.stack([s.action for s in window]), atol=1e-7)
        for cam in ("front", "wrist"):
            frames = [s.observation.frames[cam] for s in window]
            assert ep.step(f"observation/image/{cam}/frame_index").tolist() == [f.index for f in frames]
            cap = ep.step(f"observation/image/{cam}/capture_time")
            np.testing.assert_array_equal(cap, [f.t_capture for f in frames])
            assert (cap <= ts).all()  # a frame is captured before the tick that reads it
        assert ep.depth("wrist").shape == (ep.num_steps, 240, 320)
        assert ep.attrs["language_instructions"] == ["pick up the red cube", "grab the red cube"]
        assert ep.attrs["operator"] == "ada" and ep.attrs["scene_id"] == "bench-1"
        assert ep.attrs["station_name"].startswith("Dry run") and "[robot]" in ep.attrs["station_profile"]
        assert ep.attrs["robot_type"] == "null" and ep.attrs["control_rate_hz"] == 20.0
        assert ep.attrs["cameras"]["wrist"]["intrinsics"]["fx"] == pytest.approx(160.0)
        assert ep.attrs["cameras"]["wrist"]["depth_scale"] == pytest.approx(0.001)
        assert ep.attrs["success"] == 1 and ep.attrs["success_source"] == "operator"
        assert ep.step("is_terminal").tolist() == [False] * (ep.num_steps - 1) + [True]
        assert ep.attrs["source_counts"]["teleop"] == ep.num_steps
        assert ep.attrs["duration_s"] == pytest.approx(ts[-1] - ts[0])
        assert "_journal" not in ep.file
    summary = rec.index.list()[0]
    assert summary.instruction == "pick up the red cube" and summary.success is True
    assert rec.history.count("pick up the red cube") == 1
    assert rec.history.complete("grab") == ["grab the red cube"]


def test_a_slow_camera_frame_is_encoded_once_and_shared_by_consecutive_steps(make_station, recorder_for):
    cams = [{"type": "synthetic", "name": "slow", "width": 160, "height": 120, "fps": 6.0}]
    station = make_station(rate=30.0, cameras=cams)
    rec = recorder_for(station)
    record(rec, station, 40)
    rec.stop()
    rec.wait_idle()
    with EpisodeReader(rec.last_episode.path) as ep:
        frame_index = ep.step("observation/image/slow/frame_index")
        index = ep.image_index("slow")
        distinct = np.unique(frame_index)
        assert len(distinct) < len(frame_index) / 2  # 6 fps seen by a 30 Hz loop
        for k in distinct:
            rows = index[frame_index == k]
            assert (rows == rows[0]).all() and rows[0, 1] > 0
        assert ep.file["steps/observation/image/slow/data"].shape[0] == \
            sum(int(index[frame_index == k][0, 1]) for k in distinct)
        stats = ep.attrs["camera_stats"]["slow"]
        assert stats["frames"] == len(distinct) and stats["duplicates"] == len(frame_index) - len(distinct)


def test_stop_frees_the_recorder_at_once_and_the_next_episode_follows(make_station, recorder_for):
    station = make_station()
    rec = recorder_for(station)
    first = record(rec, station, 20)
    rec.stop()
    assert rec.status().state == RecorderState.IDLE  # ready while the file is being finished
    second = record(rec, station, 20, seed=7)
    rec.stop()
    assert rec.wait_idle()
    paths = sorted(rec.dataset.episode_files())
    assert len(paths) == 2
    with EpisodeReader(paths[0]) as a, EpisodeReader(paths[1]) as b:
        assert {a.attrs["episode_id"], b.attrs["episode_id"]} == {first, second}
        assert a.step("timestamp")[-1] < b.step("timestamp")[0]
        assert b.attrs["seed"] == 7


def test_success_can_be_marked_after_stopping_and_changes_the_reward(make_station, recorder_for):
    station = make_station()
    rec = recorder_for(station)
    record(rec, station, 10)
    rec.stop()
    rec.mark_success(True)
    rec.wait_idle()
    wait_until(lambda: rec.last_episode.state == EpisodeState.SAVED)
    rec.mark_success(False)
    path = rec.last_episode.path

    def label():
        with EpisodeReader(path) as ep:
            return ep.success(), ep.step("reward")[-1], ep.attrs["success_source"]
    wait_until(lambda: label() == (False, 0.0, "operator"), what="failure written")
    rec.mark_success(True)
    wait_until(lambda: label() == (True, 1.0, "operator"), what="success written")
    wait_until(lambda: rec.index.list()[0].success is True, what="index updated")


def test_an_episode_that_ends_without_success_is_truncated_not_terminal(make_station,
                                                                       recorder_for):
    """RLDS: is_terminal only where the episode really ended (a success); a stop, a failure or
    an unknown outcome is a truncation (is_last without is_terminal)."""
    station = make_station()
    rec = recorder_for(station)
    for success in (False, None):
        record(rec, station, 5)
        rec.stop(success=success)
        rec.wait_idle()
        with EpisodeReader(rec.last_episode.path) as ep:
            assert ep.success() is success
            assert ep.step("is_last")[-1] and ep.step("is_last").sum() == 1
            assert not ep.step("is_terminal").any() and not ep.step("reward").any()


def test_simulated_robots_judge_success_at_stop(make_station, recorder_for):
    station = make_station()
    station.robot.episode_success = lambda instruction: instruction == LABELS.instruction
    rec = recorder_for(station)
    record(rec, station, 5)
    rec.stop()
    rec.wait_idle()
    with EpisodeReader(rec.last_episode.path) as ep:
        assert ep.success() is True and ep.attrs["success_source"] == "robot"


def test_the_live_verdict_is_followed_and_a_held_success_saves_the_episode(make_station,
                                                                         recorder_for, events):
    station = make_station()
    seen = events(station)
    done = threading.Event()
    judged_on = set()

    def judge(instruction):
        judged_on.add(threading.current_thread().name)
        return done.is_set() if instruction == LABELS.instruction else None
    station.robot.episode_success = judge
    rec = recorder_for(station)
    rec.save_on_success_s = 0.3
    record(rec, station, 5)
    wait_until(lambda: (rec.poll_task(), rec.status().task.success)[1] is False,
               what="a 'not yet' verdict")
    assert judged_on == {"control-loop"}  # the robot is only asked on the loop thread
    done.set()
    wait_until(lambda: rec.poll_task() or rec.status().episode is None, what="auto-save")
    assert rec.status().episode is None  # the recorder stopped it, after the settle time
    assert rec.last_episode.success is True
    rec.wait_idle()
    with EpisodeReader(rec.last_episode.path) as ep:
        assert ep.success() is True and ep.attrs["success_source"] == "robot"
        assert ep.attrs["duration_s"] >= 0.3
    assert any(e.kind == "recorder.task_done" for e in seen)
    assert rec.status().task.success is None  # idle: no verdict


def test_a_success_that_does_not_hold_or_an_operator_choice_keeps_recording(make_station,
                                                                           recorder_for):
    station = make_station()
    verdicts = iter([True, False] * 1000)
    station.robot.episode_success = lambda instruction: next(verdicts)
    rec = recorder_for(station)
    rec.save_on_success_s = 1.0
    record(rec, station, 5)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert not rec.poll_task()  # flickering (a new answer every 0.1 s): never held for 1 s
        time.sleep(0.02)
    assert rec.status().state == RecorderState.RECORDING
    station.robot.episode_success = lambda instruction: True
    rec.save_on_success_s = None  # the operator decides
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert not rec.poll_task()
        time.sleep(0.02)
    assert rec.status().task.success is True and rec.status().task.held_s > 0.5
    assert rec.status().state == RecorderState.RECORDING
    rec.stop()


def test_a_robot_that_cannot_judge_or_fails_to_gives_no_verdict(make_station, recorder_for,
                                                                caplog):
    station = make_station()
    rec = recorder_for(station)
    rec.save_on_success_s = 0.0
    record(rec, station, 5)
    for _ in range(10):
        assert not rec.poll_task()  # the dry-run robot cannot judge
        time.sleep(0.02)
    assert rec.status().task.success is None

    def broken(instruction):
        raise RuntimeError("judge crashed")
    station.robot.episode_success = broken
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            assert not rec.poll_task()
            time.sleep(0.02)
    assert rec.status().state == RecorderState.RECORDING and rec.status().task.success is None
    assert "judge crashed" in caplog.text
    rec.stop()


def test_discard_moves_to_trash_and_rerecord_repeats_labels_and_seed(make_station, recorder_for, events):
    station = make_station()
    seen = events(station)
    rec = recorder_for(station)
    record(rec, station, 5, seed=42)
    rec.discard()  # while recording
    assert rec.status().state == RecorderState.IDLE
    rec.wait_idle()
    assert rec.last_episode.state == EpisodeState.DISCARDED
    assert len(rec.dataset.episode_files(trashed=True)) == 1 and not rec.dataset.episode_files()
    record(rec, station, 5, seed=42)
    rec.stop()
    rec.wait_idle()
    kept = rec.last_episode
    again = rec.rerecord()  # trashes the saved one, records the same task again
    wait_until(lambda: (rec.status().episode.steps if rec.status().episode else 0) >= 5)
    status = rec.status()
    assert status.episode.episode_id == again and status.episode.labels == LABELS
    rec.stop()
    rec.wait_idle()
    trashed = rec.dataset.episode_files(trashed=True)
    assert kept.path.name in {p.name for p in trashed} and len(trashed) == 2
    with EpisodeReader(rec.dataset.episode_files()[0]) as ep:
        assert ep.attrs["seed"] == 42 and ep.attrs["episode_id"] == again
    assert [s.trashed for s in rec.index.refresh(include_trashed=True)].count(True) == 2
    assert any(e.kind == "recorder.discarded" for e in seen)


def test_station_commands_drive_the_recorder(make_station, recorder_for):
    station = make_station()
    tasks = TaskSampler(TaskFile((TaskSpec("open the drawer"), TaskSpec("close the drawer"))))
    rec = recorder_for(station, tasks=tasks)
    assert rec.labels.instruction == "open the drawer"
    assert station.run_command(commands.RECORD_TOGGLE)
    assert rec.status().state == RecorderState.RECORDING
    wait_until(lambda: rec.status().episode.steps >= 5)
    station.run_command(commands.EPISODE_SUCCESS)  # ends the episode as a success
    assert rec.status().state == RecorderState.IDLE
    assert rec.labels.instruction == "close the drawer"  # next task proposed after the save
    station.run_command(commands.EPISODE_FAILURE)  # nothing open: relabels the last one
    rec.wait_idle()
    wait_until(lambda: rec.index.refresh() and rec.index.list()[0].success is False)
    station.run_command(commands.TASK_NEXT)
    assert rec.labels.instruction == "open the drawer"
    station.run_command(commands.RECORD_START)
    wait_until(lambda: rec.status().episode.steps >= 3)
    station.run_command(commands.RECORD_DISCARD)
    rec.wait_idle()
    assert rec.last_episode.state == EpisodeState.DISCARDED


def test_a_refused_command_is_reported_not_raised(make_station, recorder_for, events):
    station = make_station()
    seen = events(station)
    recorder_for(station)
    station.run_command(commands.RECORD_STOP)
    errors = [e for e in seen if e.kind == "recorder.error"]
    assert errors and "no episode is being recorded" in errors[0].message


def test_start_is_refused_without_instruction_twice_or_while_estopped(make_station, recorder_for):
    station = make_station()
    rec = recorder_for(station)
    with pytest.raises(LabelError, match="needs a language instruction"):
        rec.start(EpisodeLabels(""))
    rec.start(LABELS)
    with pytest.raises(RecorderError, match="already being recorded"):
        rec.start(LABELS)
    rec.stop()
    station.latch.trigger("test", "test")
    with pytest.raises(RecorderError, match="e-stop"):
        rec.start(LABELS)
    assert rec.status().state == RecorderState.IDLE


def test_camera_loss_pauses_the_episode_and_the_robot(make_station, recorder_for, events):
    cams = [{"type": "synthetic", "name": "front", "width": 160, "height": 120, "fps": 30.0},
            {"type": "synthetic", "name": "wrist", "width": 160, "height": 120, "fps": 30.0,
             "fail_after_frames": 40, "reconnect": False}]
    station = make_station(cameras=cams)
    seen = events(station)
    rec = recorder_for(station)
    rec.start(LABELS)
    wait_until(lambda: rec.status().state == RecorderState.PAUSED, what="pause on camera loss")
    assert station.session.state == RunState.PAUSED
    assert any(e.kind == "recorder.paused" and "wrist" in e.message for e in seen)
    with pytest.raises(RecorderError, match="camera 'wrist' has no current image"):
        rec.resume()
    rec.stop()
    rec.wait_idle()
    with EpisodeReader(rec.last_episode.path) as ep:
        assert (ep.step("observation/image/wrist/frame_index") >= 0).all()  # no imageless step
        assert (ep.image_index("wrist")[:, 1] > 0).all()
        last_frame_t = ep.step("observation/image/wrist/capture_time").max()
        assert ep.step("timestamp")[-1] - last_frame_t <= camera_lost_after_s(station.cameras["wrist"])


def test_camera_loss_in_continue_mode_records_the_gap_and_flags_it(make_station, recorder_for, events):
    cams = [{"type": "synthetic", "name": "wrist", "width": 160, "height": 120, "fps": 30.0,
             "fail_after_frames": 30, "reconnect": False}]
    station = make_station(cameras=cams, recording={"on_camera_failure": "continue"})
    seen = events(station)
    rec = recorder_for(station)
    rec.start(LABELS)
    wait_until(lambda: any(e.kind == "recorder.camera_gap" for e in seen), what="gap event")
    wait_until(lambda: rec.status().episode.steps >= 40)
    assert rec.status().state == RecorderState.RECORDING
    rec.stop()
    rec.wait_idle()
    with EpisodeReader(rec.last_episode.path) as ep:
        frame_index = ep.step("observation/image/wrist/frame_index")
        gaps = frame_index < 0
        assert gaps.any() and not gaps[0]
        assert (ep.image_index("wrist")[gaps, 1] == 0).all()
        assert np.isnan(ep.step("observation/image/wrist/capture_time")[gaps]).all()
        assert "camera_gap" in ep.attrs["flags"]
        assert ep.attrs["camera_stats"]["wrist"]["gaps"] == int(gaps.sum())


def test_a_failed_write_stops_cleanly_keeps_a_valid_file_and_tells_the_operator(
        make_station, recorder_for, events, monkeypatch):
    station = make_station()
    seen = events(station)
    real_append = EpisodeFileWriter.append
    calls = {"n": 0}

    def failing_append(self, batch):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(self, batch)

    monkeypatch.setattr(EpisodeFileWriter, "append", failing_append)
    rec = recorder_for(station)
    rec.start(LABELS)
    wait_until(lambda: any(e.kind == "recorder.disk_full" for e in seen), what="disk-full event")
    full = next(e for e in seen if e.kind == "recorder.disk_full")
    assert full.level == logging.ERROR and "Free disk space" in full.message
    assert rec.status().state == RecorderState.IDLE
    assert station.session.state == RunState.PAUSED
    rec.wait_idle()
    info = rec.last_episode
    assert info.state == EpisodeState.SAVED and "write_failed" in info.flags
    with EpisodeReader(info.path) as ep:
        assert ep.attrs["status"] == "complete" and ep.num_steps > 0
        assert ep.step("is_last")[-1] and len(ep.image_bytes("front", ep.num_steps - 1)) > 0


def test_an_episode_without_steps_saves_nothing(make_station, recorder_for, events):
    station = make_station()
    seen = events(station)
    rec = recorder_for(station, config=RecorderConfig(finish_grace_s=0.05))
    station.loop.stop()
    rec.start(LABELS, reset_scene=False, drive=False)
    rec.stop()
    rec.wait_idle()
    assert rec.last_episode.state == EpisodeState.EMPTY
    assert not rec.dataset.episode_files() and not rec.dataset.recording_files()
    assert any(e.kind == "recorder.empty" for e in seen)


def test_disconnect_saves_the_open_episode(make_station, tmp_path):
    station = make_station()
    rec = Recorder(station, tmp_path / "dataset")
    rec.connect()
    rec.start(LABELS)
    wait_until(lambda: rec.status().episode.steps >= 5)
    rec.disconnect()
    files = rec.dataset.episode_files()
    assert len(files) == 1 and not rec.dataset.recording_files()
    with EpisodeReader(files[0]) as ep:
        assert ep.num_steps >= 5 and ep.step("action_source")[0] == 1


def test_policy_runs_store_policy_actions_and_confidence(make_station, recorder_for):
    from vla_studio.core.arbiter import ActionSource, Proposal
    from vla_studio.core.session import ControlMode

    class ConfidentPolicy(ActionSource):
        kind = SourceKind.POLICY
        policy_id = "tiny-vla@1"

        def propose(self, obs, now, dt):
            action = np.array([0.0, 0.001, 0.0, 0.0, 0.0, 0.0, 0.5])
            return Proposal(action, now, extras={"policy_action": action, "confidence": 0.8})

    station = make_station()
    station.set_policy_source(ConfidentPolicy())
    station.session.set_mode(ControlMode.POLICY)
    rec = recorder_for(station)
    record(rec, station, 10)
    rec.stop()
    rec.wait_idle()
    with EpisodeReader(rec.last_episode.path) as ep:
        assert ep.attrs["policy_id"] == "tiny-vla@1"
        assert (ep.step("action_source") == 2).all()
        np.testing.assert_allclose(ep.step("confidence"), 0.8)
        np.testing.assert_allclose(ep.step("policy_action")[:, 1], 0.001)


def test_marking_the_last_episode_follows_it_into_the_trash(make_station, recorder_for):
    station = make_station()
    rec = recorder_for(station)
    record(rec, station, 5)
    rec.stop(success=True)
    rec.wait_idle()
    wait_until(lambda: rec.last_episode.state == EpisodeState.SAVED)
    trashed = rec.dataset.trash(rec.last_episode.path)  # the dataset browser moved it
    rec.mark_success(False)

    def label():
        with EpisodeReader(trashed) as ep:
            return ep.success()
    wait_until(lambda: label() is False, what="failure written to the trashed file")
    rec.discard()  # already in the trash: stays there, reads as discarded
    wait_until(lambda: rec.last_episode.state == EpisodeState.DISCARDED)
    assert rec.last_episode.path == trashed and not rec.last_episode.error
