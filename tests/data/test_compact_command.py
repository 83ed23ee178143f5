"""`vla-studio dataset compact`: a dry run tells the saving without writing, a run compacts
every JPEG episode, an interrupted run is carried on by the next, `show` tells the storage."""

from __future__ import annotations

import logging

import pytest

from vla_studio import cli
from vla_studio.data.dataset import Dataset
from vla_studio.data.integrity import verify_episode
from vla_studio.data.transcode import temp_path_for

from .test_compactor import _formats
from .video_episodes import small_episode


@pytest.fixture(autouse=True)
def restored_logging():
    """``cli.main`` configures logging for a process; give the next tests theirs back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_dry_run_compact_and_resume(tmp_path, capsys):
    dataset = Dataset(tmp_path)
    paths = [small_episode(tmp_path, seed=k) for k in range(3)]
    before = [p.read_bytes() for p in paths]

    assert cli.main(["dataset", "compact", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 episode(s) to compact (av1, crf 38)" in out and "saves" in out
    assert [p.read_bytes() for p in paths] == before  # nothing written

    # An earlier run was interrupted: one episode done, another one's file half written.
    assert cli.main(["dataset", "compact", str(tmp_path), "--codec", "h264"]) == 0
    capsys.readouterr()
    assert all(_formats(p) == {"h264"} for p in paths)
    extra = small_episode(tmp_path, seed=7)
    temp_path_for(extra).write_bytes(b"half a file")
    assert cli.main(["dataset", "compact", "--dataset", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "removed 1 unfinished file(s)" in out and "1 episode(s) compacted" in out
    assert _formats(extra) == {"av1"} and not temp_path_for(extra).exists()
    assert all(verify_episode(p).status == "ok" for p in dataset.episode_files())

    assert cli.main(["dataset", "compact", str(tmp_path), "--dry-run"]) == 0
    assert "nothing to compact: 4 episode(s) already stored as video" in capsys.readouterr().out
    assert cli.main(["dataset", "show", "--dataset", str(tmp_path), extra.stem]) == 0
    out = capsys.readouterr().out
    assert "storage: av1" in out and "camera front: av1, 160x120" in out
    assert "first frame decodes" in out and "depth front: uint16 160x120 (lossless)" in out
