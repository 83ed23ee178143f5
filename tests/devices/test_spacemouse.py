"""The SpaceMouse reader thread, mapping and hot-plug, fed recorded HID reports through a backend
that stands in for hidapi (no SpaceMouse on this machine), and the real hidapi backend finding
nothing."""

from __future__ import annotations

import collections
import dataclasses
import errno
import threading
import time

import numpy as np
import pytest

from vla_studio.core.session import ControlMode
from vla_studio.core.types import SourceKind
from vla_studio.devices.teleop.spacemouse import HidDeviceInfo, SpaceMouseConfig, SpaceMouseTeleop
from vla_studio.devices.teleop.spacemouse_reports import CONNEXION, LOGITECH, find_model

from tests.devices.teleop_stations import null_station, wait_until

PUSH_AWAY = bytes.fromhex("01 0000 a2fe 0000 0000 0000 0000")  # combined report, HID y = -350
AT_REST = bytes.fromhex("01 0000 0000 0000 0000 0000 0000")


class RecordedReports:
    """A device replaying queued reports; reads time out like hidapi when the queue is empty."""

    def __init__(self) -> None:
        self.queue: collections.deque[bytes] = collections.deque()
        self.unplugged = False
        self.streaming: bytes | None = None  # a displaced cap re-sends its report every 8 ms

    def read(self, timeout_ms: int) -> bytes:
        if self.unplugged:
            raise OSError("read error")
        if self.queue:
            return self.queue.popleft()
        if self.streaming is not None:
            time.sleep(0.008)
            return self.streaming
        time.sleep(timeout_ms / 1000.0)
        return b""

    def close(self) -> None:
        pass


class RecordedBackend:
    """Stands in for hidapi: one device of ``model`` that can be plugged, unplugged and refused."""

    def __init__(self, model) -> None:
        self.model = model
        self.plugged = True
        self.open_error: OSError | None = None
        self.device = RecordedReports()
        self.opens = 0

    def enumerate(self) -> list[HidDeviceInfo]:
        return [HidDeviceInfo("/dev/hidraw-test", self.model)] if self.plugged else []

    def open(self, info: HidDeviceInfo) -> RecordedReports:
        if self.open_error is not None:
            raise self.open_error
        self.opens += 1
        self.device = RecordedReports()
        return self.device

    def unplug(self) -> None:
        self.plugged = False
        self.device.unplugged = True


def station_with(backend: RecordedBackend, **options):
    st = null_station([{"type": "keyboard"}])  # the profile needs a teleop; ours is added below
    config = SpaceMouseConfig(name="spacemouse", **options)
    device = SpaceMouseTeleop(config, backend=backend)
    st.teleops["spacemouse"] = device
    st.start()
    return st, device


def last(st):
    return st.loop.snapshot.get()


def x_of(st) -> float:
    return float(st.robot.get_observation()["ee_pos"][0])


def test_pushing_the_cap_away_moves_forward_and_the_left_button_grips():
    backend = RecordedBackend(find_model(CONNEXION, 0xC62E))
    st, sm = station_with(backend)
    try:
        st.use_teleop("spacemouse")
        st.session.start(ControlMode.TELEOP)
        wait_until(lambda: last(st) is not None and last(st).source == SourceKind.TELEOP)
        x0 = x_of(st)
        backend.device.streaming = PUSH_AWAY
        wait_until(lambda: x_of(st) > x0 + 0.01, what="forward motion")
        backend.device.streaming = None
        backend.device.queue.extend([AT_REST, bytes.fromhex("03 0100"), bytes.fromhex("03 0000")])
        wait_until(lambda: last(st).action[-1] == 0.0, what="gripper closed by the left button")
        assert sm.status().details["model"] == "SpaceMouse Wireless (cable)"
    finally:
        st.close()


def test_a_link_that_dies_while_the_cap_is_pushed_goes_stale_and_holds():
    backend = RecordedBackend(find_model(CONNEXION, 0xC62F))  # wireless receiver
    st, sm = station_with(backend)
    try:
        st.use_teleop("spacemouse")
        st.session.start(ControlMode.TELEOP)
        wait_until(lambda: last(st) is not None and last(st).source == SourceKind.TELEOP)
        backend.device.streaming = PUSH_AWAY
        wait_until(lambda: last(st).requested is not None and last(st).requested[0] > 0)
        backend.device.streaming = None  # the mouse's radio went quiet; the receiver still answers
        wait_until(lambda: "stale" in last(st).hold_reason, what="watchdog hold")
        x1 = x_of(st)
        seq = st.loop.snapshot.get_with_seq()[1]
        st.loop.snapshot.wait_newer(seq + 5, 1.0)
        assert x_of(st) == x1
        assert sm.get_state().connected  # the device is there; only its reading is stale
    finally:
        st.close()


def test_unplug_holds_and_replug_resumes():
    backend = RecordedBackend(find_model(LOGITECH, 0xC626))
    st, sm = station_with(backend)
    try:
        st.use_teleop("spacemouse")
        st.session.start(ControlMode.TELEOP)
        wait_until(lambda: last(st) is not None and last(st).source == SourceKind.TELEOP)
        backend.unplug()
        wait_until(lambda: "not connected" in last(st).hold_reason, what="hold on unplug")
        assert not sm.get_state().connected
        assert sm.status().summary == "no SpaceMouse"
        backend.plugged = True
        wait_until(lambda: last(st).source == SourceKind.TELEOP, what="resume after replug")
        x0 = x_of(st)
        backend.device.queue.extend([bytes.fromhex("01 0000 a2fe 0000")])  # split-format model
        backend.device.streaming = bytes.fromhex("01 0000 a2fe 0000")
        wait_until(lambda: x_of(st) > x0 + 0.01, what="motion after replug")
        assert backend.opens == 2
    finally:
        st.close()


def test_pro_model_esc_key_latches_the_estop():
    backend = RecordedBackend(find_model(LOGITECH, 0xC62B))
    st, sm = station_with(backend)
    try:
        wait_until(lambda: sm.get_state().connected)
        legend = {row.action: row.control for row in sm.legend()}
        assert legend["STOP (latch e-stop)"] == "Esc"
        assert legend["Gripper (toggle)"] == "Button 1"
        backend.device.queue.append(bytes.fromhex("03 00 00 40 00"))
        wait_until(lambda: st.latch.is_tripped, what="e-stop from the Esc key")
        assert st.latch.event.origin == "teleop:spacemouse"
    finally:
        st.close()


def test_permission_denied_is_explained_in_the_status_and_on_the_event_bus():
    backend = RecordedBackend(find_model(CONNEXION, 0xC635))
    backend.open_error = PermissionError(errno.EACCES, "Permission denied")
    st, sm = station_with(backend)
    try:
        wait_until(lambda: "permission denied" in sm.status().message, what="explained status")
        assert "udev" in sm.status().message
        assert any(e.kind == "teleop.error" and "udev" in e.message for e in st.events.history)
        backend.open_error = None  # the operator added the rule and replugged
        wait_until(lambda: sm.get_state().connected, what="connection after the fix")
        assert sm.status().message == ""
    finally:
        st.close()


def test_rotation_can_be_switched_off():
    backend = RecordedBackend(find_model(CONNEXION, 0xC62E))
    st, sm = station_with(backend, rotation=False)
    try:
        st.use_teleop("spacemouse")
        st.session.start(ControlMode.TELEOP)
        wait_until(lambda: last(st) is not None and last(st).source == SourceKind.TELEOP)
        backend.device.streaming = bytes.fromhex("01 0000 0000 0000 0000 0000 a2fe")  # twist
        wait_until(lambda: sm.get_state().axes.get("rz", 0) != 0)
        seq = st.loop.snapshot.get_with_seq()[1]
        st.loop.snapshot.wait_newer(seq + 3, 1.0)
        assert not np.any(last(st).requested[:6])
        sm.set_tuning(rotation=True)
        wait_until(lambda: last(st).requested[5] != 0.0, what="yaw once rotation is on")
    finally:
        st.close()


def test_real_hidapi_backend_without_a_device_waits_and_says_what_to_plug_in():
    sm = SpaceMouseTeleop(SpaceMouseConfig(name="spacemouse"))
    sm.connect()
    try:
        wait_until(lambda: sm.status().summary == "no SpaceMouse")
        status = sm.status()
        assert not status.connected and "Plug in a 3Dconnexion SpaceMouse" in status.message
        assert not sm.get_state().connected
    finally:
        sm.disconnect()
    assert not any(t.name == "spacemouse-spacemouse" for t in threading.enumerate())


def test_profile_rejects_unknown_models_and_buttons():
    from vla_studio.core.config import ConfigError

    with pytest.raises(ConfigError, match="known: SpaceMouse Plus USB"):
        null_station([{"type": "spacemouse", "model": "SpaceBall 9000"}])
    with pytest.raises(ConfigError, match="no button named 'middle'"):
        null_station([{"type": "spacemouse", "buttons": {"gripper": "middle"}}])
    with pytest.raises(ConfigError, match="axes: x, y, z, rx, ry, rz"):
        null_station([{"type": "spacemouse", "motion": {"x": "tx"}}])


def test_the_spacemouse_deadman_follows_the_robot_unless_the_profile_says():
    from vla_studio.station import resolve_deadman

    default = SpaceMouseConfig(name="spacemouse")
    assert resolve_deadman(SpaceMouseTeleop, default, robot_simulated=False) == (
        dataclasses.replace(default, require_deadman=True), "default for a real robot")
    on_sim, _ = resolve_deadman(SpaceMouseTeleop, default, robot_simulated=True)
    assert on_sim.require_deadman is False
    explicit = dataclasses.replace(default, require_deadman=False)
    assert resolve_deadman(SpaceMouseTeleop, explicit, robot_simulated=False) == (
        explicit, "profile")
