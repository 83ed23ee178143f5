"""An operator at the example ROS 2 station (examples/ros2_fake_arm.toml) in the real window,
against the fake arm node over Zenoh: the arm's camera shows in its pane, the keyboard drives the
arm while an episode records, a silent arm topic reads HOLDING in the banner, STOP latches, reaches
the arm and shows in the banner, and Robot > Recover robot says the arm has none and changes
nothing.

GUI test (pytest-qt, offscreen): scripts/test.sh runs it with the GUI suite (see conftest.py).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from vla_studio.core.profile import parse_profile
from vla_studio.core.session import RunState
from vla_studio.core.types import SourceKind
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.recording import EpisodeState, RecorderState
from vla_studio.devices.registry import config_class_for
from vla_studio.station import Station

from tests.ui import conftest as ui_conftest

isolated_settings = ui_conftest.isolated_settings  # autouse: QSettings of the test's own
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ros2_fake_arm.toml"


@pytest.fixture
def ros2_window(qtbot, fake_arm, tmp_path):
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for table in [data["robot"], *data["cameras"], *data["observers"]]:
        table["router"] = fake_arm.router
    data["recording"]["dataset_dir"] = str(tmp_path / "dataset")
    station = Station.from_profile(parse_profile(data, config_class_for, source=str(EXAMPLE),
                                                 path=EXAMPLE))
    station.start()
    window = ui_conftest.open_window(qtbot, station)
    yield window
    window.close()
    station.close()


def ee(window) -> np.ndarray | None:
    step = window.station.loop.snapshot.get()
    pos = None if step is None else step.observation.state.get("ee_pos")
    return None if pos is None else np.asarray(pos, dtype=float)


def beyond(window, axis: int, start: np.ndarray, distance: float) -> bool:
    pos = ee(window)
    return pos is not None and pos[axis] > start[axis] + distance


def test_keyboard_drives_the_ros2_arm_an_episode_records_and_stop_reaches_the_arm(
        ros2_window, fake_arm, qtbot):
    window, station = ros2_window, ros2_window.station
    dock = window.panels["recorder"]
    events: list[str] = []
    station.events.subscribe(lambda e: events.append(e.kind))
    # the arm's camera, through the bridge's ros2 camera kind, in its pane
    pane = window.cameras.panes["overhead"]
    qtbot.waitUntil(lambda: pane.shown_index >= 5, timeout=10_000)
    dock.instruction.setFocus()
    dock.instruction.clear()
    qtbot.keyClicks(dock.instruction, "move the arm forward")
    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.recorder.status().state == RecorderState.RECORDING,
                    timeout=10_000)
    qtbot.keyClick(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: station.loop.snapshot.get().source == SourceKind.TELEOP
                    and ee(window) is not None, timeout=5000)
    start = ee(window)
    qtbot.keyPress(window, Qt.Key.Key_W)
    qtbot.waitUntil(lambda: beyond(window, 0, start, 0.02), timeout=10_000)

    assert fake_arm.command("silence") == "ok silence"  # the arm's topics go quiet, W held
    qtbot.waitUntil(lambda: window.banner.run_state.text().startswith("HOLDING"), timeout=5000)
    assert fake_arm.command("speak") == "ok speak"
    qtbot.waitUntil(lambda: window.banner.run_state.text().startswith("RUNNING"), timeout=5000)
    qtbot.keyRelease(window, Qt.Key.Key_W)

    qtbot.mouseClick(dock.record_button, Qt.MouseButton.LeftButton)  # stop and save
    qtbot.waitUntil(lambda: dock.recorder.last_episode is not None and
                    dock.recorder.last_episode.state == EpisodeState.SAVED, timeout=20_000)
    with EpisodeReader(dock.recorder.last_episode.path) as episode:
        assert episode.attrs["robot_type"] == "ros2"
        x = episode.step("observation/state/ee_pos")[:, 0]
        assert np.nanmax(x) > x[0] + 0.015
        assert len(episode.step("observation/image/overhead/capture_time")) == episode.num_steps

    qtbot.keyClick(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: station.session.state == RunState.RUNNING, timeout=5000)
    qtbot.keyPress(window, Qt.Key.Key_W)
    qtbot.mouseClick(window.estop.stop_button, Qt.MouseButton.LeftButton)
    assert station.session.state == RunState.ESTOPPED
    qtbot.waitUntil(lambda: bool(fake_arm.estop_events) and
                    fake_arm.estop_events[-1][0] == "true", timeout=2000)
    assert "E-STOP LATCHED" in window.estop.status.text()
    qtbot.wait(300)  # the arm ran into its own stop
    held = ee(window)
    qtbot.wait(300)
    assert np.linalg.norm(ee(window) - held) < 1e-6  # and stays, W still held
    qtbot.keyRelease(window, Qt.Key.Key_W)

    window.actions_by_id["robot.recover"].trigger()  # ROS 2 has no recovery: it says so
    qtbot.waitUntil(lambda: "robot.recover_failed" in events, timeout=5000)
    assert station.latch.is_tripped  # and changes nothing
    qtbot.mouseClick(window.estop.reset_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(window.estop.reset_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: fake_arm.estop_events[-1][0] == "false", timeout=2000)
    assert station.session.state == RunState.PAUSED
