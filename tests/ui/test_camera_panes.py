"""Camera panes (pytest-qt, offscreen): live frames at the display pace, the status HUD, depth
colormap, enlarge/detach, overlay layers, and cameras that fail without freezing the window."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRectF, Qt
from PySide6.QtGui import QColor, QPainter

from vla_studio.core.profile import parse_profile
from vla_studio.devices.cameras.base import Camera, CameraConfig, CameraState, RawFrame
from vla_studio.devices.registry import config_class_for
from vla_studio.station import Station
from vla_studio.ui.bridge import CoreBridge
from vla_studio.ui.camera_preview import CameraPreviewWindow
from vla_studio.ui.widgets.camera_grid import CameraGrid
from vla_studio.ui.widgets.camera_hud import StatusOverlay, problem_text, status_lines
from vla_studio.ui.widgets.camera_overlay import GaugeOverlay, Overlay, PolylineOverlay
from vla_studio.ui.widgets.camera_pane import ViewMode


def synthetic(name: str, **kw) -> dict:
    return {"type": "synthetic", "name": name, "width": 64, "height": 48, "fps": 30, **kw}


@pytest.fixture
def make_grid(qtbot):
    stations: list[Station] = []

    def build(*cameras: dict, size=(800, 600), station: Station | None = None):
        if station is None:
            profile = parse_profile({"name": "panes", "control_rate_hz": 20,
                                     "robot": {"type": "null"}, "cameras": list(cameras)},
                                    config_class_for, source="test")
            station = Station.from_profile(profile)
        stations.append(station)
        station.connect()
        bridge = CoreBridge(station)
        grid = CameraGrid(station, bridge)
        qtbot.addWidget(grid)
        grid.resize(*size)
        grid.show()
        qtbot.waitExposed(grid)
        return grid

    yield build
    for station in stations:
        station.close()


def wait_frames(qtbot, pane, n: int = 3) -> None:
    start = pane.frames_shown
    qtbot.waitUntil(lambda: pane.frames_shown >= start + n, timeout=5000)


def pixel(widget, x: int, y: int) -> QColor:
    return widget.grab().toImage().pixelColor(x, y)


def test_grid_shows_every_camera_in_a_near_square_grid(make_grid):
    grid = make_grid(*(synthetic(n) for n in ("a", "b", "c", "d", "e")))
    positions = {name: grid._grid.getItemPosition(grid._grid.indexOf(pane))[:2]
                 for name, pane in grid.panes.items()}
    assert positions == {"a": (0, 0), "b": (0, 1), "c": (0, 2), "d": (1, 0), "e": (1, 1)}
    assert grid.display_hz >= 30


def test_panes_take_new_frames_and_measure_capture_to_display_latency(qtbot, make_grid):
    grid = make_grid(synthetic("a"))
    pane = grid.pane("a")
    wait_frames(qtbot, pane, 5)
    samples = list(pane.latency.samples)
    assert len(samples) >= 5 and all(0.0 <= s < 5000.0 for s in samples)
    assert pane.latency_p50_ms() is not None
    grid.station.cameras["a"].disconnect()  # no new frames from now on
    pane.refresh()
    assert pane.refresh() is False  # same frame index: nothing to do


def test_a_frame_at_the_pane_size_is_displayed_without_a_copy(qtbot, make_grid):
    grid = make_grid(synthetic("a", width=320, height=240), size=(324, 244))
    pane = grid.pane("a")
    wait_frames(qtbot, pane)
    rendered = pane._images[0]
    assert (rendered.target.width(), rendered.target.height()) == (320, 240)
    assert np.shares_memory(rendered.pixels, pane.frame.color)  # wrapped, not copied
    grid.resize(500, 400)
    wait_frames(qtbot, pane)
    rendered = pane._images[0]
    assert not np.shares_memory(rendered.pixels, pane.frame.color)  # exactly one resize
    assert rendered.pixels.shape[:2] == (rendered.target.height(), rendered.target.width())


def test_the_status_overlay_shows_fps_latency_and_drops(qtbot, make_grid):
    grid = make_grid(synthetic("a"))
    pane = grid.pane("a")
    wait_frames(qtbot, pane, 5)
    title, figures = status_lines(pane.name, pane.status, pane.latency_p50_ms())
    assert title == "a · live"
    assert re.fullmatch(r"\d+\.\d fps · \d+ ms latency · \d+ drops", figures), figures
    compact = status_lines(pane.name, pane.status, pane.latency_p50_ms(), compact=True)[1]
    assert re.fullmatch(r"\d+\.\d fps · \d+ ms · \d+ drops", compact), compact
    hud = next(lay for lay in pane.overlays if isinstance(lay, StatusOverlay))
    with_hud = pane.grab().toImage()
    hud.visible = False
    pane.repaint()
    without_hud = pane.grab().toImage()
    hud.visible = True
    box = [(x, y) for x in range(10, 120, 7) for y in range(10, 40, 5)]
    assert any(with_hud.pixelColor(x, y) != without_hud.pixelColor(x, y) for x, y in box)


def test_depth_is_drawn_with_the_colormap_over_a_fixed_range(qtbot, make_grid):
    grid = make_grid(synthetic("d", depth=True, width=160, height=120), size=(400, 300))
    pane = grid.pane("d")
    assert pane.view == ViewMode.SIDE_BY_SIDE
    pane.set_view(ViewMode.DEPTH)
    pane._fixed_depth(0.3, 3.0)  # the synthetic ramp runs 300..3000 mm from left to right
    wait_frames(qtbot, pane)
    rect = pane.depth_target
    image = pane.grab().toImage()
    y = rect.center().y()
    near = image.pixelColor(rect.left() + 2, y)
    far = image.pixelColor(rect.right() - 2, y)
    table = pane.depth_colormap.table

    def close(color: QColor, rgb: int) -> bool:
        ref = QColor.fromRgb(rgb)
        return max(abs(color.red() - ref.red()), abs(color.green() - ref.green()),
                   abs(color.blue() - ref.blue())) <= 40

    assert close(near, table[1]) and close(far, table[255])
    assert pane.depth_colormap.legend() == "0.30–3.00 m"


def test_enlarge_shows_one_pane_and_restores_the_grid(qtbot, make_grid):
    grid = make_grid(synthetic("a"), synthetic("b"), synthetic("c"))
    qtbot.mouseDClick(grid.pane("b"), Qt.MouseButton.LeftButton)
    assert grid.enlarged == "b"
    assert [n for n, p in grid.panes.items() if p.isVisible()] == ["b"]
    assert grid.pane("b").width() > 700
    grid.toggle_enlarged("b")
    assert grid.enlarged is None
    assert all(p.isVisible() for p in grid.panes.values())


def test_detach_moves_a_pane_to_its_own_live_window_and_closing_it_attaches_it(qtbot, make_grid):
    grid = make_grid(synthetic("a"), synthetic("b"))
    window = grid.detach("a")
    pane = grid.pane("a")
    qtbot.waitExposed(window)
    assert window.isWindow() and pane.window() is window and pane.detached
    assert grid._grid.indexOf(pane) == -1
    wait_frames(qtbot, pane)  # still live in its window
    window.close()
    assert not pane.detached and "a" not in grid.detached
    assert grid._grid.indexOf(pane) >= 0 and pane.window() is grid.window()
    wait_frames(qtbot, pane)


class Square(Overlay):
    """Fills the middle of the image with one colour and records what it was given."""

    def __init__(self, name: str, color: str, z: int) -> None:
        super().__init__(name, z)
        self.color = QColor(color)
        self.calls: list[tuple[QRectF, object]] = []

    def paint(self, painter: QPainter, rect: QRectF, frame) -> None:
        self.calls.append((QRectF(rect), frame))
        painter.fillRect(QRectF(rect.center().x() - 10, rect.center().y() - 10, 20, 20), self.color)


def test_overlay_layers_are_painted_over_the_image_in_z_order(qtbot, make_grid):
    grid = make_grid(synthetic("a"), size=(400, 300))
    pane = grid.pane("a")
    red, blue = Square("red", "#ff0000", z=2), Square("blue", "#0000ff", z=1)
    grid.add_overlay("a", red)
    pane.add_overlay(blue)
    wait_frames(qtbot, pane)
    rect, frame = red.calls[-1]
    assert frame is not None and frame.camera == "a"
    assert rect.width() > 0 and abs(rect.width() / rect.height() - 64 / 48) < 0.05
    centre = rect.center().toPoint()
    assert pixel(pane, centre.x(), centre.y()) == QColor("#ff0000")  # z 2 above z 1
    red.visible = False
    pane.repaint()
    assert pixel(pane, centre.x(), centre.y()) == QColor("#0000ff")
    overlays_menu = next(a.menu() for a in pane.context_menu().actions() if a.text() == "Overlays")
    listed = {a.text(): a.isChecked() for a in overlays_menu.actions()}
    assert listed == {"blue": True, "red": False}  # the operator sees and toggles each layer
    with pytest.raises(TypeError, match="not an overlay layer"):
        pane.add_overlay(object())


def test_built_in_layers_draw_a_trajectory_and_a_confidence_gauge(qtbot, make_grid):
    grid = make_grid(synthetic("a"), size=(400, 300))
    pane = grid.pane("a")
    wait_frames(qtbot, pane)
    before = pane.grab().toImage()
    path = PolylineOverlay("predicted motion", color="#ff00ff", width=4, label="plan")
    path.set_points([(5, 5), (32, 24), (60, 40)])
    gauge = GaugeOverlay("policy confidence", "confidence", threshold=0.5)
    gauge.set_value(0.2)
    pane.add_overlay(path)
    pane.add_overlay(gauge)
    pane.repaint()
    after = pane.grab().toImage()
    rect = QRectF(pane._primary)
    mid = rect.topLeft() + QPoint(int(rect.width() * 32 / 64), int(rect.height() * 24 / 48))
    assert after.pixelColor(mid.x(), mid.y()) == QColor("#ff00ff")  # image pixels -> widget
    bar_y = int(rect.bottom() - 16)
    assert after.pixelColor(int(rect.left() + 12), bar_y) != before.pixelColor(int(rect.left() + 12), bar_y)
    assert gauge.value == 0.2 and (gauge.set_value(3.0), gauge.value)[1] == 1.0


def test_a_layer_that_raises_is_switched_off_and_the_pane_keeps_going(qtbot, make_grid):
    grid = make_grid(synthetic("a"))
    pane = grid.pane("a")

    class Broken(Overlay):
        def paint(self, painter, rect, frame):
            raise RuntimeError("no model output")

    broken = Broken("policy arrows")
    pane.add_overlay(broken)
    wait_frames(qtbot, pane, 3)
    assert broken.visible is False
    assert pane.layer_errors == ["overlay 'policy arrows' failed: no model output"]


class StuckCamera(Camera):
    """Delivers one frame, then its driver call never returns (until the test ends)."""

    def __init__(self, name: str) -> None:
        super().__init__(CameraConfig(name=name, width=64, height=48, stale_after_ms=100,
                                      reconnect_after_ms=60_000))
        self.release = threading.Event()
        self.sent = False

    def _open(self) -> None:
        pass

    def _read(self, timeout_s: float):
        if self.sent:
            self.release.wait(60)
            return None
        self.sent = True
        return RawFrame(color=np.full((48, 64, 3), 90, np.uint8))

    def _close(self) -> None:
        pass


def test_failing_and_stuck_cameras_show_their_problem_while_the_others_stay_live(qtbot, make_grid):
    profile = parse_profile({"name": "panes", "control_rate_hz": 20, "robot": {"type": "null"},
                             "cameras": [synthetic("good"),
                                         synthetic("flaky", fail_after_frames=5,
                                                   max_backoff_s=0.1)]},
                            config_class_for, source="test")
    station = Station.from_profile(profile)
    stuck = StuckCamera("stuck")
    station = Station(profile, station.robot, {**station.cameras, "stuck": stuck}, {})
    try:
        grid = make_grid(station=station)
        flaky, frozen, good = grid.pane("flaky"), grid.pane("stuck"), grid.pane("good")
        qtbot.waitUntil(lambda: flaky.status.state == CameraState.RECONNECTING, timeout=5000)
        title, detail = problem_text(flaky.status)
        assert title == "CAMERA LOST — RECONNECTING" and "unplugged" in detail
        qtbot.waitUntil(lambda: frozen.status.state == CameraState.STALE, timeout=5000)
        assert problem_text(frozen.status)[0] == "NO NEW FRAMES"
        t = time.monotonic()
        grid.refresh()  # a stuck driver never blocks the display tick
        assert time.monotonic() - t < 1.0
        wait_frames(qtbot, good, 10)  # the healthy camera keeps updating meanwhile
        assert good.status.state == CameraState.STREAMING
    finally:
        stuck.release.set()


def test_the_context_menu_offers_enlarge_detach_view_depth_range_and_overlays(make_grid):
    grid = make_grid(synthetic("d", depth=True))
    titles = [a.text() for a in grid.pane("d").context_menu().actions()]
    assert titles == ["Enlarge", "Detach to a window", "View", "Depth range", "Overlays"]


def test_preview_shows_only_the_named_cameras(qtbot, make_grid):
    grid = make_grid(synthetic("a"), synthetic("b"))
    window = CameraPreviewWindow(grid.station, ["b"])
    qtbot.addWidget(window)
    assert list(window.grid.panes) == ["b"]
    window.show_summary()
    assert window.summary.text().startswith("b: streaming")
    with pytest.raises(ValueError, match="no camera named 'z'.*a, b"):
        CameraPreviewWindow(grid.station, ["z"])


def test_the_sim_stations_counters_start_at_zero_drops_and_explain_themselves(sim_window,
                                                                              qtbot):
    """Starting the renderers (one camera creating its context stalls the other) used to count
    a few drops on every start, and they only climbed from there; and nothing said what a
    "drop" or a "late" frame is. Now the start-up costs no drops, and the pane's tooltip says
    what each counter means and what to do."""
    panes = sim_window.cameras.panes
    qtbot.waitUntil(lambda: all(p.shown_index >= 5 for p in panes.values()), timeout=30000)
    for name, pane in panes.items():
        status = pane.camera.status()
        assert status.dropped == 0, f"{name}: {status.dropped} drops at start-up"
        pane.refresh()
        assert " 0 drops" in status_lines(name, pane.status, pane.latency_p50_ms())[1]
        tip = pane.toolTip()
        assert "dropped</b>: frames the camera produced" in tip
        assert "late</b>: frames that arrived more than 1.5 frame periods" in tip
        assert "lower this camera's fps or resolution" in tip


def test_a_station_without_cameras_shows_the_robots_state_in_their_place(qtbot, tmp_path):
    from tests.profiles import changed_profile
    from vla_studio.paths import resource
    from vla_studio.ui.widgets.robot_state import format_values

    station = Station.from_profile(changed_profile(resource("stations", "dry_run.toml"),
                                                   tmp_path, cameras=[]))
    station.start()
    try:
        grid = CameraGrid(station, CoreBridge(station))
        qtbot.addWidget(grid)
        grid.show()
        view = grid.robot_state
        assert not grid.panes and view is not None and view.isVisible()
        assert list(view.rows) == list(station.robot.observation_features)
        qtbot.waitUntil(lambda: view.rows["ee_pos"].text().startswith("x +"), timeout=3000)
        assert view.rows["ee_pos"].text().endswith(" m") and not view.fault.isVisible()
    finally:
        station.close()
    from vla_studio.core.types import Feature
    assert format_values(np.arange(9.0), Feature("float32", (9,))) == \
        "+0.000 +1.000 +2.000 +3.000 +4.000 +5.000 +6.000 +7.000 …"
