"""The Policy dock on the dry-run station: loading and its refusals, the trust labels, live
settings, step once, asking for help (band + sound), the STOP keys during a run, overlays that
come and go with the policy, and a camera without a pose said once."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication

from vla_studio.core.session import RunState
from vla_studio.core.types import SourceKind
from vla_studio.policies.small_conv import SmallConvConfig, write_small_conv
from vla_studio.ui.policy.load_box import RECENT_KEY, file_filters, format_label


@pytest.fixture
def small_policy(tmp_path) -> str:
    return str(write_small_conv(tmp_path / "small_conv", SmallConvConfig(
        name="small_conv", width=8, chunk_size=6)))


@pytest.fixture
def panel(main_window):
    main_window.docks["policy"].raise_()
    return main_window.panels["policy"]


def load(qtbot, panel, source: str) -> None:
    panel.load_box.source.setCurrentText(source)
    qtbot.mouseClick(panel.load_box.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.jobs.busy, timeout=120_000)


def start(qtbot, panel, instruction: str = "pick up the red cube") -> None:
    panel.instruction.setText(instruction)
    panel.record.setChecked(False)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    station = panel.station
    qtbot.waitUntil(lambda: panel.supervisor.run_active and
                    station.loop.snapshot.get().source == SourceKind.POLICY, timeout=60_000)


def test_the_load_dialog_names_every_format_with_its_trust_label():
    filters = file_filters()
    assert any("config.json" in f and "— safe" in f for f in filters)
    assert any("*.pt)" in f and "weights_only" in f and "— safe" in f for f in filters)
    assert any("*.pt2" in f and "trusted files only" in f for f in filters)
    assert format_label("untrained")[1] == "built-in"
    assert format_label("ws://127.0.0.1:8000") == \
        ("policy server (ws://host:port, openpi protocol) · safe", "safe")


def test_a_bad_source_is_one_line_next_to_the_button_and_a_pt2_needs_trust(panel, qtbot,
                                                                         tmp_path):
    load(qtbot, panel, str(tmp_path / "no_such_checkpoint"))
    box = panel.load_box
    assert box.error.isVisible() and "no such file or folder" in box.error.text()
    assert "\n" not in box.error.text() and "Traceback" not in box.error.text()
    assert box.state.text() == "No policy loaded." and panel.supervisor.runner is None
    program = tmp_path / "model.pt2"
    program.write_bytes(b"not really")
    box.source.setCurrentText(str(program))
    assert "trusted files only" in box.format.text() and box.trusted.isEnabled()
    qtbot.mouseClick(box.load_button, Qt.MouseButton.LeftButton)
    assert "trusted file" in box.error.text() and not panel.jobs.busy  # refused before loading
    box.source.setCurrentText("untrained")
    assert not box.trusted.isEnabled() and not box.trusted.isChecked()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{ not json")
    load(qtbot, panel, str(corrupt))
    assert box.error.isVisible() and "\n" not in box.error.text(), box.error.text()
    assert QSettings().value(RECENT_KEY, []) in ([], None)  # only loaded sources are remembered


def test_settings_take_effect_on_the_running_policy_and_are_remembered(panel, qtbot,
                                                                      small_policy):
    load(qtbot, panel, small_policy)
    assert QSettings().value(RECENT_KEY)[0] == small_policy
    start(qtbot, panel)
    runner = panel.supervisor.runner
    panel.speed.setValue(40)
    panel.mode.setCurrentText("replan")
    panel.replan_every.setValue(3)
    assert runner.settings.speed_scale == pytest.approx(0.4)
    assert (runner.settings.mode, runner.settings.replan_every) == ("replan", 3)
    assert panel.replan_every.isEnabled()
    qs = QSettings()
    assert qs.value("policy/settings/mode") == "replan"
    assert float(qs.value("policy/settings/speed_scale")) == pytest.approx(0.4)
    station = panel.station
    applied = time.monotonic()
    qtbot.waitUntil(lambda: station.loop.snapshot.get().source == SourceKind.POLICY and
                    station.loop.snapshot.get().t > applied, timeout=10_000)
    step = station.loop.snapshot.get()
    assert step.requested[:6] == pytest.approx(step.extras["policy_action"][:6] * 0.4)
    panel.pause()
    assert station.session.state == RunState.PAUSED
    qtbot.waitUntil(lambda: panel.run_state.text() == "PAUSED", timeout=2000)


def test_step_once_runs_one_chunk_and_pauses(panel, qtbot, small_policy):
    load(qtbot, panel, small_policy)
    panel.instruction.setText("pick up the red cube")
    qtbot.mouseClick(panel.step_button, Qt.MouseButton.LeftButton)
    station = panel.station
    qtbot.waitUntil(lambda: panel.supervisor.run_active and station.session.snapshot.reason ==
                    "stepped once", timeout=60_000)
    assert station.session.state == RunState.PAUSED
    qtbot.waitUntil(lambda: "Stepped once" in "\n".join(panel.log_view.lines), timeout=3000)
    assert panel.start_button.isEnabled() and panel.start_button.text() == "▶ Resume"


def test_low_confidence_asks_for_help_with_a_band_and_a_sound(panel, qtbot, small_policy,
                                                            monkeypatch):
    beeps: list[int] = []
    monkeypatch.setattr(QApplication, "beep", staticmethod(lambda: beeps.append(1)))
    load(qtbot, panel, small_policy)
    panel.conf_window.setValue(3)
    panel.threshold.setValue(0.99)  # consistency of a random model never gets there
    start(qtbot, panel)
    station = panel.station
    qtbot.waitUntil(lambda: station.session.state == RunState.PAUSED, timeout=30_000)
    qtbot.waitUntil(lambda: bool(beeps), timeout=3000)
    band = panel.overlays.banners["front"]
    qtbot.waitUntil(lambda: band.text.startswith("ASKING FOR HELP"), timeout=3000)
    assert "below 0.99" in band.text and "press Start" in band.text
    assert panel.overlays.gauges["front"].threshold == pytest.approx(0.99)
    qtbot.waitUntil(lambda: any("below 0.99" in line for line in panel.log_view.lines),
                    timeout=3000)
    panel.threshold.setValue(0.0)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)  # the supervisor lets it go
    qtbot.waitUntil(lambda: station.session.state == RunState.RUNNING, timeout=10_000)
    qtbot.waitUntil(lambda: band.text == "", timeout=3000)


def test_space_stops_a_run_and_overlays_leave_with_the_policy(main_window, panel, qtbot,
                                                            small_policy):
    load(qtbot, panel, small_policy)
    front = main_window.cameras.panes["front"]
    overlays = panel.overlays
    assert overlays.gauges["front"] in front.overlays
    start(qtbot, panel)
    main_window.cameras.setFocus()
    qtbot.keyClick(main_window.cameras, Qt.Key.Key_Space)
    station = panel.station
    assert station.latch.is_tripped and station.latch.event.reason == "Space key"
    # synthetic cameras have no pose: no path, said once per camera in the run log
    qtbot.wait(300)
    lines = [ln for ln in panel.log_view.lines if "No predicted path" in ln]
    assert len(lines) == len(station.cameras), lines
    assert "add pose = [x, y, z, roll, pitch, yaw]" in lines[0]
    station.latch.request_reset()
    station.latch.confirm_reset()
    qtbot.mouseClick(panel.finish_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.supervisor.run_active and not panel.jobs.busy,
                    timeout=30_000)
    qtbot.mouseClick(panel.load_box.unload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.supervisor.runner is None and not panel.jobs.busy,
                    timeout=30_000)
    assert overlays.gauges == {} and not any(
        layer.name.startswith(("policy", "predicted")) for layer in front.overlays)
    assert station.arbiter.policy is None
    assert panel.load_box.state.text() == "No policy loaded."


def test_a_crashed_model_holds_says_so_on_the_cameras_and_restarts_from_the_dock(panel, qtbot):
    from tests.policies.policy_doubles import SCRIPTED  # registers the test policy kinds

    load(qtbot, panel, f"plugin:{SCRIPTED}")
    assert panel.supervisor.runner is not None, panel.load_box.error.text()
    panel.instruction.setText("crash")  # the scripted model segfaults on this instruction
    panel.record.setChecked(False)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    runner = panel.supervisor.runner
    qtbot.waitUntil(lambda: runner.state == "crashed", timeout=60_000)
    station = panel.station
    assert station.session.state == RunState.PAUSED
    assert station.loop.snapshot.get().source == SourceKind.HOLD
    band = panel.overlays.banners["front"]
    qtbot.waitUntil(lambda: band.text.startswith("POLICY CRASHED"), timeout=3000)
    assert "SIGSEGV" in band.text
    qtbot.waitUntil(panel.restart_button.isVisible, timeout=3000)
    assert "SIGSEGV" in panel.message.text()
    assert any("SIGSEGV" in line for line in panel.log_view.lines)
    qtbot.mouseClick(panel.restart_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: runner.restarts == 1 and runner.state == "idle", timeout=60_000)
    qtbot.waitUntil(lambda: not panel.restart_button.isVisible(), timeout=3000)
    assert station.session.state == RunState.PAUSED  # a restart never resumes the run


def test_a_server_that_needs_an_api_key_says_so_in_one_line_until_it_gets_it(panel, qtbot):
    from tests.policies.policy_doubles import SCRIPTED
    from vla_studio.policies.loaders import load_policy
    from vla_studio.policies.server import PolicyServer

    server = PolicyServer(load_policy(f"plugin:{SCRIPTED}"), port=0, api_key="s3cret")
    server.start()
    try:
        box = panel.load_box
        box.server.setText(server.url)
        qtbot.mouseClick(box.use_server, Qt.MouseButton.LeftButton)
        load(qtbot, panel, server.url)
        assert "requires an API key" in box.error.text() and "\n" not in box.error.text()
        box.api_key.setText("wrong")
        load(qtbot, panel, server.url)
        assert "refused the API key" in box.error.text()
        box.api_key.setText("s3cret")
        load(qtbot, panel, server.url)
        assert panel.supervisor.runner is not None, box.error.text()
        assert not box.error.isVisible() and box.state.text() == f"Loaded · remote: {server.url}"
        assert QSettings().value("policy/server_url") == server.url
        assert "s3cret" not in repr([QSettings().value(k) for k in QSettings().allKeys()])
    finally:
        panel.supervisor.unload()
        server.stop()
