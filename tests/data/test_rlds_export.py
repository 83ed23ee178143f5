"""The RLDS exporter's behaviour on real episode files, without TensorFlow: skipping damaged and
unfinished episodes, temp dir + rename, overwrite, cancel, progress, sharding, the CLI, and that
the application never imports TensorFlow to export."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from vla_studio import cli
from vla_studio.data.rlds import ExportCancelled, ExportError, ExportOptions, RldsExporter
from vla_studio.data.rlds.tfrecord import TFRecordWriter

from tests.data.rlds_episode_files import (EpisodeSpec, write_corrupt_episode, write_dataset,
                                           write_episode)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rlds_src")
    write_dataset(root, [EpisodeSpec(seed=i, steps=6 + i) for i in range(4)]
                  + [EpisodeSpec(seed=9, status="recording")])
    write_corrupt_episode(root / "episodes" / "episode_0099.h5")
    write_episode(root / "episodes" / "episode_0010.h5.recording",
                  EpisodeSpec(seed=10, status="recording"))
    return root


def export(dataset: Path, out: Path, **kw) -> RldsExporter:
    progress = kw.pop("progress", None)
    cancel = kw.pop("should_cancel", None)
    return RldsExporter(dataset, out, ExportOptions(name="demo", **kw),
                        progress=progress, should_cancel=cancel)


def test_corrupt_and_still_recording_episodes_are_skipped_with_reasons(dataset, tmp_path):
    report = export(dataset, tmp_path).run()
    assert report.episodes == {"train": 4}
    reasons = {p.name: r for p, r in report.skipped}
    assert "still marked 'recording'" in reasons["episode_0004.h5"]
    assert "cannot be read" in reasons["episode_0099.h5"]
    assert "still being recorded" in reasons["episode_0010.h5.recording"]
    meta = json.loads((report.dataset_dir / "metadata.json").read_text())
    assert {s["file"].split("/")[-1] for s in meta["skipped"]} == set(reasons)
    assert [e["steps"] for e in meta["episodes"]] == [6, 7, 8, 9]


def test_export_appears_only_when_complete_and_leaves_no_temp_files(dataset, tmp_path):
    report = export(dataset, tmp_path).run()
    assert report.dataset_dir == tmp_path / "demo" / "1.0.0"
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["1.0.0"]
    names = sorted(p.name for p in report.dataset_dir.iterdir())
    assert names == ["dataset_info.json", "demo-train.tfrecord-00000-of-00001",
                     "features.json", "metadata.json"]


def test_existing_export_is_kept_unless_overwrite_is_asked(dataset, tmp_path):
    export(dataset, tmp_path).run()
    marker = tmp_path / "demo" / "1.0.0" / "metadata.json"
    before = marker.read_text()
    with pytest.raises(ExportError, match="already exists; pass --overwrite"):
        export(dataset, tmp_path).run()
    assert marker.read_text() == before
    report = export(dataset, tmp_path, overwrite=True, success_only=True).run()
    assert json.loads(marker.read_text())["options"]["success_only"] is True
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["1.0.0"]
    assert report.total_episodes == 4


def test_cancel_during_writing_removes_everything(dataset, tmp_path):
    seen = []

    def progress(p):
        seen.append(p.phase)

    def cancel():
        return seen.count("writing") >= 2

    with pytest.raises(ExportCancelled):
        export(dataset, tmp_path, progress=progress, should_cancel=cancel, workers=1).run()
    assert not (tmp_path / "demo").exists()
    assert not export_threads()


def export_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rlds-export")]


def test_write_failure_reports_it_and_leaves_nothing_behind(dataset, tmp_path, monkeypatch):
    def disk_full(self, data, framing=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TFRecordWriter, "write", disk_full)
    with pytest.raises(ExportError, match="No space left on device.*check free disk space"):
        export(dataset, tmp_path).run()
    assert not (tmp_path / "demo").exists() and not export_threads()


def test_episode_with_nan_action_is_skipped_naming_the_step(tmp_path):
    paths = write_dataset(tmp_path / "src", [EpisodeSpec(seed=i) for i in range(2)])
    with h5py.File(paths[1], "r+") as f:
        f["steps/action"][5, 2] = np.nan
    report = export(tmp_path / "src", tmp_path / "out").run()
    assert report.total_episodes == 1
    (path, reason), = report.skipped
    assert path == paths[1] and "action is NaN or infinite at step 5" in reason


def test_progress_reports_scanning_then_writing_then_done(dataset, tmp_path):
    events = []
    export(dataset, tmp_path, progress=events.append).run()
    phases = [e.phase for e in events]
    assert phases[:7] == ["scanning"] * 7
    writing = [e for e in events if e.phase == "writing"]
    assert [e.done for e in writing] == [1, 2, 3, 4] and writing[-1].total == 4
    assert writing[-1].bytes_written > writing[0].bytes_written > 0
    assert phases[-1] == "done" and events[-1].skipped == 3


def test_shards_close_at_the_target_size_and_are_numbered_of_total(dataset, tmp_path):
    report = export(dataset, tmp_path, shard_mb=0.001).run()  # every episode starts a new shard
    assert report.shards == {"train": 4}
    info = json.loads((report.dataset_dir / "dataset_info.json").read_text())
    assert info["splits"][0]["shardLengths"] == ["1", "1", "1", "1"]
    shards = sorted(p.name for p in report.dataset_dir.glob("demo-train.tfrecord-*"))
    assert shards == [f"demo-train.tfrecord-{i:05d}-of-00004" for i in range(4)]
    assert int(info["splits"][0]["numBytes"]) == sum(
        (report.dataset_dir / s).stat().st_size for s in shards)


def test_missing_dataset_folder_and_empty_folder_give_clear_errors(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export(tmp_path / "nope", tmp_path / "out").run()
    (tmp_path / "empty" / "episodes").mkdir(parents=True)
    with pytest.raises(ExportError, match="record some episodes first"):
        export(tmp_path / "empty", tmp_path / "out").run()
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ExportError, match="a_file is a file, not a dataset folder"):
        export(tmp_path / "a_file", tmp_path / "out").run()
    assert not (tmp_path / "out").exists()


def test_cli_exports_and_prints_summary(dataset, tmp_path, capsys):
    code = cli.main(["export", "rlds", str(dataset), str(tmp_path), "--name", "demo",
                     "--image-size", "32x24", "--val-fraction", "0.25"])
    out = capsys.readouterr().out
    assert code == 0
    assert "exported 3 train (1 shard), 1 val (1 shard)" in out
    assert "3 episode(s) skipped" in out and "tfds.builder('demo'" in out
    features = json.loads((tmp_path / "demo" / "1.0.0" / "features.json").read_text())
    assert '"dimensions": ["24", "32", "3"]' in json.dumps(features)


def test_cli_rejects_a_bad_name_with_a_suggestion(dataset, tmp_path, capsys):
    code = cli.main(["export", "rlds", str(dataset), str(tmp_path), "--name", "My Demos"])
    assert code == 2
    assert "'my_demos'" in capsys.readouterr().err


BLOCK_TF_AND_EXPORT = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'tensorflow_datasets'):
            raise ModuleNotFoundError(name, name=name)
sys.meta_path.insert(0, Block())
from pathlib import Path
from vla_studio.data.rlds import ExportOptions, RldsExporter
report = RldsExporter(Path(sys.argv[1]), Path(sys.argv[2]), ExportOptions(name="demo")).run()
print(report.total_episodes)
"""


def test_export_runs_with_tensorflow_unavailable(dataset, tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCK_TF_AND_EXPORT, str(dataset), str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "4"


@pytest.fixture
def umask():
    """Set the process umask for one test (restored afterwards)."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o022, 0o027], ids=["umask_022", "umask_027"])
def test_exported_folder_and_files_get_the_permissions_the_umask_gives(dataset, tmp_path, umask,
                                                                        mask):
    umask(mask)
    report = export(dataset, tmp_path / "out").run()
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    (plain_dir / "file").write_bytes(b"")
    dir_mode, file_mode = (stat.S_IMODE(p.stat().st_mode) for p in (plain_dir, plain_dir / "file"))
    assert dir_mode == 0o777 & ~mask and file_mode == 0o666 & ~mask
    for folder in (tmp_path / "out", tmp_path / "out" / "demo", report.dataset_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == dir_mode, folder
    files = list(report.dataset_dir.iterdir())
    assert len(files) == 4
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path


def test_overwritten_export_also_gets_normal_permissions(dataset, tmp_path, umask):
    umask(0o022)
    export(dataset, tmp_path).run()
    report = export(dataset, tmp_path, overwrite=True).run()
    assert stat.S_IMODE(report.dataset_dir.stat().st_mode) == 0o755
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["1.0.0"]


def cli_export(dataset: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vla_studio", "export", "rlds", str(dataset),
                           str(out), "--name", "demo"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vla-studio: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_export_into_a_regular_file_is_one_line_error_and_leaves_the_file(dataset, tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("keep me")
    proc = cli_export(dataset, target)
    assert_one_line_error(proc, str(target), "is a file, not a folder")
    assert target.read_text() == "keep me"
    proc = cli_export(dataset, target / "below")
    assert_one_line_error(proc, str(target / "below"), f"{target} is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]


def test_export_into_an_unwritable_path_is_one_line_error_and_writes_nothing(dataset):
    # The kernel refuses new entries in /sys even to root, so this holds for any user.
    target = Path("/sys") / f"vla_studio_export_test_{os.getpid()}"
    proc = cli_export(dataset, target / "deeper")
    assert_one_line_error(proc, str(target / "deeper"), "choose a folder you can write to")
    assert not target.exists()


def test_a_failed_export_removes_the_folders_it_created(dataset, tmp_path, monkeypatch):
    def disk_full(self, data, framing=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TFRecordWriter, "write", disk_full)
    with pytest.raises(ExportError, match="No space left on device"):
        export(dataset, tmp_path / "new" / "deeper").run()
    assert list(tmp_path.iterdir()) == []
