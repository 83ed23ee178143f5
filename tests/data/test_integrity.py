"""Corruption is detected, not exported: episodes recorded by `vla-studio record` carry a CRC-32C
per frame and per committed step chunk; `dataset list`/`show` flag structural damage, `dataset
verify` finds any changed byte, and `export rlds` skips damaged episodes and keeps the good ones.
Every test damages real recorder-written files the way disks and copies do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import google_crc32c
import h5py
import numpy as np
import pytest

from vla_studio.data.checksums import DEPTH_CRC, STEP_CHUNKS
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.paths import resource

DRY = str(resource("stations", "dry_run.toml"))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vla_studio", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """Three episodes recorded by the real command (two synthetic cameras, one with depth)."""
    root = tmp_path_factory.mktemp("recorded") / "ds"
    proc = cli("record", "--station", DRY, "--task", "wave at the camera", "--episodes", "3",
               "--max-seconds", "0.8", "--seed", "0", "--dataset", str(root))
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def dataset(recorded, tmp_path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(recorded, root)
    return root


def episodes(root: Path) -> list[Path]:
    return sorted((root / "episodes").glob("*.h5"))


def listed(root: Path) -> dict[str, dict]:
    proc = cli("dataset", "list", "--dataset", str(root), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return {row["file"].split("/")[-1]: row for row in map(json.loads, proc.stdout.splitlines())}


def verify(root: Path) -> tuple[int, dict[str, dict]]:
    proc = cli("dataset", "verify", "--dataset", str(root), "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}


def export(root: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    proc = cli("export", "rlds", str(root), str(out), "--name", "demo")
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads((out / "demo" / "1.0.0" / "metadata.json").read_text())


def flip(path: Path, offset: int, count: int = 4) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def header_address(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return h5py.h5o.get_info(f[name].id).addr


def chunk_address(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return f[name].id.get_chunk_info(0).byte_offset


def test_recorded_episodes_carry_checksums_of_every_frame_and_step_chunk(dataset):
    path = episodes(dataset)[0]
    with h5py.File(path, "r") as f:
        t = f["steps/timestamp"].shape[0]
        group = f["steps/observation/image/front"]
        index, crcs, data = group["index"][()], group["crc32c"][()], group["data"][()]
        assert crcs.dtype == np.uint32 and crcs.shape == (t,)
        for (offset, length), crc in zip(index, crcs):  # an independent CRC-32C
            assert crc == google_crc32c.value(data[offset:offset + length].tobytes())
        depth = f["steps/observation/depth/wrist"][()]
        assert f[f"{DEPTH_CRC}/wrist"][0] == google_crc32c.value(depth[0].astype("<u2").tobytes())
        chunks = f[STEP_CHUNKS][()]
        assert chunks[0, 0] == 0 and chunks[-1, 1] == t
        assert (chunks[1:, 0] == chunks[:-1, 1]).all()  # contiguous, every step covered
        covers = json.loads(f[STEP_CHUNKS].attrs["covers"])
        assert "action" in covers and "observation/image/front/crc32c" in covers
        assert not {"is_first", "is_last", "is_terminal", "reward"} & set(covers)  # set by seal
    code, results = verify(dataset)
    assert code == 0 and [r["status"] for r in results.values()] == ["ok"] * 3
    for r in results.values():
        assert r["steps_checked"] == r["steps"] > 0 and r["depth_frames_checked"] == r["steps"]
        assert r["frames_checked"] > 0 and r["frames_decoded"] > 0
    table = cli("dataset", "verify", "--dataset", str(dataset))
    assert table.returncode == 0 and "3 episode(s): 3 ok, 0 damaged" in table.stdout


@pytest.mark.parametrize("target", ["steps/action", "steps/observation/image/wrist"])
def test_flipped_bytes_in_the_file_structure_are_flagged_and_the_episode_is_not_exported(
        dataset, tmp_path, target):
    bad, *good = episodes(dataset)
    flip(bad, header_address(bad, target) + 8)
    rows = listed(dataset)
    assert target in rows[bad.name]["damaged"] and "damaged" in rows[bad.name]["flags"]
    assert all(not rows[p.name]["damaged"] for p in good)
    table = cli("dataset", "list", "--dataset", str(dataset))
    assert "DAMAGED" in table.stdout and "1 damaged" in table.stdout
    shown = cli("dataset", "show", bad.name, "--dataset", str(dataset))
    assert shown.returncode == 1 and f"damaged: {target}" in shown.stdout, shown.stderr
    assert f"{bad.name} is damaged" in shown.stderr and "Traceback" not in shown.stderr
    code, results = verify(dataset)
    assert code == 1 and results[bad.name]["status"] == "damaged"
    assert [results[p.name]["status"] for p in good] == ["ok", "ok"]
    proc, meta = export(dataset, tmp_path / "out")
    assert [e["file"].split("/")[-1] for e in meta["episodes"]] == [p.name for p in good]
    assert f"{bad.name}: damaged: {target}" in proc.stdout


def test_zeros_inside_image_data_are_found_by_verify_and_never_exported(dataset, tmp_path):
    good_1, bad, good_2 = episodes(dataset)
    name = "steps/observation/image/front/data"
    with open(bad, "r+b") as f:  # 4 KiB of zeros in the middle of the colour frames
        f.seek(chunk_address(bad, name) + 3000)
        f.write(bytes(4096))
    assert not listed(dataset)[bad.name]["damaged"]  # the structure is sound: only bytes changed
    code, results = verify(dataset)
    assert code == 1
    [problem] = results[bad.name]["problems"]
    assert "camera 'front' frame of step 0 fails its checksum" in problem
    assert results[good_1.name]["status"] == results[good_2.name]["status"] == "ok"
    assert "fails its checksum" in listed(dataset)[bad.name]["damaged"]  # verify's verdict kept
    proc, meta = export(dataset, tmp_path / "out")
    assert [e["file"].split("/")[-1] for e in meta["episodes"]] == [good_1.name, good_2.name]
    assert "fails its checksum" in proc.stdout and bad.name in proc.stdout


@pytest.mark.parametrize("name, words", [
    ("steps/action", "steps 0.."),
    ("steps/observation/image/wrist/capture_time", "fail their checksum"),
    ("steps/observation/depth/wrist", "depth frame"),
])
def test_changed_step_rows_and_depth_frames_fail_their_checksums(dataset, name, words):
    bad = episodes(dataset)[1]
    flip(bad, chunk_address(bad, name) + 16)
    code, results = verify(dataset)
    assert code == 1 and words in results[bad.name]["problems"][0], results[bad.name]
    assert sum(r["status"] == "ok" for r in results.values()) == 2


def test_files_recorded_before_checksums_still_read_and_verify_as_no_checksums(dataset, tmp_path):
    old = episodes(dataset)[2]
    with h5py.File(old, "r+") as f:  # the layout before checksums
        del f["checksums"], f[DEPTH_CRC]
        for cam in ("front", "wrist"):
            del f[f"steps/observation/image/{cam}/crc32c"]
    assert not listed(dataset)[old.name]["damaged"]
    code, results = verify(dataset)
    assert code == 0 and results[old.name]["status"] == "no checksums"
    assert results[old.name]["frames_decoded"] > 0
    table = cli("dataset", "verify", old.name, "--dataset", str(dataset))
    assert table.returncode == 0 and "no checksums" in table.stdout
    with EpisodeReader(old) as ep:
        assert ep.num_steps > 0 and len(ep.image_bytes("front", 0)) > 0
    proc, meta = export(dataset, tmp_path / "out")
    assert len(meta["episodes"]) == 3
