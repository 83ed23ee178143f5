"""Station commands that drive the recorder: teleop buttons, keyboard shortcuts, menus.

=================  ===============================================================
record.toggle      idle: start; recording: stop and save; paused: resume
record.start       start an episode with the current labels
record.stop        stop and save
record.discard     discard the open episode, else the last one (to the trash)
record.rerecord    discard the open (or last) episode and record it again
episode.success    end the open episode as a success, else mark the last one
episode.failure    end the open episode as a failure, else mark the last one
task.next          propose the next task of the task list
=================  ===============================================================

A command that is not possible now (stop while idle, no instruction...) is reported on the event
bus as ``recorder.error``; it never raises into the device thread that sent it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from vla_studio.core import commands
from vla_studio.data.dataset import DatasetError
from vla_studio.data.labels import LabelError
from vla_studio.data.recording import RecorderState

if TYPE_CHECKING:
    from vla_studio.data.recorder import Recorder


def register_recorder_commands(station, recorder: "Recorder") -> None:
    """Register the recorder's handlers on ``station`` (once per recorder)."""
    from vla_studio.data.recorder import RecorderError

    def toggle() -> None:
        state = recorder.status().state
        if state == RecorderState.IDLE:
            recorder.start()
        elif state == RecorderState.RECORDING:
            recorder.stop()
        else:
            recorder.resume()

    def finish_with(success: bool) -> None:
        if recorder.status().episode is not None:
            recorder.stop(success=success)
        else:
            recorder.mark_success(success)

    def guarded(fn: Callable[[], object]) -> Callable[[], None]:
        def handler() -> None:
            try:
                fn()
            except (RecorderError, LabelError, DatasetError) as exc:
                station.events.emit("recorder.error", str(exc), logging.WARNING)
        return handler

    handlers: dict[str, Callable[[], object]] = {
        commands.RECORD_TOGGLE: toggle,
        commands.RECORD_START: recorder.start,
        commands.RECORD_STOP: recorder.stop,
        commands.RECORD_DISCARD: recorder.discard,
        commands.EPISODE_SUCCESS: lambda: finish_with(True),
        commands.EPISODE_FAILURE: lambda: finish_with(False),
        commands.RECORD_RERECORD: recorder.rerecord,
        commands.TASK_NEXT: recorder.next_task,
    }
    for name, fn in handlers.items():
        station.on_command(name, guarded(fn))
