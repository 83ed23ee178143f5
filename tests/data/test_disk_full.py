"""Disk full: a real recording process on a tiny filesystem stops cleanly, keeps a valid file,
tells the operator, and never crashes.

The small disk is a 10 MB tmpfs mounted in a private mount namespace (``unshare -rm``, no root
needed where user namespaces are enabled). Where that is not possible the same process runs
under a file size limit (``ulimit -f``): writes past it fail with EFBIG, which the recorder must
handle the same way.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.file_space import SEAL_RESERVE_BYTES, bytes_beyond_end
from vla_studio.data.labels import EpisodeLabels
from vla_studio.data.recorder import Recorder
from vla_studio.data.recovery import recover_dataset

from .conftest import wait_until

CHILD = Path(__file__).with_name("recording_child.py")
DRIVER = Path(__file__).with_name("full_disk_driver.py")
TMPFS_MB = 10
FSIZE_LIMIT = 5_000_000
BIG = ("--size", "640x480")  # ~2 MB/s, so the disk fills in seconds


@functools.cache
def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = Path("/tmp") / "vla-studio-tmpfs-probe"
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {probe}"],
                        capture_output=True).returncode == 0
    probe.rmdir()
    return ok


def limits() -> list[str]:
    return ["tmpfs", "fsize"] if can_mount_tmpfs() else ["fsize"]


def run_on_small_disk(tmp_path: Path, *args: str, how: str = "") -> tuple[str, Path, str]:
    """Record until the disk is full; returns (stdout, dataset copy, how the disk was limited)."""
    out = tmp_path / "dataset"
    child = [sys.executable, str(CHILD)]
    how = how or limits()[0]
    if how == "tmpfs":
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        script = (f"mount -t tmpfs -o size={TMPFS_MB}m tmpfs {mnt} || exit 97; "
                  f"{' '.join(child)} {mnt}/ds --min-free-mb 0 --seconds 120 "
                  f"{' '.join((*BIG, *args))}; "
                  f"rc=$?; cp -a {mnt}/ds {out}; exit $rc")
        cmd = ["unshare", "-rm", "sh", "-c", script]
    else:
        cmd = [*child, str(out), "--min-free-mb", "0", "--seconds", "120",
               "--fsize-limit", str(FSIZE_LIMIT), *BIG, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"recording process failed ({how}, rc {proc.returncode}): " \
                                 f"{proc.stderr[-3000:]}"
    return proc.stdout, out, how


def events(stdout: str, kind: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(f"event {kind} ")]


def test_disk_full_stops_recording_cleanly_with_a_valid_file(tmp_path):
    stdout, dataset, how = run_on_small_disk(tmp_path)
    full = events(stdout, "recorder.disk_full")
    assert len(full) == 1 and "Free disk space" in full[0]
    assert events(stdout, "recorder.saved"), stdout
    done = [line for line in stdout.splitlines() if line.startswith("done ")]
    assert done and done[0].split()[1] == "saved"
    [path] = Dataset(dataset).episode_files()
    with EpisodeReader(path) as ep:
        assert ep.attrs["status"] == "complete" and "disk_full" in ep.attrs["flags"]
        assert ep.num_steps > 10 and ep.step("is_last")[-1]
        assert all(len(b) > 0 for b in ep.iter_image_bytes("front"))
        assert ep.depth("wrist").shape[0] == ep.num_steps
    assert not Dataset(dataset).recording_files(), how


@pytest.mark.parametrize("how", limits())
def test_a_write_the_disk_refuses_never_crashes_and_the_data_is_kept(tmp_path, how):
    """Without the space guard HDF5 itself hits the full disk: the recorder gives back its
    reserve and closes the file (tmpfs), or, when no space can be freed (file size limit),
    leaves the file for recovery; the process exits normally either way."""
    stdout, dataset, how = run_on_small_disk(tmp_path, "--no-space-guard", how=how)
    assert events(stdout, "recorder.disk_full")
    ds = Dataset(dataset)
    if how == "tmpfs":
        [path] = ds.episode_files()
        with EpisodeReader(path) as ep:
            assert "write_failed" in ep.attrs["flags"] and ep.attrs["status"] == "complete"
            steps = ep.num_steps
    else:
        assert events(stdout, "recorder.failed") and len(ds.recording_files()) == 1
        [result] = recover_dataset(ds)
        assert result.outcome == "recovered"
        with EpisodeReader(result.path) as ep:
            steps = ep.num_steps
            assert all(len(b) > 0 for b in ep.iter_image_bytes("front"))
    assert steps > 10


def test_a_file_size_limit_is_respected_before_writing(tmp_path):
    dataset = tmp_path / "dataset"
    proc = subprocess.run([sys.executable, str(CHILD), str(dataset), "--min-free-mb", "0",
                           "--fsize-limit", str(FSIZE_LIMIT), "--seconds", "120", *BIG],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    full = events(proc.stdout, "recorder.disk_full")
    assert full and "file size limit" in full[0]
    [path] = Dataset(dataset).episode_files()
    assert path.stat().st_size <= FSIZE_LIMIT
    with EpisodeReader(path) as ep:
        assert ep.attrs["status"] == "complete" and ep.step("is_last")[-1]


def held_full(tmp_path: Path, scenario: str, *args: str) -> dict:
    """Run a scenario of full_disk_driver.py on a private tmpfs (needs ``unshare -rm``)."""
    assert can_mount_tmpfs(), ("these tests need a private tmpfs: 'unshare -rm' with user "
                               "namespaces, or root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["unshare", "-rm", sys.executable, str(DRIVER), scenario, str(mnt),
                           *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{scenario} failed (rc {proc.returncode}): {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_disk_another_process_holds_full_keeps_the_open_episode(tmp_path):
    """The reserve beside the dataset was taken by the other writer the moment it was freed,
    and the episode's file was left unreadable; the file's own reserve cannot be taken."""
    r = held_full(tmp_path, "held_full")
    assert r["rc"] == 0, r["stderr"]
    assert events(r["stdout"], "recorder.disk_full") and events(r["stdout"], "recorder.saved")
    assert "done saved" in r["stdout"]
    for state in (r["while_full"], r["after_freeing"]):
        assert state["results"] == [] and state["recording"] == []  # nothing left to recover
        [ep] = state["episodes"]
        assert ep["status"] == "complete" and "disk_full" in ep["flags"]
        assert ep["steps"] >= r["committed_before_full"] and ep["is_last"] and ep["images"]


def test_a_file_the_full_disk_broke_is_kept_and_recovered_once_there_is_space(tmp_path):
    """Without the space guard HDF5 itself hits the held-full disk mid-write. The writer takes
    what room it can get to close the file (then it is saved, flagged ``write_failed``), else
    the file stays for recovery, which waits (never quarantines) while the disk is full and
    then repairs it. Either way the committed steps are kept."""
    r = held_full(tmp_path, "held_full", "--no-space-guard")
    assert r["rc"] == 0 and events(r["stdout"], "recorder.disk_full"), r["stderr"]
    while_full = r["while_full"]
    if not while_full["results"]:  # the writer closed and sealed it itself
        [ep] = while_full["episodes"]
        assert ep["status"] == "complete" and "write_failed" in ep["flags"]
    else:
        outcomes = [o for o, _, _ in while_full["results"]]
        assert outcomes in (["no_space"], ["recovered"]), while_full
        state = while_full if outcomes == ["recovered"] else r["after_freeing"]
        assert [o for o, _, _ in state["results"]] == ["recovered"], state
        [ep] = state["episodes"]
        assert ep["status"] == "recovered"
    assert ep["steps"] >= r["committed_before_full"] and ep["is_last"] and ep["images"]
    assert r["after_freeing"]["recording"] == []


def test_recovery_on_a_disk_that_is_still_full_seals_with_the_files_own_reserve(tmp_path):
    r = held_full(tmp_path, "killed_full")
    assert r["free_bytes"] == 0
    [(outcome, steps, message)] = r["while_full"]["results"]
    assert outcome == "recovered", message
    assert steps >= r["committed_before_kill"]
    [ep] = r["while_full"]["episodes"]
    assert ep["status"] == "recovered" and ep["is_last"] and ep["images"]


def test_the_next_start_on_a_full_disk_says_so_in_one_line(tmp_path):
    r = held_full(tmp_path, "start_full")
    assert r["rc"] == 1 and "Traceback" not in r["stderr"], r["stderr"]
    errors = [line for line in r["stderr"].splitlines() if line.startswith("vla-studio record:")]
    assert len(errors) == 1, r["stderr"]
    assert "MB free" in errors[0] and "Free disk space" in errors[0]


def test_the_file_holds_a_disk_reserve_while_recording_and_gives_it_back_when_sealed(
        make_station, tmp_path):
    station = make_station()
    rec = Recorder(station, tmp_path / "dataset")
    rec.connect()
    try:
        rec.start(EpisodeLabels("push the block"))
        wait_until(lambda: rec.status().episode.steps >= 20, what="20 recorded steps")
        [recording] = rec.dataset.recording_files()
        assert bytes_beyond_end(recording) >= SEAL_RESERVE_BYTES
        rec.stop()
        assert rec.wait_idle()
    finally:
        rec.disconnect()
    [path] = rec.dataset.episode_files()
    assert bytes_beyond_end(path) < 64 << 10
