"""Sealed episodes are immutable: labels, the operator's later verdict and their edit log live in
an atomically replaced sidecar that every reader merges, edits work while another process reads
the episode, and files from older versions are migrated on their first edit."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from vla_studio.data.annotations import (SIDECAR_FORMAT, AnnotationError, annotation_history,
                                         sidecar_path, undo_annotation, write_annotations)
from vla_studio.data.dataset import Dataset
from vla_studio.data.dataset_index import DatasetIndex
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.episode_writer import set_success
from vla_studio.data.rlds import ExportOptions, RldsExporter

from .test_dataset_index import saved_episode

A, B = "20260101-000000_aaaaaaaa", "20260101-000001_bbbbbbbb"
HOLD_OPEN = """
import sys, time, h5py
f = h5py.File(sys.argv[1], "r", swmr=sys.argv[2] == "swmr")
f["steps/action"][0]
print("open", flush=True)
time.sleep(60)
"""


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vla_studio", "--log-level", "WARNING",
                           "dataset", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def dataset(tmp_path):
    ds = Dataset(tmp_path / "ds")
    ds.ensure()
    saved_episode(ds, A, success=1, instruction="open the drawer")
    saved_episode(ds, B, success=1, instruction="close the drawer")
    return ds


def test_edits_live_in_the_sidecar_and_the_sealed_file_is_never_written(dataset):
    path = dataset.episodes_dir / f"{A}.h5"
    before, mtime = digest(path), path.stat().st_mtime_ns
    write_annotations(path, {"success": False, "notes": "dropped it", "trim": [1, 3]})
    set_success(path, 1, "operator")
    assert undo_annotation(path) is True
    sidecar = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert sidecar["format"] == SIDECAR_FORMAT and sidecar["episode"] == path.name
    assert sidecar["annotations"] == {"success": 0, "success_source": "researcher",
                                      "notes": "dropped it", "trim": [1, 3]}
    assert [e["source"] for e in sidecar["history"]] == ["researcher"]
    assert digest(path) == before and path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in dataset.episodes_dir.iterdir()) == sorted(
        [f"{A}.h5", f"{A}.annotations.json", f"{B}.h5"])  # no temporary file left behind
    with EpisodeReader(path) as ep:
        assert ep.success() is False and ep.trim() == (1, 3) and ep.success_source() == "researcher"
        assert ep.attrs["success"] == 1  # the recording as it was sealed


def test_the_operators_later_verdict_reaches_every_reader_and_the_export(dataset, tmp_path):
    path = dataset.episodes_dir / f"{A}.h5"
    before = digest(path)
    set_success(path, 0, "operator")  # what the recorder does when Failure is pressed after saving
    assert digest(path) == before
    with EpisodeReader(path) as ep:
        assert ep.success() is False and ep.success_source() == "operator"
        assert ep.file["steps/reward"][-1] == 1.0 and ep.step("reward").tolist() == [0.0] * 4
    [a, b] = DatasetIndex(dataset).refresh()
    assert a.success is False and b.success is True
    shown = cli("show", A, "--dataset", str(dataset.root))
    assert shown.returncode == 0 and "success: False" in shown.stdout, shown.stderr
    assert "label edits: 1" in shown.stdout
    report = RldsExporter(dataset.root, tmp_path / "out",
                          ExportOptions(name="demo", success_only=True)).run()
    meta = json.loads((report.dataset_dir / "metadata.json").read_text())
    assert [e["file"].split("/")[-1] for e in meta["episodes"]] == [f"{B}.h5"]


@pytest.mark.parametrize("mode", ["plain", "swmr"])
def test_labels_can_be_edited_while_another_process_reads_the_episode(dataset, mode):
    path = dataset.episodes_dir / f"{A}.h5"
    before = digest(path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(path), mode],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        proc = cli("label", A, "--dataset", str(dataset.root), "--failure", "--notes", "slipped")
        assert proc.returncode == 0, proc.stderr
        set_success(path, -1, "operator")
        assert cli("undo", A, "--dataset", str(dataset.root)).returncode == 0
        assert holder.poll() is None  # the reader still holds the file
    finally:
        holder.kill()
        holder.wait()
    with EpisodeReader(path) as ep:
        assert ep.success() is False and ep.annotations["notes"] == "slipped"
    assert digest(path) == before


def write_legacy_annotations(path) -> None:
    """Annotations the way versions before the sidecar stored them: inside the episode file."""
    history = [
        {"t": 1.0, "changes": {"instructions": {"old": {"absent": True},
                                                "new": json.dumps(["pull the drawer"])},
                               "success": {"old": {"absent": True}, "new": 0}}},
        {"t": 2.0, "changes": {"trim": {"old": {"absent": True}, "new": [1, 3]}}},
    ]
    with h5py.File(path, "r+") as f:
        group = f.create_group("annotations")
        group.attrs["instructions"] = json.dumps(["pull the drawer"])
        group.attrs["success"] = np.int8(0)
        group.attrs["trim"] = np.array([1, 3], np.int64)
        group.attrs["history"] = json.dumps(history)


def test_older_files_are_read_as_they_are_and_migrated_on_the_first_edit(dataset):
    path = dataset.episodes_dir / f"{A}.h5"
    write_legacy_annotations(path)
    before = digest(path)
    with EpisodeReader(path) as ep:
        assert ep.instructions() == ["pull the drawer"] and ep.success() is False
        assert ep.trim() == (1, 3) and ep.annotation_state.origin == "legacy"
    assert DatasetIndex(dataset).refresh()[0].instruction == "pull the drawer"
    assert len(annotation_history(path)) == 2 and not sidecar_path(path).exists()

    proc = cli("label", A, "--dataset", str(dataset.root), "--quality", "4")
    assert proc.returncode == 0, proc.stderr
    sidecar = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert sidecar["migrated"]["entries"] == 2
    assert sidecar["annotations"] == {"instructions": ["pull the drawer"], "success": 0,
                                      "trim": [1, 3], "quality": 4}
    assert sidecar["history"][0]["changes"]["instructions"]["new"] == ["pull the drawer"]
    assert digest(path) == before  # the old group stays as it was: the h5 is not written
    [row] = [s for s in DatasetIndex(dataset).refresh() if s.name == f"{A}.h5"]
    assert row.quality == 4 and row.instruction == "pull the drawer"
    for _ in range(2):  # the new edit, then the migrated trim
        assert undo_annotation(path) is True
    with EpisodeReader(path) as ep:
        assert ep.trim() == (0, 4) and ep.success() is False
        assert ep.annotation_state.origin == "sidecar"
    assert undo_annotation(path) is True and undo_annotation(path) is False
    with EpisodeReader(path) as ep:
        assert ep.instructions() == ["open the drawer"] and ep.success() is True
    assert digest(path) == before


def test_trash_restore_and_empty_trash_move_the_sidecar_with_its_episode(dataset):
    path = dataset.episodes_dir / f"{A}.h5"
    write_annotations(path, {"success": False})
    index = DatasetIndex(dataset)
    index.refresh()
    assert cli("trash", A, "--dataset", str(dataset.root)).returncode == 0
    trashed = dataset.trash_dir / path.name
    assert sidecar_path(trashed).exists() and not sidecar_path(path).exists()
    [row] = [s for s in index.refresh(include_trashed=True) if s.name == path.name]
    assert row.trashed and row.success is False
    assert cli("restore", A, "--dataset", str(dataset.root)).returncode == 0
    with EpisodeReader(path) as ep:
        assert ep.success() is False
    # A move interrupted between the two renames: the sidecar is put back beside its episode.
    dataset.trash(path)
    sidecar_path(trashed).rename(sidecar_path(path))
    [row] = [s for s in index.refresh(include_trashed=True) if s.trashed]
    assert row.success is False and sidecar_path(trashed).exists()
    assert dataset.empty_trash() == 1
    assert not sidecar_path(trashed).exists() and not any(dataset.trash_dir.iterdir())


def test_a_damaged_sidecar_is_reported_and_never_overwritten(dataset):
    path = dataset.episodes_dir / f"{A}.h5"
    sidecar_path(path).write_bytes(b"{not json")
    with EpisodeReader(path) as ep:
        assert ep.success() is True and "not valid JSON" in ep.annotation_state.problem
    assert "annotations_unreadable" in DatasetIndex(dataset).refresh()[0].flags
    with pytest.raises(AnnotationError, match="not valid JSON"):
        write_annotations(path, {"quality": 3})
    proc = cli("label", A, "--dataset", str(dataset.root), "--quality", "3")
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sidecar_path(path).read_bytes() == b"{not json"


def test_concurrent_editors_never_lose_an_edit(dataset):
    path = dataset.episodes_dir / f"{A}.h5"
    code = ("import sys; from vla_studio.data.annotations import write_annotations\n"
            "for i in range(15): write_annotations(sys.argv[1], {'notes': sys.argv[2] + str(i)})")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), tag]) for tag in "xy"]
    deadline = time.monotonic() + 60
    for p in procs:
        assert p.wait(timeout=max(1, deadline - time.monotonic())) == 0
    assert len(annotation_history(path)) == 30
