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

from tests.unprivileged import permission_bound

from .test_dataset_index import corrupt_index_text, saved_episode

A, B, C = "20260101-000000_aaaaaaaa", "20260101-000001_bbbbbbbb", "20260101-000002_cccccccc"


def cli(*args: str, prefix: list[str] | tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "vla_studio", "--log-level", "WARNING",
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


def break_index(dataset: Dataset, how: str) -> None:
    """Leave ``index.sqlite`` in one of the states seen in the field."""
    if how == "garbage":
        dataset.index_path.write_bytes(b"garbage, not sqlite" * 100)
    elif how == "undecodable text":
        DatasetIndex(dataset).refresh()
        corrupt_index_text(dataset)
    elif how == "folder":
        dataset.index_path.unlink(missing_ok=True)
        dataset.index_path.mkdir()
    elif how == "read-only file":
        DatasetIndex(dataset).refresh()
        dataset.index_path.chmod(0o444)
        with h5py.File(dataset.episodes_dir / f"{A}.h5", "r+") as f:  # a row must be re-read
            f.attrs["operator"] = "bo"
    elif how == "read-only folder":
        dataset.index_path.unlink(missing_ok=True)
        dataset.root.chmod(0o555)


@pytest.mark.parametrize("how", ["garbage", "undecodable text", "folder", "read-only file",
                                 "read-only folder"])
def test_list_and_show_work_whatever_state_the_index_is_in(dataset, how):
    break_index(dataset, how)
    try:
        for run in ("first", "second"):  # the second on what the first left behind
            proc = cli("list", "--dataset", str(dataset.root), "--json", prefix=permission_bound())
            assert proc.returncode == 0, proc.stderr
            rows = [json.loads(line) for line in proc.stdout.splitlines()]
            assert [r["instruction"] for r in rows] == ["open the drawer", "pick up the red cube",
                                                        "pick up the green cube"]
            assert "Traceback" not in proc.stderr
            said = [x for x in proc.stderr.splitlines() if "episode index" in x]
            assert len(said) == 1 if run == "first" else len(said) <= 1, proc.stderr
        shown = cli("show", B, "--dataset", str(dataset.root), prefix=permission_bound())
        assert shown.returncode == 0 and "pick up the red cube" in shown.stdout, shown.stderr
        assert "Traceback" not in shown.stderr
    finally:
        dataset.root.chmod(0o755)
        if dataset.index_path.is_file():
            dataset.index_path.chmod(0o644)


def test_show_verify_and_list_explain_a_truncated_episode_in_one_line(dataset):
    path = dataset.episodes_dir / f"{B}.h5"
    with open(path, "r+b") as f:  # a copy that stopped half way
        f.truncate(path.stat().st_size // 2)
    shown = cli("show", B, "--dataset", str(dataset.root))
    assert shown.returncode == 1 and "Traceback" not in shown.stderr, shown.stderr
    [line] = shown.stderr.splitlines()
    assert line.startswith(f"vla-studio dataset: error: {B}.h5 is damaged: not a readable HDF5")
    assert "damaged: not a readable HDF5 file" in shown.stdout
    rows = {r["file"]: r for r in listed(dataset)}
    assert rows[f"episodes/{B}.h5"]["status"] == "unreadable"
    assert "damaged" in rows[f"episodes/{B}.h5"]["flags"]
    checked = cli("verify", "--dataset", str(dataset.root))
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert f"{B}.h5" in checked.stdout
    assert "DAMAGED       not a readable HDF5 file" in checked.stdout
    refused = cli("label", B, "--dataset", str(dataset.root), "--quality", "2")
    assert refused.returncode == 2 and "cannot be read" in refused.stderr
    assert "Traceback" not in refused.stderr
