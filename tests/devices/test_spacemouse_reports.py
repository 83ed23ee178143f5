"""SpaceMouse HID report parsing on report bytes of each supported format, the model table, and
the explanations of open failures (permission, busy, gone)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vla_studio.devices.teleop.spacemouse_reports import (
    CONNEXION, LOGITECH, MODELS, RawSpaceMouse, ReportError, apply_report, button_states,
    explain_open_error, find_model, probe_open_errno, spacenavd_pid, to_device_axes)


def parse(*reports: str, raw: RawSpaceMouse | None = None) -> RawSpaceMouse:
    raw = raw or RawSpaceMouse()
    for r in reports:
        raw = apply_report(raw, bytes.fromhex(r))
    return raw


def test_model_table_has_unique_ids_and_covers_wired_wireless_and_receiver():
    ids = [(m.vendor_id, m.product_id) for m in MODELS]
    assert len(ids) == len(set(ids))
    assert {m.connection for m in MODELS} == {"wired", "wireless", "receiver"}
    assert find_model(LOGITECH, 0xC626).name == "SpaceNavigator"
    assert find_model(CONNEXION, 0xC62F).connection == "wireless"
    assert find_model(CONNEXION, 0xC652).name == "3Dconnexion Universal Receiver"
    assert find_model(0x1234, 0x5678) is None


def test_spacenavigator_split_reports_translation_then_rotation():
    # pushing the cap away from the operator: HID y = -350; a slight tilt about the second axis
    raw = parse("01 0a00 a2fe 0000", "02 0000 e2ff 0000")
    assert raw.counts == (10, -350, 0, 0, -30, 0)
    axes = to_device_axes(raw.counts, 350.0)
    assert axes["y"] == pytest.approx(1.0)  # forward
    assert axes["x"] == pytest.approx(10 / 350)
    assert axes["ry"] == pytest.approx(30 / 350)
    # a later translation report keeps the rotation
    assert parse("01 0000 0000 5e01", raw=raw).counts == (0, 0, 350, 0, -30, 0)


def test_pressing_the_cap_down_is_negative_z_and_twisting_anticlockwise_is_positive_yaw():
    axes = to_device_axes(parse("01 0000 0000 5e01 0000 0000 a2fe").counts, 350.0)
    assert axes["z"] == pytest.approx(-1.0)
    assert axes["rz"] == pytest.approx(1.0)


def test_wireless_combined_13_byte_report_carries_all_six_axes():
    raw = parse("01 6400 9cff c800 38ff 2c01 d4fe")
    assert raw.counts == (100, -100, 200, -200, 300, -300)
    assert raw.motion_reports == 1


def test_values_beyond_full_scale_are_clipped():
    axes = to_device_axes((800, 0, 0, 0, 0, 0), 350.0)
    assert axes["x"] == 1.0


def test_two_button_reports_of_the_spacenavigator_and_compact():
    model = find_model(CONNEXION, 0xC635)
    assert button_states(model, parse("03 0100").buttons) == {"left": True, "right": False}
    assert button_states(model, parse("03 0200").buttons) == {"left": False, "right": True}
    assert button_states(model, parse("03 0300").buttons) == {"left": True, "right": True}
    assert button_states(model, parse("03 0300", "03 0000").buttons) == {"left": False,
                                                                         "right": False}


def test_pro_and_enterprise_button_bits():
    pro = find_model(LOGITECH, 0xC62B)
    held = lambda model, r: {n for n, v in button_states(model, parse(r).buttons).items() if v}
    assert held(pro, "03 00 10 00 00") == {"1"}
    assert held(pro, "03 00 00 40 00") == {"esc"}
    assert held(pro, "03 01 00 00 04") == {"menu", "rotation_lock"}
    enterprise = find_model(CONNEXION, 0xC633)
    assert held(enterprise, "03 00 00 20 00") == {"10"}


def test_universal_receiver_names_left_and_right_and_reports_battery():
    receiver = find_model(CONNEXION, 0xC652)
    raw = parse("17 55", "03 01 00 00 00")
    assert raw.battery == 85
    assert button_states(receiver, raw.buttons)["left"] is True


def test_unknown_reports_are_ignored_and_truncated_ones_rejected():
    raw = parse("01 0a00 0000 0000")
    assert parse("05 ffff ffff", raw=raw) == raw
    with pytest.raises(ReportError, match="translation report of 3 bytes"):
        parse("01 0000")
    with pytest.raises(ReportError, match="rotation"):
        parse("02 0000 00")


def test_permission_error_explains_the_udev_rule():
    model = find_model(CONNEXION, 0xC62E)
    text = explain_open_error(model, "/dev/hidraw3", errno.EACCES, None)
    assert "permission denied" in text and 'ATTRS{idVendor}=="256f"' in text
    assert "udevadm" in text and "replug" in text


def test_busy_device_names_spacenavd_and_how_to_stop_it():
    model = find_model(LOGITECH, 0xC626)
    text = explain_open_error(model, "/dev/hidraw0", errno.EBUSY, 4242)
    assert "held by another driver" in text and "pid 4242" in text
    assert "systemctl stop spacenavd" in text


def test_unknown_open_failure_still_says_what_to_check():
    text = explain_open_error(MODELS[0], "1-2:1.0", None, None)
    assert "udev rule" in text and "spacenavd" in text


def test_probe_reports_the_real_errno_of_an_unreadable_node(tmp_path):
    shm = Path("/dev/shm")
    node = shm / f"vla-studio-test-hidraw-{os.getpid()}"
    node.write_bytes(b"")
    try:
        node.chmod(0o600)
        if os.geteuid() == 0:  # root reads anything: probe as an unprivileged user
            code = subprocess.run(
                [sys.executable, "-c",
                 "import os; "
                 "from vla_studio.devices.teleop.spacemouse_reports import probe_open_errno; "
                 f"os.setgid(65534); os.setuid(65534); print(probe_open_errno({str(node)!r}))"],
                capture_output=True, text=True, check=True,
                cwd=Path(__file__).resolve().parents[2]).stdout.strip()
            assert code == str(errno.EACCES)
        else:
            node.chmod(0)
            assert probe_open_errno(str(node)) == errno.EACCES
        assert probe_open_errno(str(shm / "vla-studio-no-such-node")) == errno.ENOENT
        assert probe_open_errno("1-2:1.0") is None
    finally:
        node.unlink()


def test_spacenavd_is_found_in_the_process_table(tmp_path):
    (tmp_path / "17").mkdir()
    (tmp_path / "17" / "comm").write_text("bash\n")
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "comm").write_text("spacenavd\n")
    (tmp_path / "self").mkdir()
    assert spacenavd_pid(str(tmp_path)) == 4242
    assert spacenavd_pid(str(tmp_path / "missing")) is None
