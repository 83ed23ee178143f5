"""`vla-studio record` (headless recording), run as a real process (`vla-studio bench record`:
tests/data/test_bench_record.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.paths import resource

from tests.unprivileged import permission_bound

DRY = str(resource("stations", "dry_run.toml"))


def cli(*args: str, timeout: float = 180,
        prefix: list[str] | tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "vla_studio", "--log-level", "WARNING",
                           *args], capture_output=True, text=True, timeout=timeout)


def test_record_saves_each_episode_with_its_labels_and_seed(tmp_path):
    proc = cli("record", "--station", DRY, "--task", "wave at the camera", "--paraphrase",
               "say hello", "--episodes", "2", "--max-seconds", "0.6", "--seed", "10",
               "--operator", "ada", "--scene-id", "desk-3", "--dataset", str(tmp_path / "ds"),
               "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [e["seed"] for e in summary["episodes"]] == [10, 11]
    assert all(e["state"] == "saved" and e["ended_by"] == "time limit" for e in summary["episodes"])
    files = [e["path"] for e in summary["episodes"]]
    assert sorted(files) == sorted(str(p) for p in Dataset(tmp_path / "ds").episode_files())
    for path, seed in zip(files, (10, 11)):
        with EpisodeReader(path) as ep:
            assert ep.instructions() == ["wave at the camera", "say hello"]
            assert ep.attrs["seed"] == seed and ep.attrs["operator"] == "ada"
            assert ep.attrs["scene_id"] == "desk-3" and ep.num_steps >= 8
            assert ep.success() is None  # the virtual robot cannot judge


def test_record_with_a_task_file_takes_each_task_in_turn(tmp_path):
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("open the drawer | pull the drawer open\nclose the drawer\n", encoding="utf-8")
    proc = cli("record", "--station", DRY, "--task-file", str(tasks), "--episodes", "3",
               "--max-seconds", "0.4", "--dataset", str(tmp_path / "ds"), "--json")
    assert proc.returncode == 0, proc.stderr
    episodes = json.loads(proc.stdout.strip().splitlines()[-1])["episodes"]
    assert [e["instruction"] for e in episodes] == ["open the drawer", "close the drawer",
                                                    "open the drawer"]
    with EpisodeReader(episodes[0]["path"]) as ep:
        assert ep.attrs["task"] == "open_the_drawer"
        assert ep.instructions() == ["open the drawer", "pull the drawer open"]


def test_record_explains_what_is_missing(tmp_path):
    proc = cli("record", "--station", DRY, "--episodes", "1")
    assert proc.returncode == 2 and "--task" in proc.stderr
    proc = cli("record", "--station", DRY, "--task", "x", "--teleop", "joystick",
               "--dataset", str(tmp_path / "ds"))
    assert proc.returncode == 2 and "no teleop device named or typed 'joystick'" in proc.stderr
    assert "keyboard (keyboard)" in proc.stderr  # the ones it has are listed
    bad = tmp_path / "tasks.toml"
    bad.write_text('mode = "shuffle"\n[[tasks]]\ninstruction = "a"\n', encoding="utf-8")
    proc = cli("record", "--station", DRY, "--task-file", str(bad))
    assert proc.returncode == 2 and "mode" in proc.stderr and "Traceback" not in proc.stderr


def test_record_with_the_simulated_expert_ends_each_episode_on_success(tmp_path):
    sim = str(resource("stations", "sim_tabletop.toml"))
    proc = cli("record", "--station", sim, "--teleop", "scripted", "--task",
               "pick up the red cube", "--episodes", "1", "--seed", "1", "--max-seconds", "40",
               "--dataset", str(tmp_path / "ds"), "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [episode] = json.loads(proc.stdout.strip().splitlines()[-1])["episodes"]
    assert episode["ended_by"] == "success" and episode["success"] is True
    with EpisodeReader(episode["path"]) as ep:
        assert ep.success() is True and ep.attrs["success_source"] == "robot"
        assert ep.step("reward")[-1] == 1.0 and ep.attrs["robot_type"] == "sim"
        assert ep.attrs["source_counts"]["teleop"] > 0.8 * ep.num_steps
        assert ep.cameras == ["front", "wrist"] and ep.depth("wrist").shape[1:] == (224, 224)
        # the settle time after success is recorded too
        assert ep.attrs["duration_s"] >= 0.5


def test_record_refuses_a_task_the_simulated_expert_cannot_perform(tmp_path):
    sim = str(resource("stations", "sim_tabletop.toml"))
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("pick up the red cube\nfly to the moon\n", encoding="utf-8")
    proc = cli("record", "--station", sim, "--teleop", "scripted", "--task-file", str(tasks),
               "--episodes", "2", "--dataset", str(tmp_path / "ds"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "the scripted expert cannot perform this task" in proc.stderr
    assert "'fly to the moon'" in proc.stderr and "pick up the red cube" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ds" / "episodes").exists() or not any(
        (tmp_path / "ds" / "episodes").iterdir())  # nothing was recorded


@pytest.mark.parametrize("how", ["garbage", "folder"])
def test_record_rebuilds_a_damaged_index_or_works_without_it(tmp_path, how):
    dataset = Dataset(tmp_path / "ds")
    dataset.ensure()
    if how == "folder":
        dataset.index_path.mkdir()
    else:
        dataset.index_path.write_bytes(b"\x00garbage, not sqlite" * 200)
    proc = cli("record", "--station", DRY, "--task", "wave", "--episodes", "1",
               "--max-seconds", "0.4", "--dataset", str(dataset.root), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    said = [line for line in proc.stderr.splitlines() if "episode index" in line]
    assert len(said) == 1, proc.stderr
    [episode] = json.loads(proc.stdout.strip().splitlines()[-1])["episodes"]
    assert episode["state"] == "saved" and "it now holds 1" in proc.stdout


@pytest.mark.parametrize("args, words", [
    (("--seed", "-1"), "--seed -1 is not allowed: a whole number from 0 to 4294967295"),
    (("--seed", str(2**70)), f"--seed {2**70} is not allowed: a whole number from 0 to 4294967295"),
    (("--seed", "4294967295", "--episodes", "2"), "the last episode's seed would be 4294967296"),
    (("--max-seconds", "nan"), "--max-seconds nan is not allowed: a number greater than 0 and at "
                               "most 86400 s"),
    (("--max-seconds", "inf"), "--max-seconds inf is not allowed"),
    (("--settle", "nan"), "--settle nan is not allowed: a number from 0 to 3600 s"),
    (("--episodes", "0"), "--episodes 0 is not allowed: a whole number from 1 to 100000"),
])
def test_record_refuses_unusable_numbers_in_one_line(tmp_path, args, words):
    proc = cli("record", "--station", DRY, "--task", "wave", "--dataset", str(tmp_path / "ds"),
               *args)
    assert proc.returncode == 2, proc.stdout
    [line] = proc.stderr.splitlines()
    assert line.startswith("vla-studio record: error: ") and words in line
    assert not (tmp_path / "ds").exists()  # refused before anything started


@pytest.mark.parametrize("where", ["regular file", "inside a regular file", "read-only folder"])
def test_record_refuses_a_dataset_folder_it_cannot_write_in_one_line(tmp_path, where):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    target = {"regular file": blocker, "inside a regular file": blocker / "ds",
              "read-only folder": tmp_path / "ro" / "ds"}[where]
    if where == "read-only folder":
        Dataset(target).ensure()
        (target / "episodes").chmod(0o555)
    try:
        proc = cli("record", "--station", DRY, "--task", "wave", "--max-seconds", "0.3",
                   "--dataset", str(target), prefix=permission_bound())
    finally:
        if where == "read-only folder":
            (target / "episodes").chmod(0o755)
    assert proc.returncode == 2, proc.stdout
    [line] = proc.stderr.splitlines()
    assert line.startswith("vla-studio record: error: ") and str(target) in line
    assert "choose a folder you can write to" in line.lower()
