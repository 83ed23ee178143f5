"""The Teleop dock as a view of the station's devices: picker, status, speed sliders, legend,
live raw values, driving state."""

from __future__ import annotations

import pytest

from vla_studio.core.session import ControlMode
from vla_studio.devices.teleop.virtual_gamepad import VirtualGamepad


@pytest.fixture
def xbox_pad():
    pad = VirtualGamepad("xbox", "Panel Test Pad")
    pad.attach()
    yield pad
    pad.detach()


def panel_of(window):
    return window.panels["teleop"]


def test_picker_lists_the_profiles_devices_and_switches_the_active_one(main_window, dry_station,
                                                                     qtbot):
    panel = panel_of(main_window)
    names = [panel.device_combo.itemData(i) for i in range(panel.device_combo.count())]
    assert names == ["keyboard", "gamepad", "spacemouse"]
    panel.device_combo.setCurrentIndex(names.index("gamepad"))
    assert dry_station.active_teleop == "gamepad"
    dry_station.use_teleop("keyboard")  # chosen elsewhere (the station panel): the dock follows
    qtbot.waitUntil(lambda: panel.device_combo.currentData() == "keyboard", timeout=2000)


def test_gamepad_status_raw_values_and_diagram_follow_the_pad(main_window, dry_station, qtbot,
                                                              xbox_pad):
    panel = panel_of(main_window)
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("gamepad"))
    qtbot.waitUntil(lambda: "Panel Test Pad" in panel.summary.text(), timeout=3000)
    panel.tabs.setCurrentIndex(2)
    xbox_pad.set_axis("left_y", -0.5)
    xbox_pad.set_button("a", True)
    qtbot.waitUntil(lambda: ("left_y", -0.5) in [(n, round(v, 2)) for n, v, _ in
                                                 panel.raw_axes.items], timeout=3000)
    assert ("A", True) in panel.raw_buttons.items
    assert "readings/s" in panel.read_rate.text()
    panel.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: panel.diagrams.currentWidget() is panel.gamepad_diagram, timeout=2000)
    qtbot.waitUntil(lambda: panel.gamepad_diagram.pressed("a"), timeout=2000)
    actions = [panel.legend_table.item(i, 0).text() for i in range(panel.legend_table.rowCount())]
    assert actions == [row.action for row in dry_station.teleops["gamepad"].legend()]


def test_unplugged_device_shows_what_to_do(main_window, dry_station, qtbot):
    panel = panel_of(main_window)
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("spacemouse"))
    qtbot.waitUntil(lambda: "Plug in a 3Dconnexion SpaceMouse" in panel.message.text(),
                    timeout=3000)
    assert panel.message.isVisibleTo(panel)
    dry_station.session.start(ControlMode.TELEOP)
    qtbot.waitUntil(lambda: "not connected" in panel.drive_state.text(), timeout=3000)


def test_speed_sliders_scale_the_devices_commands(main_window, dry_station, qtbot):
    panel = panel_of(main_window)
    kb = dry_station.teleops["keyboard"]
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("keyboard"))
    panel.linear_slider.setValue(50)
    panel.angular_slider.setValue(150)
    assert kb.tuning.linear == pytest.approx(0.5) and kb.tuning.angular == pytest.approx(1.5)
    assert "0.050 m/s" in panel.linear_value.text()
    panel.rotation_check.setChecked(False)
    assert kb.tuning.rotation is False


def test_keyboard_legend_includes_the_window_stop_keys(main_window, dry_station, qtbot):
    panel = panel_of(main_window)
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("keyboard"))
    panel.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: panel.legend_table.rowCount() > 0, timeout=2000)
    rows = {panel.legend_table.item(i, 0).text(): panel.legend_table.item(i, 1).text()
            for i in range(panel.legend_table.rowCount())}
    assert rows["Forward / back"] == "W / S"
    assert rows["STOP (always)"] == "Esc"
    assert panel.diagrams.currentWidget() is panel.keyboard_diagram


def test_drive_state_says_paused_then_driving(main_window, dry_station, qtbot):
    panel = panel_of(main_window)
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("keyboard"))
    qtbot.waitUntil(lambda: "Paused" in panel.drive_state.text(), timeout=2000)
    dry_station.session.start(ControlMode.TELEOP)
    qtbot.waitUntil(lambda: "Driving." in panel.drive_state.text(), timeout=3000)
    dry_station.latch.trigger("test", "test")
    qtbot.waitUntil(lambda: "E-stop latched" in panel.drive_state.text(), timeout=2000)
