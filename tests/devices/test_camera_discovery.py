"""Camera discovery and `vla-studio cameras list`: every probe is bounded and never breaks the
listing; the listing shows modes and a profile table to paste."""

from __future__ import annotations

import json
import threading

from vla_studio.cli import main
from vla_studio.devices.cameras.discovery import CameraInfo, CameraMode, discover
from vla_studio.devices.cameras.opencv import OpenCVCamera
from vla_studio.devices.cameras.realsense import RealSenseCamera

WEBCAM = CameraInfo("opencv", "0", "HD Webcam", "/dev/video0",
                    (CameraMode("color", "MJPG", 1280, 720, (30.0, 15.0)),
                     CameraMode("color", "MJPG", 640, 480, (30.0,)),
                     CameraMode("color", "YUYV", 640, 480, (30.0,))),
                    {"driver": "uvcvideo"})
D435 = CameraInfo("realsense", "123456789012", "Intel RealSense D435", "2-1",
                  (CameraMode("color", "rgb8", 640, 480, (30.0, 15.0)),
                   CameraMode("depth", "z16", 640, 480, (90.0, 30.0))),
                  {"firmware_version": "5.16.0.1"})


def test_discover_reports_hung_and_broken_probes_without_waiting_for_them():
    hang = threading.Event()

    def hung() -> list[CameraInfo]:
        hang.wait(30)
        return []

    def broken() -> list[CameraInfo]:
        raise OSError("libusb: permission denied")

    result = discover({"opencv": lambda: [WEBCAM], "realsense": broken, "gige": hung},
                      timeout_s=0.3)
    hang.set()
    assert result.cameras == (WEBCAM,)
    assert "realsense: libusb: permission denied" in result.problems
    assert any(p.startswith("gige: no answer within 0.3 s") for p in result.problems)


def test_modes_are_summarised_per_stream_and_format():
    assert WEBCAM.modes_summary() == "color MJPG 1280x720@30,15 640x480@30; color YUYV 640x480@30"
    detected = D435.to_detected()
    assert (detected.kind, detected.id) == ("realsense", "123456789012")
    assert detected.details["modes"] == "color rgb8 640x480@30,15; depth z16 640x480@90,30"


def test_cameras_list_prints_modes_and_a_profile_table(monkeypatch, capsys):
    monkeypatch.setattr(OpenCVCamera, "enumerate", classmethod(lambda cls: [WEBCAM]))
    monkeypatch.setattr(RealSenseCamera, "enumerate", classmethod(lambda cls, devices=None: [D435]))
    assert main(["cameras", "list"]) == 0
    out = capsys.readouterr().out
    assert "color MJPG: 1280x720@30,15 640x480@30" in out
    assert ('profile: [[cameras]] type = "opencv", source = 0, fourcc = "MJPG", width = 640, '
            'height = 480, fps = 30') in out
    assert ('profile: [[cameras]] type = "realsense", serial = "123456789012", depth = true, '
            'width = 640, height = 480, fps = 30') in out


def test_cameras_list_json_on_this_machine_finds_nothing_and_says_so(capsys):
    assert main(["cameras", "list", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report == {"cameras": [], "problems": []}  # no webcams or RealSense here


def test_preview_of_an_unknown_camera_is_a_one_line_error(capsys):
    from vla_studio.paths import resource

    code = main(["--station", str(resource("stations", "four_cameras.toml")), "cameras",
                 "preview", "nope"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no camera named 'nope'; this station has: front, wrist, left, overhead" in err
