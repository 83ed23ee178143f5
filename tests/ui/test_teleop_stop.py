"""The gamepad's STOP latches the e-stop while the GUI thread is frozen: the reader thread
triggers the latch and the control loop holds, with no Qt event loop involved."""

from __future__ import annotations

import threading
import time

import numpy as np

from vla_studio.core.session import ControlMode
from vla_studio.core.types import SourceKind
from vla_studio.devices.teleop.virtual_gamepad import VirtualGamepad


def test_pad_stop_latches_and_holds_while_the_gui_thread_is_frozen(main_window, dry_station,
                                                                   qtbot):
    pad = VirtualGamepad("xbox", "Stop Test Pad")
    pad.attach()
    try:
        st = dry_station
        st.use_teleop("gamepad")
        st.session.start(ControlMode.TELEOP)
        qtbot.waitUntil(lambda: st.loop.snapshot.get().source == SourceKind.TELEOP, timeout=3000)
        pad.set_axis("left_y", -1.0)
        qtbot.waitUntil(lambda: st.loop.snapshot.get().requested is not None
                        and st.loop.snapshot.get().requested[0] > 0, timeout=3000)
        pressed = threading.Event()
        t_press: list[float] = []

        def operator_hits_stop() -> None:
            time.sleep(0.1)
            t_press.append(time.monotonic())
            pad.set_button("b", True)
            pressed.set()

        hand = threading.Thread(target=operator_hits_stop, name="test-operator")
        hand.start()
        time.sleep(0.6)  # the GUI thread is busy: no Qt events are processed meanwhile
        t_gui_back = time.monotonic()
        hand.join()
        assert pressed.is_set() and st.latch.is_tripped
        event = st.latch.event
        assert event.origin == "teleop:gamepad"
        assert t_press[0] <= event.t < t_gui_back  # latched while the GUI was still frozen
        holds_after = [t for t in st.robot.hold_times if event.t <= t < t_gui_back]
        assert holds_after, "the robot was not held while the GUI was frozen"
        p = np.asarray(st.robot.get_observation()["ee_pos"]).copy()
        qtbot.wait(100)
        assert np.array_equal(np.asarray(st.robot.get_observation()["ee_pos"]), p)
    finally:
        pad.detach()
