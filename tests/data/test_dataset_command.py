"""`vla-studio dataset`: list, label (as undoable annotations), trash and restore, run as real
processes on episode files written by the recorder's writer."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import h5py
import pytest

from vla_studio.data.dataset import Dataset
from vla_studio.data.dataset_index import DatasetIndex
from vla_studio.data.episode_file import EpisodeReader

from .test_dataset_index import saved_episode

A, B, C = "20260101-000000_aaaaaaaa", "20260101-000001_bbbbbbbb", "20260101-000002_cccccccc"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vla_studio", "--log-level", "WARNING",
                           "dataset", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def dataset(tmp_path):
    ds = Dataset(tmp_path / "ds")
    ds.ensure()
    for name, success, instruction in ((A, 1, "open the drawer"), (B, 0, "pick up the red cube"),
                                        (C, 1, "pick up the green cube")):
        path = saved_episode(ds, name, success=success, instruction=instruction)
        with h5py.File(path, "r+") as f:
            f.attrs["episode_id"] = str(uuid.uuid4())  # as the recorder names episodes
    return ds


def listed(dataset: Dataset, *extra: str) -> list[dict]:
    proc = cli("list", "--dataset", str(dataset.root), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_list_filters_by_words_and_outcome(dataset):
    assert [r["file"] for r in listed(dataset)] == [f"episodes/{n}.h5" for n in (A, B, C)]
    assert [r["instruction"] for r in listed(dataset, "--filter", "PICK cube")] == [
        "pick up the red cube", "pick up the green cube"]
    assert [r["instruction"] for r in listed(dataset, "--outcome", "failure")] == [
        "pick up the red cube"]
    table = cli("list", "--dataset", str(dataset.root))
    assert table.returncode == 0 and f"{B}.h5" in table.stdout and "failure" in table.stdout
    assert "3 episode(s)" in table.stdout


def test_labels_are_undoable_annotations_that_the_index_and_readers_follow(dataset):
    proc = cli("label", A, "--dataset", str(dataset.root), "--failure", "--quality", "2",
               "--notes", "gripper slipped", "--instruction", "open the top drawer",
               "--instruction", "pull the drawer open")
    assert proc.returncode == 0, proc.stderr
    assert "failure" in proc.stdout
    with EpisodeReader(dataset.episodes_dir / f"{A}.h5") as ep:
        assert ep.success() is False and ep.attrs["success"] == 1  # the recording is untouched
        assert ep.instructions() == ["open the top drawer", "pull the drawer open"]
        assert ep.annotations["quality"] == 2 and ep.annotations["notes"] == "gripper slipped"
    [row] = listed(dataset, "--filter", "slipped")
    assert row["success"] is False and row["instruction"] == "open the top drawer"
    assert cli("undo", f"{A}.h5", "--dataset", str(dataset.root)).returncode == 0
    with EpisodeReader(dataset.episodes_dir / f"{A}.h5") as ep:
        assert ep.success() is True and ep.instructions() == ["open the drawer"]
    assert listed(dataset, "--outcome", "failure")[0]["file"] == f"episodes/{B}.h5"


def test_trash_and_restore_by_path_name_or_id_prefix(dataset):
    episode_id = DatasetIndex(dataset).refresh()[1].episode_id
    assert len(episode_id) >= 6
    proc = cli("trash", str(dataset.episodes_dir / f"{A}.h5"), episode_id[:8],
               "--dataset", str(dataset.root))
    assert proc.returncode == 0, proc.stderr
    assert [r["file"] for r in listed(dataset)] == [f"episodes/{C}.h5"]
    assert [r["file"] for r in listed(dataset, "--trash")] == [f"trash/{A}.h5", f"trash/{B}.h5"]
    refused = cli("label", A, "--dataset", str(dataset.root), "--success")
    assert refused.returncode == 2 and "in the trash" in refused.stderr
    assert cli("restore", A, f"{B}.h5", "--dataset", str(dataset.root)).returncode == 0
    assert len(listed(dataset)) == 3 and not listed(dataset, "--trash")


def test_mistakes_are_explained_and_change_nothing(dataset, tmp_path):
    root = str(dataset.root)
    before = (dataset.episodes_dir / f"{A}.h5").read_bytes()
    for args, words in [
        (("label", A, "--dataset", root), "nothing to set"),
        (("label", A, "nosuch", "--dataset", root, "--success"), "no episode 'nosuch'"),
        (("label", A, "--dataset", root, "--quality", "9"), "quality"),
        (("label", "2026", "--dataset", root, "--success"), "no episode '2026'"),
        (("restore", A, "--dataset", root), "not in the trash"),
        (("show", A, "--dataset", str(tmp_path / "elsewhere")), "not a dataset folder"),
    ]:
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stdout)
        assert words in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert (dataset.episodes_dir / f"{A}.h5").read_bytes() == before


def test_show_prints_the_summary_and_the_edit_count(dataset):
    assert cli("label", B, "--dataset", str(dataset.root), "--success").returncode == 0
    proc = cli("show", B, "--dataset", str(dataset.root))
    assert proc.returncode == 0, proc.stderr
    assert "pick up the red cube" in proc.stdout and "success: True" in proc.stdout
    assert "label edits: 1" in proc.stdout
