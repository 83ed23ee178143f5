"""Lock-step: physics, cameras and the control loop stepped together on simulated time."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from vla_studio.cli import main as cli_main
from vla_studio.core.safety import SafetyFlag
from vla_studio.core.session import ControlMode
from vla_studio.core.types import SourceKind
from vla_studio.data.dataset import Dataset
from vla_studio.data.dataset_index import DatasetIndex
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.devices.base import DeviceError
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import default_station_profile
from vla_studio.sim.lockstep import LockstepStation

PERIOD = 0.05  # the default station's 20 Hz
PICK = "pick up the red cube"


@pytest.fixture(scope="module")
def lockstep_dataset(tmp_path_factory):
    """Two expert demonstrations recorded in lock-step through the CLI."""
    root = tmp_path_factory.mktemp("lockstep") / "dataset"
    tasks = root.parent / "tasks.txt"
    tasks.write_text("pick up the red cube\npick up the blue cube\n")
    assert cli_main(["record", "--teleop", "scripted", "--task-file", str(tasks),
                     "--episodes", "2", "--seed", "7", "--lockstep", "--dataset", str(root)]) == 0
    return root


@pytest.fixture
def station():
    st = LockstepStation.from_profile(load_station_profile(default_station_profile()))
    yield st
    st.close()


def _episodes(root):
    return sorted(Dataset(root).episode_files())


def test_lockstep_episodes_are_stamped_with_simulated_time_and_drop_nothing(lockstep_dataset):
    files = _episodes(lockstep_dataset)
    assert len(files) == 2
    for path in files:
        with EpisodeReader(path) as ep:
            assert ep.attrs["clock"] == "sim"
            assert ep.success() is True
            assert int(ep.attrs["dropped_steps"]) == 0 and "steps_dropped" not in ep.attrs["flags"]
            ts = ep.step("timestamp")
            assert len(ts) > 40
            # every tick of the episode, one control period apart, on the simulated clock
            np.testing.assert_allclose(np.diff(ts), PERIOD, atol=1e-9)
            assert float(ep.attrs["start_time_monotonic"]) <= ts[0] < 600.0
            for cam in ("front", "wrist"):
                captured = ep.step(f"observation/image/{cam}/capture_time")
                np.testing.assert_array_equal(captured, ts)  # rendered for its own tick
            assert ep.attrs["camera_stats"]["front"]["drops"] == 0


def test_lockstep_episodes_train_and_export_like_any_other(lockstep_dataset, tmp_path):
    from vla_studio.policies.vla.episodes import scan_datasets

    scan = scan_datasets([lockstep_dataset])
    assert len(scan.episodes) == 2 and scan.cameras == ("front", "wrist")
    assert scan.control_rate_hz == 20.0
    out = tmp_path / "rlds"
    assert cli_main(["export", "rlds", str(lockstep_dataset), str(out), "--name", "lockstep"]) == 0
    info = json.loads(next(out.rglob("dataset_info.json")).read_text())
    lengths = [int(n) for split in info["splits"] for n in split["shardLengths"]]
    assert sum(lengths) == 2


def test_same_seed_gives_the_same_lockstep_demonstration(station):
    """Nothing races the simulation: a seed replays exactly."""
    q = station.loop.subscribe("test", 500)
    station.start()
    station.use_teleop("expert")
    runs = []
    for _ in range(2):
        station.begin_episode(PICK, seed=11)
        station.session.start(ControlMode.TELEOP)
        actions = []
        for _ in range(30):
            station.driver.tick()
            while (step := q.get(timeout=0)) is not None:
                if step.source == SourceKind.TELEOP:
                    actions.append(step.action)
        runs.append(np.array(actions))
        station.session.pause("next run")
    assert runs[0].shape[0] > 20
    np.testing.assert_array_equal(runs[0], runs[1])


def test_backpressure_waits_for_a_slow_subscriber_instead_of_dropping(station):
    q = station.loop.subscribe("slow", 64)
    got: list[int] = []
    done = threading.Event()

    def consume() -> None:
        # Take nothing until the driver has had to wait for this queue (however slow a tick is
        # on a loaded machine), then keep up slowly.
        deadline = time.monotonic() + 10.0
        while station.driver.waits == 0 and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.005)
        while not done.is_set() or q.qsize():
            step = q.get(timeout=0.05)
            if step is not None:
                got.append(step.index)
                time.sleep(0.02)

    reader = threading.Thread(target=consume, name="slow-subscriber")
    reader.start()
    try:
        station.start()
        ticks = 20
        station.driver.run(ticks)
    finally:
        done.set()
        reader.join(5.0)
    assert q.dropped == 0
    assert got == list(range(got[0], got[0] + ticks + 1))  # the priming tick and every tick
    assert station.driver.waits > 0
    assert station.clock.now() == pytest.approx((ticks + 1) * PERIOD)


def test_estop_in_lockstep_holds_at_the_next_tick_and_flushes(station):
    station.start()
    station.use_teleop("expert")
    station.begin_episode(PICK, seed=3)
    station.session.start(ControlMode.TELEOP)
    station.driver.run(10)
    station.latch.trigger("test stop", "test")
    before = station.robot.get_observation()["ee_pos"].copy()
    steps = [station.driver.tick() for _ in range(5)]
    assert all(s.source == SourceKind.HOLD and s.safety_flags & SafetyFlag.ESTOP for s in steps)
    after = station.robot.get_observation()["ee_pos"]
    assert float(np.linalg.norm(after - before)) < 2e-3  # held where it was
    assert station.robot.emergency_held  # the latch's relay thread reached the driver


def test_step_once_belongs_to_the_driver_thread_and_excludes_the_loop_thread(station):
    station.start()
    with pytest.raises(RuntimeError, match="lock-step"):
        station.loop.start()
    errors: list[BaseException] = []
    other = threading.Thread(target=lambda: _catch(errors, station.driver.tick), name="other")
    other.start()
    other.join(5.0)
    assert errors and "thread that started" in str(errors[0])


def test_lockstep_refuses_devices_that_cannot_follow_simulated_time(tmp_path):
    cell = tmp_path / "cell.toml"
    cell.write_text('name = "cell"\ncontrol_rate_hz = 20\n[robot]\ntype = "sim"\n'
                    '[[cameras]]\ntype = "opencv"\nname = "front"\nsource = "0"\n'
                    '[[teleops]]\ntype = "scripted"\nname = "expert"\n')
    with pytest.raises(DeviceError, match="not of type \"sim\""):
        LockstepStation.from_profile(load_station_profile(cell))
    assert cli_main(["record", "--teleop", "keyboard", "--task", PICK, "--lockstep",
                     "--dataset", str(tmp_path / "d")]) == 2


def test_worker_blocks_keep_episodes_of_one_layout_together():
    from vla_studio.commands.record_workers import plan_blocks

    assert plan_blocks(5, 2) == [(0, 3), (3, 2)]
    assert plan_blocks(200, 2, repeats=3) == [(0, 102), (102, 98)]
    assert plan_blocks(4, 3, repeats=3) == [(0, 3), (3, 1)]  # no worker left without episodes


def test_workers_record_one_consistent_dataset(tmp_path, capsys):
    root = tmp_path / "dataset"
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("pick up the red cube\npick up the green cube\npick up the blue cube\n")
    assert cli_main(["record", "--teleop", "scripted", "--task-file", str(tasks),
                     "--episodes", "4", "--seed", "40", "--lockstep", "--workers", "2",
                     "--layout-repeats", "2", "--dataset", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["workers"] == 2 and summary["clock"] == "sim"
    eps = summary["episodes"]
    assert [e["episode"] for e in eps] == [1, 2, 3, 4]
    assert [e["seed"] for e in eps] == [40, 40, 41, 41]  # episode i keeps seed SEED + i // 2
    assert [e["instruction"] for e in eps] == ["pick up the red cube", "pick up the green cube",
                                               "pick up the blue cube", "pick up the red cube"]
    assert {e["worker"] for e in eps} == {1, 2}
    files = _episodes(root)
    assert len(files) == 4 and len({f.name for f in files}) == 4
    index = DatasetIndex(Dataset(root)).refresh()
    assert sorted(s.episode_id for s in index) == sorted(e["id"] for e in eps)
    starts = {}
    for path in files:
        with EpisodeReader(path) as ep:
            assert ep.attrs["clock"] == "sim" and int(ep.attrs["dropped_steps"]) == 0
            starts[ep.attrs["episode_id"]] = ep.state()["joint_pos"][0]
    first = [starts[e["id"]] for e in eps]
    # One layout per seed (its jittered start pose too; the first step has moved a little).
    assert np.abs(first[0] - first[1]).max() < 1e-4 < 2e-3 < np.abs(first[1] - first[2]).max()
    assert not list(root.rglob("*.recording"))
    history = json.loads((root / "instructions.json").read_text())
    assert {h["text"]: h["count"] for h in history}["pick up the red cube"] == 2
    assert cli_main(["dataset", "verify", "--dataset", str(root)]) == 0


def _catch(errors: list[BaseException], fn) -> None:
    try:
        fn()
    except BaseException as exc:  # handed back to the test
        errors.append(exc)


def test_a_hung_simulator_call_still_latches_the_estop_in_lockstep(station, monkeypatch):
    from vla_studio.core import loop_lockstep

    monkeypatch.setattr(loop_lockstep, "LOCKSTEP_ROBOT_DEADLINE_S", 0.3)
    station.start()
    assert station.loop._io.deadline_s == pytest.approx(0.3)
    real_send = station.robot._send
    calls = {"n": 0}

    def hang_once(action):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.8)  # far past the deadline
        return real_send(action)

    monkeypatch.setattr(station.robot, "_send", hang_once)
    station.use_teleop("expert")
    station.begin_episode(PICK, seed=3)
    station.session.start(ControlMode.TELEOP)
    assert station.driver.tick() is None  # the stuck tick is void
    assert station.latch.is_tripped and "did not return within 300 ms" in station.latch.event.reason
    step = station.driver.tick()
    assert step.source == SourceKind.HOLD and step.safety_flags & SafetyFlag.ESTOP
