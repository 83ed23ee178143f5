"""The Replay view driven as a researcher drives it: open from the Episodes list, seek by keys,
timeline and plots (pictures, plots and timeline move together), play with Space and J/K/L,
jump between events; Space still stops a running robot; replay keys act only in the view."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.ui.replay_helpers import (press, replay_window, timeline_point, wait_painted,
                                     write_episodes)
from vla_studio.core.arbiter import FixedActionSource
from vla_studio.core.session import ControlMode

MOVE = np.array([0.001, 0, 0, 0, 0, 0, 1.0])


@pytest.fixture
def window(qtbot, dry_station, tmp_path):
    write_episodes(tmp_path / "dataset", 3)
    return replay_window(qtbot, dry_station, tmp_path / "dataset")


def open_first(qtbot, window):
    browser = window.panels["episodes"]
    browser.table.setFocus()
    browser.table.setCurrentIndex(browser.proxy.index(0, 1))
    qtbot.keyClick(browser.table, Qt.Key.Key_Return)
    view = window.replay
    qtbot.waitUntil(lambda: view.episode is not None, timeout=5000)
    wait_painted(qtbot, view, 0)
    return view


def test_enter_in_the_episodes_list_opens_the_episode_in_the_replay_view(qtbot, window):
    view = open_first(qtbot, window)
    assert window.modes.replaying
    assert not window.docks["recorder"].isVisible()  # live-only docks make room
    assert window.docks["episodes"].isVisible()
    assert set(view.grid.panes) == {"front", "wrist", "wrist:depth"}
    browser = window.panels["episodes"]
    newest = browser.model.rows[browser.proxy.mapToSource(browser.proxy.index(0, 0)).row()]
    assert view.episode.path.name == newest.name and "pick up cube 2" in view.title.text()
    assert view.reader.decoded <= 3 * 5  # the shown frames and their neighbours, no more
    window.actions_by_id["view.live"].trigger()
    assert window.docks["recorder"].isVisible() and not window.modes.replaying


def test_keys_timeline_and_plots_seek_and_everything_moves_together(qtbot, window):
    view = open_first(qtbot, window)
    press(qtbot, view, Qt.Key.Key_Right)
    wait_painted(qtbot, view, 1)
    press(qtbot, view, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)  # one second
    second = view.episode.step_at(view.episode.time_of(1) + 1.0)
    wait_painted(qtbot, view, second)
    assert view.timeline.playhead == second
    assert view.plots.playhead_time == pytest.approx(view.episode.time_of(second))
    press(qtbot, view, Qt.Key.Key_End)
    wait_painted(qtbot, view, view.episode.num_steps - 1)
    press(qtbot, view, Qt.Key.Key_Home)
    wait_painted(qtbot, view, 0)
    qtbot.mouseClick(view.timeline, Qt.MouseButton.LeftButton,
                     pos=timeline_point(view, 70, "ruler"))
    wait_painted(qtbot, view, 70)
    assert "step 71 / 120" in view.transport.position.text()
    view.plots.seek_requested.emit(view.episode.time_of(33) + 0.001)  # a click on a plot
    wait_painted(qtbot, view, 33)
    assert view.timeline.playhead == 33


def test_a_late_camera_shows_the_frame_captured_before_the_tick(qtbot, window):
    view = open_first(qtbot, window)
    view.seek(60)
    wait_painted(qtbot, view, 60)
    frames = view.reader.cached(60)
    # The wrist camera's frames arrive 40 ms late: the one captured before tick 60 is stored
    # with a later step, and shown here anyway.
    assert frames.source_steps["wrist"] > 60 and 60 <= frames.source_steps["front"] <= 61
    assert "stored with step" in view.grid.panes["wrist"].toolTip()
    assert "ms old" in view.grid.panes["front"]._note


def test_space_plays_and_k_pauses_but_during_a_run_space_stops_the_robot(qtbot, window):
    view = open_first(qtbot, window)
    press(qtbot, view, Qt.Key.Key_Space)
    assert view.clock.playing
    qtbot.waitUntil(lambda: view.step > 10, timeout=5000)
    press(qtbot, view, Qt.Key.Key_K)
    assert not view.clock.playing
    station = window.station
    station.set_teleop_source(FixedActionSource(MOVE))
    station.session.start(ControlMode.TELEOP)
    window.modes.show_replay()  # a run started: the window went live; back to the replay
    press(qtbot, view, Qt.Key.Key_Space)
    assert station.latch.is_tripped and not view.clock.playing


def test_j_and_l_play_backward_and_forward_faster_each_press(qtbot, window):
    view = open_first(qtbot, window)
    press(qtbot, view, Qt.Key.Key_L)
    assert view.clock.direction == 1 and view.clock.speed == 1.0
    press(qtbot, view, Qt.Key.Key_L)
    assert view.clock.speed == 2.0 and "2×" in view.transport.speed.currentText()
    press(qtbot, view, Qt.Key.Key_J)
    assert view.clock.direction == -1
    time.sleep(0.2)
    press(qtbot, view, Qt.Key.Key_K)
    view.seek(100)
    wait_painted(qtbot, view, 100)
    press(qtbot, view, Qt.Key.Key_J)
    qtbot.waitUntil(lambda: view.step < 95, timeout=5000)
    press(qtbot, view, Qt.Key.Key_K)


def test_e_jumps_from_event_to_event(qtbot, window):
    view = open_first(qtbot, window)
    starts = {e.kind: e.start for e in view.events if e.kind != "camera_gap"}
    assert {"hold", "intervention", "clamp", "estop", "success"} <= set(starts)
    seen = []
    for _ in range(12):
        press(qtbot, view, Qt.Key.Key_E)
        seen.append(view.target)
    assert starts["intervention"] in seen and starts["estop"] in seen
    assert seen == sorted(seen)
    press(qtbot, view, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    assert view.target < seen[-1]


def test_replay_keys_do_nothing_outside_the_replay_view(qtbot, window):
    view = open_first(qtbot, window)
    window.modes.show_live()
    window.cameras.setFocus()
    qtbot.keyClick(window.cameras, Qt.Key.Key_S)  # a drive key here, never "mark success"
    qtbot.keyClick(window.cameras, Qt.Key.Key_Right)
    assert view.episode.annotations == {} and view.target == 0


def test_the_list_follows_an_episode_opened_before_its_rows_arrived(qtbot, dry_station,
                                                                    tmp_path):
    from tests.ui.conftest import open_window

    paths = write_episodes(tmp_path / "dataset", 2)
    window = open_window(qtbot, dry_station)  # `vla-studio replay FILE` opens at once
    assert window.modes.open_path(paths[0])
    browser = window.panels["episodes"]
    browser.refresh()
    qtbot.waitUntil(lambda: browser.proxy.rowCount() == 2, timeout=10000)
    qtbot.waitUntil(lambda: [s.name for s in browser.selected()] == [paths[0].name],
                    timeout=5000)
