"""Recovery never gives up on a file: it repairs what a killed writer left (files of earlier
versions included), falls back to the data itself when the journal is damaged, and moves a file
it cannot repair aside once, with the reason, telling the operator."""

from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np

from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.hdf5_superblock import clear_write_flags
from vla_studio.data.labels import EpisodeLabels
from vla_studio.data.recorder import Recorder
from vla_studio.data.recovery import damaged_dir, recover_dataset
from vla_studio.data.rlds.exporter import find_episode_files

from .conftest import wait_until
from .recording_processes import committed, kill, read_until, start_child


def test_a_file_of_an_earlier_version_killed_after_its_first_commit_is_recovered(tmp_path):
    """Files recorded before the fix have the journal whose storage the first commit allocated
    past the end their superblock records; recovery repairs the superblock and keeps them."""
    dataset = tmp_path / "dataset"
    proc = start_child(dataset, "--legacy-journal")
    line = read_until(proc, committed)
    kill(proc)
    [result] = recover_dataset(Dataset(dataset))
    assert result.outcome == "recovered", result.message
    assert result.num_steps >= int(line.split()[1]) > 0
    with EpisodeReader(result.path) as ep:
        assert ep.num_steps == result.num_steps and "_journal" not in ep.file


def corrupt_object_header(path, name: str) -> None:
    """Overwrite the object header of dataset ``name`` after its signature (bad version)."""
    probe = path.with_name("probe.h5")
    shutil.copy(path, probe)
    clear_write_flags(probe)
    with h5py.File(probe, "r") as f:
        addr = h5py.h5o.get_info(f[name].id).addr
    probe.unlink()
    with open(path, "r+b") as fh:
        fh.seek(addr)
        assert fh.read(4) == b"OHDR"
        fh.write(b"\xff" * 12)


def test_an_unreadable_journal_falls_back_to_the_longest_consistent_prefix(tmp_path):
    dataset = tmp_path / "dataset"
    proc = start_child(dataset)
    line = read_until(proc, lambda line: committed(line, 30))
    kill(proc)
    [path] = Dataset(dataset).recording_files()
    corrupt_object_header(path, "_journal/committed_steps")
    [result] = recover_dataset(Dataset(dataset))
    assert result.outcome == "recovered", result.message
    assert result.num_steps >= int(line.split()[1])
    with EpisodeReader(result.path) as ep:
        ts = ep.step("timestamp")
        assert (ts > 0).all() and (np.diff(ts) > 0).all()
        assert {"recovered", "journal_damaged"} <= set(ep.attrs["flags"])
        assert "_journal" not in ep.file and ep.step("is_last")[-1]
        assert all(len(b) > 0 for b in ep.iter_image_bytes("front"))


def test_a_file_that_cannot_be_repaired_is_moved_aside_once_and_reported(tmp_path, make_station):
    dataset = Dataset(tmp_path / "dataset")
    dataset.ensure()
    bad = dataset.recording_path("20260101-000000_deadbeef")
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 16)  # a superblock, then noise
    (bad.parent / "20260101-000000_deadbeef.lock").touch()
    station = make_station()
    seen = []
    station.events.subscribe(seen.append)
    first = Recorder(station, dataset)
    first.connect()
    first.disconnect()
    [result] = first.recovered
    assert result.outcome == "quarantined" and result.reason
    moved = damaged_dir(dataset) / bad.name
    assert result.path == moved and moved.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    reason = moved.with_name(f"{bad.name}.reason.txt").read_text(encoding="utf-8")
    assert bad.name in reason and result.reason in reason
    assert not dataset.recording_files() and not list(dataset.episodes_dir.iterdir())
    quarantined = [e for e in seen if e.kind == "recovery.quarantined"]
    assert len(quarantined) == 1 and quarantined[0].level == logging.WARNING
    assert quarantined[0].data["file"] == str(bad) and quarantined[0].data["reason"]
    assert not any(e.kind == "recorder.recovery_failed" for e in seen)
    # the next start does not retry it (nor tell it again), and export never sees it
    second = Recorder(station, dataset)
    second.connect()
    second.disconnect()
    assert second.recovered == [] and len([e for e in seen if e.kind.startswith("recover")]) == 1
    third = Recorder(station, dataset)  # record one episode: export lists only that one
    third.connect()
    third.start(EpisodeLabels("push the block"))
    wait_until(lambda: third.status().episode.steps >= 5, what="5 recorded steps")
    third.disconnect()
    assert [p.name for p in find_episode_files(dataset.root)] == \
        [p.name for p in dataset.episode_files()] and len(dataset.episode_files()) == 1
