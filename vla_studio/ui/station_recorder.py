"""The one recorder of each station in the window, and the hook that releases it.

The recorder dock and the dataset browser share the station's
:class:`~vla_studio.data.recorder.Recorder` through :func:`recorder_for`; when their window
closes, :class:`WindowCloseWatcher` lets them save the open episode and stop its threads.
"""

from __future__ import annotations

import weakref
from typing import Callable

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

from vla_studio.data.recorder import Recorder
from vla_studio.data.recording import RecorderConfig
from vla_studio.station import Station

_RECORDERS: "weakref.WeakKeyDictionary[Station, Recorder]" = weakref.WeakKeyDictionary()


def recorder_for(station: Station) -> Recorder:
    """The station's recorder, shared by the recorder dock and the dataset browser.

    Created on first use without touching the disk (the recorder dock then connects it in the
    background when the dataset exists, recovering interrupted episodes; otherwise the folder
    is prepared when the first episode starts). It is disconnected (the open episode saved) when the application quits
    or :func:`release_recorder` is called for the station.
    """
    recorder = _RECORDERS.get(station)
    if recorder is None:
        # The app transcodes saved episodes in the background when the profile stores video.
        recorder = Recorder(station, config=RecorderConfig(background_compaction=True))
        recorder.register_commands()
        _RECORDERS[station] = recorder
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(recorder.disconnect)
    return recorder


def release_recorder(station: Station) -> None:
    """Save any open episode and stop the station's recorder (its window is going away)."""
    recorder = _RECORDERS.pop(station, None)
    if recorder is not None:
        recorder.disconnect()


class WindowCloseWatcher(QObject):
    """Calls ``callback`` when the top-level window holding ``widget`` closes.

    Docks are created before they are placed in the main window, so the filter is installed
    from the event loop's first turn. Work happens in the close event, never in a destructor.
    """

    def __init__(self, widget: QWidget, callback: Callable[[], None]) -> None:
        super().__init__(widget)
        self._widget, self._callback = widget, callback
        self._window: QWidget | None = None
        QTimer.singleShot(0, self._install)

    def _install(self) -> None:
        window = self._widget.window()
        if window is not self._widget:
            self._window = window
            window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self._window and event.type() == QEvent.Type.Close:
            self._callback()
        return False
