"""Replay in the simulator from the Replay view: X re-executes the recorded actions of an expert
demonstration on a ``replay-sim`` thread, the re-executed camera appears beside the recorded
one, the end-effector divergence is plotted and the moment the task was accomplished is marked
on the timeline."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt

from tests.profiles import changed_profile
from tests.recorded_datasets import record_expert
from tests.ui.replay_helpers import press, replay_window, wait_painted
from vla_studio.paths import resource
from vla_studio.station import Station


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    dataset = tmp_path_factory.mktemp("sim_replay") / "demos"
    return record_expert(dataset, 1, max_seconds=8.0)[0]


def test_x_re_executes_the_episode_and_shows_the_simulated_view_beside_the_recorded(
        qtbot, tmp_path, demo):
    profile = changed_profile(resource("stations", "dry_run.toml"), tmp_path,
                              recording={"dataset_dir": str(demo.parent.parent)})
    station = Station.from_profile(profile)
    station.start()
    try:
        window = replay_window(qtbot, station, demo.parent.parent)
        view = window.replay
        assert window.modes.open_path(demo)
        wait_painted(qtbot, view, 0)
        press(qtbot, view, Qt.Key.Key_X)
        assert not view.sim_button.isEnabled()
        qtbot.waitUntil(lambda: demo in view.sim, timeout=60000)
        result = view.sim[demo]
        assert result.max_mm < 1.0 and "divergence mean" in view.message.text()
        assert list(view.grid.panes)[:2] == ["front", "front:sim"]
        assert "divergence" in view.plots.plots
        success = [e for e in view.events if e.kind == "success"]
        assert [e.start for e in success] == [result.success_step]
        view.seek(result.success_step)
        wait_painted(qtbot, view, result.success_step)
        assert "mm" in view.grid.panes["front:sim"]._note
        assert view.sim_button.isEnabled()
        assert "replay-sim" in {t.name for t in threading.enumerate()}
        window.close()
        assert "replay-sim" not in {t.name for t in threading.enumerate()}  # joined
    finally:
        station.close()
