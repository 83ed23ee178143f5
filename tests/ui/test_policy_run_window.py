"""Issue 12's "done when", in the real window on the simulated station: load a policy, type the
instruction, Start, watch the overlays and the predicted path, STOP mid-motion (the arm halts at
once and stays halted until a deliberate two-step reset), resume, finish; the run is a policy
episode with its confidence in the Episodes dock. Then the same through `vla-studio serve` on
loopback, with the server's URL in the panel."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from vla_studio.core.session import RunState
from vla_studio.core.types import SourceKind
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.recording import EpisodeState
from vla_studio.policies.small_conv import SmallConvConfig, write_small_conv
from tests.policies.test_server_cli import ctrl_c_as_in_a_terminal

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_policy(tmp_path) -> str:
    # A real torch model of the reference architecture's interface, small enough to load fast.
    return str(write_small_conv(tmp_path / "small_conv", SmallConvConfig(
        name="small_conv", width=8, chunk_size=8), action_std=0.004))


def ee(station) -> np.ndarray:
    return np.asarray(station.loop.snapshot.get().observation.state["ee_pos"], np.float64)


def policy_drives(station) -> bool:
    step = station.loop.snapshot.get()
    return step is not None and step.source == SourceKind.POLICY


def load(qtbot, panel, source: str) -> None:
    panel.load_box.source.setCurrentText(source)
    qtbot.mouseClick(panel.load_box.load_button, Qt.MouseButton.LeftButton)
    assert panel.load_box.state.text().startswith("Loading")
    assert not panel.load_box.load_button.isEnabled()  # the GUI stays live: a visible state
    qtbot.waitUntil(lambda: panel.supervisor.runner is not None and not panel.jobs.busy,
                    timeout=120_000)
    assert not panel.load_box.error.isVisible(), panel.load_box.error.text()


def supervise_a_run(qtbot, window, panel) -> None:
    """Start, watch, STOP, reset, resume, finish (shared by the local and the served policy)."""
    station = window.station
    panel.instruction.clear()
    qtbot.mouseClick(panel.instruction, Qt.MouseButton.LeftButton)  # keys go to the field
    qtbot.waitUntil(panel.instruction.hasFocus, timeout=2000)
    qtbot.keyClicks(panel.instruction, "pick up the red cube")
    assert panel.instruction.text() == "pick up the red cube"
    panel.record.setChecked(True)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.supervisor.run_active and policy_drives(station),
                    timeout=60_000)
    assert panel.run_state.text().startswith("RUNNING")
    # the overlays: the confidence gauge and the predicted path in the sim cameras
    overlays = panel.overlays
    qtbot.waitUntil(lambda: overlays.path_points.get("front", 0) >= 2, timeout=20_000)
    qtbot.waitUntil(lambda: overlays.gauges["front"].value is not None, timeout=20_000)
    front = window.cameras.panes["front"]
    assert overlays.paths["front"] in front.overlays and overlays.gauges["front"] in front.overlays
    assert "confidence (consistency)" in overlays.gauges["front"].label
    # STOP mid-motion, with the key the operator uses
    qtbot.waitUntil(lambda: policy_drives(station), timeout=10_000)
    qtbot.keyClick(window.cameras, Qt.Key.Key_Escape)
    assert station.latch.is_tripped
    t_stop = station.latch.event.t
    qtbot.waitUntil(lambda: station.loop.snapshot.get().t > t_stop + 0.1, timeout=3000)
    held = ee(station)
    qtbot.wait(600)
    assert np.linalg.norm(ee(station) - held) < 0.002, "the arm moved after the stop"
    assert station.loop.snapshot.get().source == SourceKind.HOLD
    qtbot.waitUntil(lambda: overlays.banners["front"].text.startswith("STOPPED"), timeout=3000)
    assert overlays.path_points["front"] == 0  # no plan is drawn for a stopped arm
    # Start cannot move it while the stop is latched ...
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.message.isVisible(), timeout=5000)
    assert "reset it first" in panel.message.text()
    # ... and a two-step reset leaves it paused, still holding
    estop = window.estop
    qtbot.mouseClick(estop.reset_button, Qt.MouseButton.LeftButton)
    assert station.latch.is_tripped and station.latch.reset_armed
    qtbot.mouseClick(estop.reset_button, Qt.MouseButton.LeftButton)
    assert not station.latch.is_tripped and station.session.state == RunState.PAUSED
    held = ee(station)
    qtbot.wait(400)
    assert np.linalg.norm(ee(station) - held) < 0.002, "the arm moved after the reset"
    qtbot.waitUntil(lambda: overlays.banners["front"].text.startswith("PAUSED"), timeout=3000)
    # resume, then finish
    assert panel.start_button.text() == "▶ Resume"
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: station.session.state == RunState.RUNNING and policy_drives(station),
                    timeout=30_000)
    qtbot.wait(500)
    qtbot.mouseClick(panel.finish_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.supervisor.run_active and not panel.jobs.busy,
                    timeout=30_000)
    recorder = panel.recorder
    qtbot.waitUntil(lambda: recorder.last_episode is not None
                    and recorder.last_episode.state == EpisodeState.SAVED, timeout=30_000)
    lines = "\n".join(panel.log_view.lines)
    for words in ("Run started: 'pick up the red cube' (recorded as an episode)", "STOP",
                  "Stop reset", "Resumed.", "Run finished", "Task: not yet accomplished"):
        assert words in lines, (words, lines.splitlines())


def episodes_row(qtbot, window, episode_id: str):
    browser = window.panels["episodes"]
    qtbot.waitUntil(lambda: any(s.episode_id == episode_id for s in browser.model.rows),
                    timeout=20_000)
    row = next(i for i, s in enumerate(browser.model.rows) if s.episode_id == episode_id)
    column = browser.model.COLUMNS.index("Source")
    return browser.model.data(browser.model.index(row, column))


def test_a_supervisor_runs_a_policy_in_the_window_stops_it_resumes_and_finishes(
        sim_window, qtbot, small_policy):
    window = sim_window
    window.docks["policy"].raise_()
    panel = window.panels["policy"]
    load(qtbot, panel, small_policy)
    assert "cameras front, wrist at 224x224" in panel.load_box.spec.text()
    assert "safe" in panel.load_box.format.text()
    assert panel.load_box.recent()[0] == small_policy
    supervise_a_run(qtbot, window, panel)
    info = panel.recorder.last_episode
    with EpisodeReader(info.path) as ep:
        assert ep.attrs["policy_id"].startswith("native:")
        assert (ep.step("action_source") == 2).sum() > 5
        assert np.isfinite(ep.step("confidence")).any()
        assert ep.attrs["confidence_method"] == "consistency"
        flags = ep.step("safety_flags")
        assert flags.any()  # the stop is in the episode
    text = episodes_row(qtbot, window, info.episode_id)
    assert re.fullmatch(r"policy \(0\.\d\d\)", text), text


def serve(source: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "vla_studio", "serve", "--policy", source,
                             "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    assert ready, "serve printed nothing"
    line = proc.stdout.readline()
    match = re.search(r"ws://127\.0\.0\.1:\d+", line)
    assert match, line
    return proc, match.group(0)


def test_the_same_run_through_vla_studio_serve_on_loopback(sim_window, qtbot, small_policy):
    proc, url = serve(small_policy)
    try:
        window = sim_window
        window.docks["policy"].raise_()
        panel = window.panels["policy"]
        panel.load_box.server.setText(url)
        qtbot.mouseClick(panel.load_box.use_server, Qt.MouseButton.LeftButton)
        assert panel.load_box.source.currentText() == url
        assert not panel.load_box.where.isEnabled()  # a server runs the model where it is
        load(qtbot, panel, url)
        assert panel.load_box.state.text() == f"Loaded · remote: {url}"
        supervise_a_run(qtbot, window, panel)
        info = panel.recorder.last_episode
        with EpisodeReader(info.path) as ep:
            assert ep.attrs["policy_id"] == f"remote:{url}"
            assert (ep.step("action_source") == 2).sum() > 5
        assert episodes_row(qtbot, window, info.episode_id).startswith("policy (")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
