"""Nothing lost: a recording process killed with SIGKILL mid-episode loses at most the last
second, and the next start finds the episode, recovers it and marks it ``recovered``."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest

from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.hdf5_superblock import SuperblockError, clear_write_flags, lookup3, write_flags
from vla_studio.data.recorder import Recorder
from vla_studio.data.recovery import recover_dataset

from .recording_processes import committed, kill, read_until, start_child
from .test_episode_file import make_schema, make_steps, write_episode


def steps_at_least(n: int):
    return lambda line: line.startswith("steps ") and int(line.split()[1]) >= n


@pytest.fixture
def killed_recording(tmp_path):
    """A dataset whose recording process was SIGKILLed after ~2 s; yields (dataset, kill time)."""
    dataset = tmp_path / "dataset"
    proc = start_child(dataset)
    try:
        read_until(proc, steps_at_least(40))
        t_kill = kill(proc)  # CLOCK_MONOTONIC is shared with the child
    finally:
        if proc.poll() is None:
            proc.kill()
    yield Dataset(dataset), t_kill


def test_sigkill_mid_episode_loses_at_most_a_second_and_is_recovered(killed_recording):
    dataset, t_kill = killed_recording
    leftovers = dataset.recording_files()
    assert len(leftovers) == 1 and write_flags(leftovers[0]) != 0  # the writer never closed it
    results = recover_dataset(dataset)
    assert [r.outcome for r in results] == ["recovered"]
    result = results[0]
    assert not dataset.recording_files() and not list(dataset.episodes_dir.glob("*.lock"))
    with EpisodeReader(result.path) as ep:
        ts = ep.step("timestamp")
        assert ts[-1] >= t_kill - 1.0, f"lost {t_kill - ts[-1]:.2f} s"
        assert (np.diff(ts) > 0).all() and ep.num_steps == result.num_steps == len(ts)
        assert ep.attrs["status"] == "recovered" and "recovered" in ep.attrs["flags"]
        assert ep.success() is None
        assert ep.step("is_first")[0] and ep.step("is_last")[-1]
        assert not ep.step("is_terminal").any()  # cut short, not ended: truncated (RLDS)
        assert ep.step("is_last").sum() == 1 and not ep.step("reward").any()
        for cam in ep.cameras:
            assert len(ep.image_bytes(cam, ep.num_steps - 1)) > 0
            assert all(len(b) > 0 for b in ep.iter_image_bytes(cam))
        assert ep.depth("wrist").shape[0] == ep.num_steps
        assert ep.attrs["source_counts"]["teleop"] == ep.num_steps
        assert ep.attrs["duration_s"] == pytest.approx(ts[-1] - ts[0])
        assert "_journal" not in ep.file
        assert ep.attrs["language_instructions"] == ["push the block to the left",
                                                     "slide the block left"]


def test_the_next_recorder_start_recovers_and_tells_the_operator(killed_recording, make_station):
    dataset, _ = killed_recording
    station = make_station()
    seen = []
    station.events.subscribe(seen.append)
    recorder = Recorder(station, dataset)
    recorder.connect()
    try:
        assert [r.outcome for r in recorder.recovered] == ["recovered"]
        assert any(e.kind == "recorder.recovered" for e in seen)
        summaries = recorder.index.list()
        assert len(summaries) == 1 and "recovered" in summaries[0].flags
    finally:
        recorder.disconnect()


def test_a_kill_between_the_first_and_second_commit_loses_nothing_committed(tmp_path):
    """The journal's step count was allocated by the first commit under SWMR: a kill before the
    second commit left a file recovery could never open ("invalid dataset size")."""
    dataset = tmp_path / "dataset"
    for trial in range(3):
        proc = start_child(dataset)
        line = read_until(proc, committed)  # the first commit, about 0.3 s into the episode
        kill(proc)
        [result] = recover_dataset(Dataset(dataset))
        assert result.outcome == "recovered", result.message
        assert result.num_steps >= int(line.split()[1]) > 0
        with EpisodeReader(result.path) as ep:
            assert ep.num_steps == result.num_steps and ep.step("is_last")[-1]
    assert len(Dataset(dataset).episode_files()) == 3 and not Dataset(dataset).recording_files()


def test_an_episode_killed_just_after_the_robot_judged_it_a_success_keeps_the_verdict(tmp_path):
    dataset = tmp_path / "dataset"
    proc = start_child(dataset, "--judge-success-after", "0.8", "--save-on-success", "30")
    read_until(proc, lambda line: line.startswith("verdict True"))
    time.sleep(0.3)  # the writer journals the verdict on its next pass (every <= 50 ms)
    kill(proc)
    [result] = recover_dataset(Dataset(dataset))
    assert result.outcome == "recovered"
    with EpisodeReader(result.path) as ep:
        assert ep.success() is True and ep.attrs["success_source"] == "robot"
        assert ep.step("reward")[-1] == 1.0 and ep.step("is_terminal")[-1]
        assert ep.step("is_terminal").sum() == 1


def test_an_episode_still_being_recorded_is_left_alone(tmp_path):
    dataset = tmp_path / "dataset"
    proc = start_child(dataset)
    try:
        read_until(proc, steps_at_least(10))
        results = recover_dataset(Dataset(dataset))
        assert [r.outcome for r in results] == ["in_use"]
        assert len(Dataset(dataset).recording_files()) == 1
    finally:
        proc.kill()
        proc.wait(10)


def test_a_saved_episode_not_yet_renamed_is_only_renamed(tmp_path):
    dataset = Dataset(tmp_path / "dataset")
    dataset.ensure()
    path = dataset.recording_path("20260101-000000_aaaaaaaa")
    write_episode(path, make_steps(6), make_schema(), success=1)
    [result] = recover_dataset(dataset)
    assert result.outcome == "renamed" and result.path.name == "20260101-000000_aaaaaaaa.h5"
    with EpisodeReader(result.path) as ep:
        assert ep.attrs["status"] == "complete" and ep.success() is True


def test_superblock_checksum_is_hdf5s_and_a_mismatch_leaves_the_file_untouched(tmp_path):
    # lookup3 reference values (Bob Jenkins' hashlittle test vectors)
    assert lookup3(b"") == 0xDEADBEEF
    assert lookup3(b"Four score and seven years ago") == 0x17770551
    assert lookup3(b"Four score and seven years ago", 1) == 0xCD628161
    path = tmp_path / "f.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f["x"] = np.arange(3)
    assert write_flags(path) == 0 and clear_write_flags(path) is False
    raw = bytearray(path.read_bytes())
    raw[11] = 5  # set the flags without fixing the checksum
    path.write_bytes(bytes(raw))
    with pytest.raises(SuperblockError, match="checksum"):
        clear_write_flags(path)
    assert path.read_bytes()[11] == 5
