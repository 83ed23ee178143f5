"""Issue 15's "done when", in the real window on the simulated station with a virtual gamepad
(SDL virtual joystick through the real gamepad path): run a policy as DAgger round 1, take
over (hold RB, drive), hand back, finish; the episode is a DAgger episode in the Episodes list,
shows its intervention segment on the Replay timeline, and carries it into the RLDS export."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.ui.test_policy_run_window import load, policy_drives
from vla_studio.core.types import SourceKind
from vla_studio.data.dagger import dagger_labels
from vla_studio.data.episode_file import INTERVENTION, EpisodeReader
from vla_studio.data.recording import EpisodeState
from vla_studio.data.rlds import ExportOptions, RldsExporter
from vla_studio.data.rlds.episode_encoder import read_episode
from vla_studio.devices.teleop.virtual_gamepad import VirtualGamepad
from vla_studio.policies.small_conv import SmallConvConfig, write_small_conv

CAP_M = 0.02  # the default station's max_delta_translation


@pytest.fixture
def small_policy(tmp_path) -> str:
    return str(write_small_conv(tmp_path / "small_conv", SmallConvConfig(
        name="small_conv", width=8, chunk_size=8), action_std=0.004))


@pytest.fixture
def pad():
    p = VirtualGamepad("xbox", "DAgger GUI Pad")
    p.attach()
    yield p
    p.detach()


def _source(station):
    step = station.loop.snapshot.get()
    return step.source if step is not None else None


def test_an_operator_corrects_a_policy_run_with_the_gamepad_and_hands_back(
        sim_window, qtbot, small_policy, pad, tmp_path):
    window, station = sim_window, sim_window.station
    station.use_teleop("gamepad")
    qtbot.waitUntil(lambda: station.teleops["gamepad"].get_state().connected, timeout=10_000)
    window.docks["policy"].raise_()
    panel = window.panels["policy"]
    load(qtbot, panel, small_policy)
    panel.record.setChecked(True)
    panel.dagger_round.setValue(1)
    panel.instruction.setText("pick up the red cube")
    steps = station.loop.subscribe("dagger-gui-test", 100_000)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.supervisor.run_active and policy_drives(station),
                    timeout=60_000)
    # Take over: hold RB and push the left stick forward.
    pad.set_button("right_shoulder", True)
    pad.set_axis("left_y", -1.0)
    qtbot.waitUntil(lambda: _source(station) == SourceKind.INTERVENTION, timeout=10_000)
    qtbot.waitUntil(lambda: window.run_state.text().startswith("INTERVENTION"), timeout=5000)
    qtbot.waitUntil(lambda: "you have control" in panel.run_state.text(), timeout=5000)
    qtbot.wait(700)  # correct for a while
    pad.set_axis("left_y", 0.0)
    pad.set_button("right_shoulder", False)  # let go: hand back
    qtbot.waitUntil(lambda: policy_drives(station), timeout=10_000)
    qtbot.wait(300)
    qtbot.mouseClick(panel.finish_button, Qt.MouseButton.LeftButton)
    recorder = panel.recorder
    qtbot.waitUntil(lambda: not panel.supervisor.run_active and recorder.last_episode is not None
                    and recorder.last_episode.state == EpisodeState.SAVED, timeout=30_000)
    station.loop.unsubscribe(steps)
    info = recorder.last_episode
    assert "DAgger round 1" in "\n".join(panel.log_view.lines)

    # The file: intervention steps with the policy's shadow proposal beside them, bumpless.
    with EpisodeReader(info.path) as ep:
        assert ep.attrs["dagger_round"] == 1 and ep.attrs["interventions"] == 1
        src = ep.step("action_source")
        labels = dagger_labels(src, 20)
        ((start, end),) = labels.takeovers
        assert end - start >= 10 and (src[:start] != INTERVENTION).all()
        action, flags = ep.step("action"), ep.step("safety_flags")
        for first in (start, end):  # the takeover's and the hand-back's first commands
            assert np.linalg.norm(action[first, :3]) <= CAP_M + 1e-6 and flags[first] == 0
        assert np.isfinite(ep.step("policy_action")[start:end]).all(axis=1).mean() > 0.5
        assert labels.pre_intervention.any()

    # The Episodes list: a DAgger episode of round 1 with its takeover.
    browser = window.panels["episodes"]
    qtbot.waitUntil(lambda: any(s.episode_id == info.episode_id for s in browser.model.rows),
                    timeout=20_000)
    row = next(i for i, s in enumerate(browser.model.rows) if s.episode_id == info.episode_id)
    cell = lambda name: browser.model.data(browser.model.index(  # noqa: E731
        row, browser.model.COLUMNS.index(name)))
    assert cell("Source") == "dagger · gamepad" and cell("Round") == "1"
    assert cell("Interventions").startswith("1 · ")
    assert browser.round_combo.isVisible() and browser.round_combo.findText("Round 1") >= 0
    rounds = panel.rounds
    qtbot.waitUntil(lambda: bool(rounds.stats), timeout=10_000)
    assert rounds.stats[0].round == 1 and rounds.stats[0].takeovers == 1

    # The Replay timeline shows the intervention segment where the file has it.
    assert window.modes.open_path(info.path)
    view = window.modes.view
    qtbot.waitUntil(lambda: view.episode is not None, timeout=20_000)
    segments = [(e.start, e.end) for e in view.timeline.events if e.kind == "intervention"]
    assert segments == [(start, end)]

    # The RLDS export carries it as step fields.
    exporter = RldsExporter(recorder.dataset.root, tmp_path / "rlds",
                            ExportOptions(name="dagger_gui"))
    plan = exporter.plan()
    assert plan.dagger
    (planned,) = [p for p in plan.episodes if p.summary.path == info.path]
    with EpisodeReader(info.path) as ep:
        values = read_episode(plan, planned, ep).values
    lo, hi = planned.summary.trim
    assert np.flatnonzero(values["steps/intervention"]).tolist() == \
        [i - lo for i in range(start, end) if lo <= i < hi]
    assert values["episode_metadata/dagger_round"].tolist() == [1]
    report = exporter.run()
    assert report.episodes["train"] >= 1
