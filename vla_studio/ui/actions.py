"""Every menu/toolbar/shortcut action, declared once as data.

An action either calls a main-window method (``method``) or runs a named station command
(``command``, e.g. ``"record.toggle"``) — the same commands teleop buttons send. The main window
turns this table into QActions; features add rows here rather than creating QActions ad hoc.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSpec:
    """One user action.

    Attributes:
        id: stable identifier (``"run.start"``).
        title: menu text (``&`` marks the mnemonic).
        menu: top-level menu title it appears in.
        shortcut: key sequence, or "".
        method: name of a ``MainWindow`` method to call, or "".
        command: station command to run, or "".
        toolbar: also shown on the main toolbar.
        icon: file name under resources/icons, or "".
        tip: status/tool tip.
        app_wide: shortcut works whichever widget has focus (Qt.ApplicationShortcut).
        key_hint: keys shown in the menu and the shortcut list but handled elsewhere (the STOP
            keys: :mod:`vla_studio.ui.key_routing` decides when Esc and Space stop).
    """

    id: str
    title: str
    menu: str
    shortcut: str = ""
    method: str = ""
    command: str = ""
    toolbar: bool = False
    icon: str = ""
    tip: str = ""
    app_wide: bool = False
    key_hint: str = ""

    @property
    def keys(self) -> str:
        """The keys that trigger it, as shown to the operator ("" when none)."""
        return self.shortcut or self.key_hint


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("station.open", "&Open station profile...", "&File", "Ctrl+O",
               method="open_station", tip="Load another station profile (TOML)"),
    ActionSpec("data.export_rlds", "&Export RLDS dataset...", "&File", "Ctrl+E",
               method="export_rlds", tip="Write a TFDS/RLDS dataset that Octo and OpenVLA load"),
    ActionSpec("app.quit", "&Quit", "&File", "Ctrl+Q", method="close"),
    ActionSpec("run.start_teleop", "Start &teleop", "&Robot", "F5", method="start_teleop",
               toolbar=True, icon="play.svg", tip="Let the active teleop device drive the robot"),
    ActionSpec("run.pause", "&Pause", "&Robot", "F6", method="pause_run", toolbar=True,
               icon="pause.svg", tip="Hold position; the run can be resumed"),
    ActionSpec("policy.start", "Start / resume &policy run", "&Robot", "F7",
               command="policy.start",
               tip="Run the loaded policy on the Policy dock's instruction, or resume the run"),
    ActionSpec("policy.step", "Policy: step &once", "&Robot", "F8", command="policy.step",
               tip="Run the policy for one chunk, then pause"),
    ActionSpec("policy.finish", "&Finish policy run", "&Robot", "Ctrl+F7",
               command="policy.finish",
               tip="End the run: save its episode with the robot's verdict"),
    ActionSpec("estop.trigger", "&STOP", "&Robot", method="trigger_estop",
               key_hint="Esc, or Space during a run",
               tip="Latch the software e-stop (Esc; Space while a run is active)"),
    ActionSpec("estop.reset", "&Reset e-stop...", "&Robot", method="reset_estop",
               tip="Two steps: request, then confirm; the session returns to PAUSED"),
    ActionSpec("robot.recover", "Re&cover robot", "&Robot", command="robot.recover",
               tip="Clear a robot-side error (a reflex, a protective stop) with the robot's own "
                   "recovery; the e-stop stays latched until you reset it"),
    ActionSpec("record.toggle", "&Record / stop and save", "Re&cord", "Ctrl+R",
               command="record.toggle", toolbar=True, icon="record.svg",
               tip="Start recording an episode, or stop and save it"),
    ActionSpec("episode.success", "End as &success", "Re&cord", "Ctrl+Shift+S",
               command="episode.success", tip="End the episode as a success (or mark the last one)"),
    ActionSpec("episode.failure", "End as &failure", "Re&cord", "Ctrl+Shift+F",
               command="episode.failure", tip="End the episode as a failure (or mark the last one)"),
    ActionSpec("record.discard", "&Discard episode", "Re&cord", "Ctrl+Shift+D",
               command="record.discard", tip="Move the open (or last) episode to the trash"),
    ActionSpec("record.rerecord", "Re-&record last", "Re&cord", "Ctrl+Shift+R",
               command="record.rerecord", tip="Discard the last episode and record it again"),
    ActionSpec("task.next", "&Next task", "Re&cord", "Ctrl+N", command="task.next",
               tip="Propose the next task of the task list"),
    ActionSpec("policy.train", "&Train...", "&Policy", method="train_policy",
               tip="Train the reference VLA on datasets, with a live loss plot"),
    ActionSpec("view.reset_layout", "&Reset layout", "&View", method="reset_layout",
               tip="Put every dock back where it started"),
    ActionSpec("help.shortcuts", "&Keyboard shortcuts", "&Help", "F1", method="show_shortcuts",
               tip="Every shortcut of the window, and the STOP keys"),
    ActionSpec("help.guide", "&User guide", "&Help", method="open_user_guide",
               tip="Open the user guide (the documentation installed with VLA Studio)"),
    ActionSpec("help.about", "&About VLA Studio", "&Help", method="show_about"),
)
