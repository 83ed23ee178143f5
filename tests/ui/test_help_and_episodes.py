"""The Help menu (keyboard shortcuts from the one actions table, the local user guide, About) and
double-clicking an episode (the Replay view opens it)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication

from tests.data.rlds_episode_files import EpisodeSpec, write_dataset
from tests.ui.conftest import open_window
from vla_studio import __version__
from vla_studio.ui.actions import ACTIONS


def help_menu(window):
    return next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")


def test_the_help_menu_has_shortcuts_guide_and_about(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    titles = [a.text() for a in help_menu(window).actions()]
    assert titles == ["&Keyboard shortcuts", "&User guide", "&About VLA Studio"]


def test_keyboard_shortcuts_lists_every_key_of_the_actions_table(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    window.actions_by_id["help.shortcuts"].trigger()
    dialog = next(w for w in QApplication.topLevelWidgets()
                  if w.objectName() == "shortcutsDialog" and w.isVisible())
    table = dialog.table
    rows = {table.item(r, 1).text(): table.item(r, 0).text() for r in range(table.rowCount())}
    expected = {s.title.replace("&", ""): s.keys for s in ACTIONS if s.keys}
    assert rows == expected
    assert rows["STOP"] == "Esc, or Space during a run" and rows["Start teleop"] == "F5"
    assert rows["Record / stop and save"] == "Ctrl+R"
    dialog.close()


class _Opened(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_the_user_guide_opens_the_local_documentation(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    opened = _Opened()
    QDesktopServices.setUrlHandler("file", opened, "open")  # Qt's hook for "open this URL"
    try:
        window.actions_by_id["help.guide"].trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert len(opened.urls) == 1 and opened.urls[0].isLocalFile()
    guide = Path(opened.urls[0].toLocalFile())
    assert guide.name == "README.md" and guide.is_file()
    assert "docs/" in guide.read_text(encoding="utf-8")  # it leads on to the rest of the docs


def test_about_names_the_version_and_the_software_stop(qtbot, dry_station):
    window = open_window(qtbot, dry_station)
    seen: list[str] = []

    def close_about() -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(50, close_about)
            return
        seen.append(box.text())
        box.close()

    QTimer.singleShot(50, close_about)
    window.actions_by_id["help.about"].trigger()
    assert seen and __version__ in seen[0] and "<b>software</b> stop" in seen[0]


def test_double_clicking_an_episode_opens_it_in_the_replay_view(qtbot, dry_station, tmp_path):
    files = write_dataset(tmp_path / "dataset", [EpisodeSpec(steps=4)])
    window = open_window(qtbot, dry_station)
    browser = window.panels["episodes"]
    browser.refresh()
    qtbot.waitUntil(lambda: browser.proxy.rowCount() == 1, timeout=10000)
    activated = []
    browser.episode_activated.connect(activated.append)
    table = browser.table
    rect = table.visualRect(browser.proxy.index(0, 1))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert [s.file for s in activated] == ["episodes/" + files[0].name]
    assert window.modes.replaying and window.replay.episode.path == files[0]
    assert browser.message.text() == ""
