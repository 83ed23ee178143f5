"""Every menu/toolbar/shortcut action, declared once as data.

An action either calls a main-window method (``method``; on one of the window's views when
``target`` names it) or runs a named station command (``command``, e.g. ``"record.toggle"``) —
the same commands teleop buttons send. The main window turns this table into QActions; features
add rows here rather than creating QActions ad hoc.

A ``scoped`` action's keys work only while the keyboard focus is inside its ``target`` view:
the replay view's single-letter keys (S, F, J/K/L...) are the keyboard teleop's drive keys
everywhere else. Its menu entry works from anywhere.
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
            keys: :mod:`vla_studio.ui.key_routing` decides when Esc and Space stop; Space plays
            a replay only when it does not stop the robot).
        target: attribute of the main window whose ``method`` runs ("" = the window itself).
        scoped: the shortcut works only while the focus is inside ``target`` (a widget).
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
    target: str = ""
    scoped: bool = False

    @property
    def keys(self) -> str:
        """The keys that trigger it, as shown to the operator ("" when none)."""
        return self.shortcut or self.key_hint


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("station.open", "&Open station profile...", "&File", "Ctrl+O",
               method="open_station", tip="Load another station profile (TOML)"),
    ActionSpec("data.export_rlds", "&RLDS dataset...", "&File/&Export", "Ctrl+E",
               method="export_rlds", tip="Write a TFDS/RLDS dataset that Octo and OpenVLA load"),
    ActionSpec("data.export_lerobot", "&LeRobot dataset...", "&File/&Export", "Ctrl+Shift+E",
               method="export_lerobot",
               tip="Write a LeRobotDataset v3 (videos, parquet) that LeRobot loads"),
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
    ActionSpec("edit.undo", "&Undo annotation edit", "&Edit", "Ctrl+Z", method="undo",
               target="replay", tip="Undo the last edit of instructions, labels, segments or "
                                    "trim (the recording itself is never changed)"),
    ActionSpec("edit.redo", "&Redo annotation edit", "&Edit", "Ctrl+Shift+Z", method="redo",
               target="replay", tip="Redo the annotation edit undone last"),
    ActionSpec("view.live", "&Live operation", "&View", "Ctrl+1", method="show_live",
               target="modes", tip="The live cameras and the robot"),
    ActionSpec("view.replay", "Re&play and annotate", "&View", "Ctrl+2", method="show_replay",
               target="modes", tip="Review recorded episodes: replay, label, segment, trim"),
    ActionSpec("view.key_overlay", "Keys &overlay", "&View", "?", method="show_key_overlay",
               target="modes", tip="Every key of the window over the window (any key closes it)"),
    *(ActionSpec(f"replay.{id_}", title, "Re&play", keys, method=method, target="replay",
                 scoped=True, tip=tip, key_hint=hint)
      for id_, title, keys, method, tip, hint in (
        ("play", "Play / pause", "", "toggle_play", "Play at the chosen speed, or pause",
         "Space"),
        ("pause", "Stop playing", "K", "pause", "Pause the replay (J/K/L as in video editors)", ""),
        ("forward", "Play forward (again: faster)", "L", "play_forward",
         "Play forward; each press doubles the speed up to 4x", ""),
        ("backward", "Play backward (again: faster)", "J", "play_backward",
         "Play backward; each press doubles the speed up to 4x", ""),
        ("step_next", "Next step", "Right", "step_forward", "One control step forward", ""),
        ("step_prev", "Previous step", "Left", "step_back", "One control step back", ""),
        ("second_next", "One second forward", "Shift+Right", "second_forward", "", ""),
        ("second_prev", "One second back", "Shift+Left", "second_back", "", ""),
        ("start", "Go to the start", "Home", "go_start", "", ""),
        ("end", "Go to the end", "End", "go_end", "", ""),
        ("next_event", "Next event", "E", "next_event",
         "Next intervention, clamp, e-stop, camera gap, segment boundary or trim point", ""),
        ("prev_event", "Previous event", "Shift+E", "previous_event", "", ""),
        ("trim_in", "Trim in here", "[", "trim_in", "Keep the episode from this step on", ""),
        ("trim_out", "Trim out here", "]", "trim_out", "Keep the episode up to this step", ""),
        ("clear_trim", "Clear the trim", "", "clear_trim", "Keep the whole episode", ""),
        ("success", "Mark success", "S", "mark_success", "", ""),
        ("failure", "Mark failure", "F", "mark_failure", "", ""),
        ("unknown", "Mark outcome unknown", "U", "mark_unknown", "", ""),
        *((f"quality_{q}", f"Quality {q}", str(q), f"quality_{q}",
           "Rate the demonstration (1 poor ... 5 excellent)", "") for q in range(1, 6)),
        ("split", "Segment boundary here", "B", "split_segment",
         "Cut the subtask segment under the playhead here, or start one", ""),
        ("label", "Label the segment...", "Return", "label_segment",
         "Name the subtask segment under the playhead", ""),
        ("delete_segment", "Delete the segment", "Delete", "delete_segment", "", ""),
        ("instructions", "Edit instructions...", "I", "edit_instructions",
         "Fix the instruction or add paraphrases", ""),
        ("tags", "Edit tags...", "T", "edit_tags", "", ""),
        ("next_episode", "Next episode", "N", "next_episode",
         "The next episode of the Episodes list (its sort and filter)", ""),
        ("prev_episode", "Previous episode", "P", "previous_episode", "", ""),
        ("simulate", "Re-execute in the simulator", "X", "reexecute",
         "Replay the recorded actions in the simulator from the recorded seed and compare", ""),
      )),
    ActionSpec("episodes.open", "Replay the selected episode", "Re&play", "Return",
               method="open_selected", target="modes", scoped=True,
               tip="In the Episodes list: open the current episode in the Replay view"),
    ActionSpec("help.shortcuts", "&Keyboard shortcuts", "&Help", "F1", method="show_shortcuts",
               tip="Every shortcut of the window, and the STOP keys"),
    ActionSpec("help.guide", "&User guide", "&Help", method="open_user_guide",
               tip="Open the user guide (the documentation installed with VLA Studio)"),
    ActionSpec("help.about", "&About VLA Studio", "&Help", method="show_about"),
)
