"""The dataset folder and its index: fast listing, incremental refresh, trash and restore."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from vla_studio.data import dataset_index
from vla_studio.data.annotations import write_annotations
from vla_studio.data.dataset import Dataset, DatasetError, estimate_bytes_per_second
from vla_studio.data.dataset_index import DatasetIndex

from .test_episode_file import make_schema, make_steps, write_episode


def saved_episode(dataset: Dataset, name: str, success: int = 1, instruction: str = "pick") -> os.PathLike:
    path = dataset.episodes_dir / f"{name}.h5"
    write_episode(path, make_steps(4), make_schema(), success=success,
                  attrs={"language_instruction": instruction, "language_instructions": [instruction],
                         "operator": "ada", "station_name": "Dry run", "task": "t1",
                         "source_counts": json.dumps({"teleop": 2, "policy": 1, "hold": 1})})
    return path


@pytest.fixture
def dataset(tmp_path):
    ds = Dataset(tmp_path / "ds")
    ds.ensure()
    return ds


def test_refresh_reads_new_and_changed_files_only_and_forgets_deleted_ones(dataset, monkeypatch):
    a = saved_episode(dataset, "20260101-000000_aaaaaaaa", instruction="open the drawer")
    b = saved_episode(dataset, "20260101-000001_bbbbbbbb", success=0)
    index = DatasetIndex(dataset)
    first = index.refresh()
    assert [s.name for s in first] == [a.name, b.name]
    assert first[0].instruction == "open the drawer" and first[0].success is True
    assert first[1].success is False and first[0].operator == "ada" and first[0].source == "policy"
    assert first[0].num_steps == 4 and first[0].duration_s == pytest.approx(0.15)
    reads = []
    real = dataset_index.read_summary
    monkeypatch.setattr(dataset_index, "read_summary", lambda *a: reads.append(a[1]) or real(*a))
    assert [s.name for s in index.refresh()] == [a.name, b.name] and reads == []
    write_annotations(b, {"success": True, "instructions": ["close the drawer"]})
    os.utime(b, ns=(time.time_ns(), time.time_ns() + 10**9))  # mtime granularity of the fs
    c = saved_episode(dataset, "20260101-000002_cccccccc")
    a.unlink()
    listed = index.refresh()
    assert sorted(reads) == [f"episodes/{b.name}", f"episodes/{c.name}"]
    assert [s.name for s in listed] == [b.name, c.name]
    assert listed[0].success is True and listed[0].instruction == "close the drawer"


def test_trash_and_restore_keep_the_cached_row(dataset, monkeypatch):
    path = saved_episode(dataset, "20260101-000000_aaaaaaaa")
    index = DatasetIndex(dataset)
    index.refresh()
    monkeypatch.setattr(dataset_index, "read_summary", lambda *a: pytest.fail("re-read " + a[1]))
    trashed = dataset.trash(path)
    assert index.refresh() == []
    [row] = index.refresh(include_trashed=True)
    assert row.trashed and row.file == f"trash/{path.name}"
    dataset.restore(trashed)
    [row] = index.refresh()
    assert not row.trashed and row.file == f"episodes/{path.name}"
    saved_episode(dataset, "20260101-000001_bbbbbbbb")
    dataset.trash(dataset.episodes_dir / "20260101-000001_bbbbbbbb.h5")
    with pytest.raises(DatasetError, match="already exists"):
        saved_episode(dataset, "20260101-000001_bbbbbbbb")
        dataset.restore(dataset.trash_dir / "20260101-000001_bbbbbbbb.h5")
    assert dataset.empty_trash() == 1


def test_a_corrupt_index_is_rebuilt_and_unreadable_files_are_listed_as_such(dataset):
    saved_episode(dataset, "20260101-000000_aaaaaaaa")
    (dataset.episodes_dir / "20260101-000001_bbbbbbbb.h5").write_bytes(b"not an hdf5 file")
    dataset.index_path.write_bytes(b"garbage, not sqlite" * 100)
    listed = DatasetIndex(dataset).refresh()
    assert [s.status for s in listed] == ["complete", "unreadable"]
    assert listed[1].flags == ("unreadable", "damaged")
    assert "not a readable HDF5" in listed[1].damaged


def corrupt_index_text(dataset: Dataset) -> None:
    """Overwrite part of a cached summary with bytes that are not UTF-8 (the file stays a valid
    SQLite database: only reading the row fails)."""
    raw = bytearray(dataset.index_path.read_bytes())
    at = raw.index(b'"instruction": ') + 16
    raw[at:at + 6] = b"\xff\xfe\xff\xfe\xff\xfe"
    dataset.index_path.write_bytes(bytes(raw))


def test_an_index_whose_text_cannot_be_decoded_is_rebuilt(dataset, caplog):
    saved_episode(dataset, "20260101-000000_aaaaaaaa", instruction="open the drawer")
    DatasetIndex(dataset).refresh()
    corrupt_index_text(dataset)
    index = DatasetIndex(dataset)
    assert [s.instruction for s in index.refresh()] == ["open the drawer"]
    [line] = [r.getMessage() for r in caplog.records if "episode index" in r.getMessage()]
    assert "Could not decode to UTF-8" in line and line.endswith("rebuilt from the episode files")
    with sqlite3.connect(dataset.index_path) as db:  # a sound cache again
        assert db.execute("SELECT COUNT(*) FROM episodes").fetchone() == (1,)


def test_a_folder_in_place_of_the_index_leaves_the_index_in_memory(dataset):
    path = saved_episode(dataset, "20260101-000000_aaaaaaaa", instruction="open the drawer")
    dataset.index_path.mkdir()
    (dataset.index_path / "keep.txt").write_text("mine")
    index = DatasetIndex(dataset)
    assert [s.instruction for s in index.refresh()] == ["open the drawer"]
    write_annotations(path, {"success": False})
    assert index.update(path).success is False and index.list()[0].success is False
    index.forget([path])
    assert index.list() == []
    assert (dataset.index_path / "keep.txt").read_text() == "mine"  # nothing of the user's deleted


def test_ten_thousand_episodes_list_in_well_under_a_second(dataset):
    """The recorder indexes each episode as it saves it; listing then only stats the folder.
    10,000 hard links of one real file stand in for 10,000 saved episodes."""
    src = saved_episode(dataset, "20260101-000000_00000000")
    index = DatasetIndex(dataset)
    index.update(src)
    names = [f"20260101-{i // 60:04d}{i % 60:02d}_{i:08x}.h5" for i in range(1, 10_000)]
    for name in names:
        os.link(src, dataset.episodes_dir / name)
    with sqlite3.connect(dataset.index_path) as db:
        *sig, text = db.execute("SELECT mtime_ns, size, sidecar_mtime_ns, sidecar_size, summary "
                                "FROM episodes").fetchone()
        data = json.loads(text)
        db.executemany("INSERT INTO episodes VALUES (?, ?, ?, ?, ?, ?)",
                       [(f"episodes/{n}", *sig, json.dumps({**data, "file": f"episodes/{n}"}))
                        for n in names])
    fresh = DatasetIndex(dataset)  # a new process: the index is warm on disk only
    for attempt in ("first", "second"):
        t0 = time.perf_counter()
        listed = fresh.refresh()
        elapsed = time.perf_counter() - t0
        assert len(listed) == 10_000 and listed[-1].instruction == "pick"
        assert elapsed < 5.0, f"the {attempt} listing of 10,000 episodes took {elapsed:.2f} s"


def test_preflight_estimates_minutes_of_recording(dataset):
    rate = estimate_bytes_per_second([(640, 480, 30.0, True, False)] * 3, 30.0, "jpeg", 90)
    assert 3e6 < rate < 5e6  # 3 cameras x 30 fps x ~43 kB
    check = dataset.preflight(rate, reserve_bytes=0)
    assert check.writable and check.free_bytes > 0
    assert check.minutes_available == pytest.approx(check.free_bytes / rate / 60.0, rel=0.01)
    assert "min of recording" in check.message
    png = estimate_bytes_per_second([(640, 480, 30.0, True, True)], 30.0, "png", 90)
    assert png > 10 * estimate_bytes_per_second([(640, 480, 30.0, True, False)], 30.0, "jpeg", 90)


def test_an_unwritable_dataset_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    with pytest.raises(DatasetError, match="cannot use .* as a dataset folder"):
        Dataset(blocker / "ds").ensure()
