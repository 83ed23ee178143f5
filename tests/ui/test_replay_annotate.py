"""Annotating in the Replay view: outcome, quality, trim, segments (mouse and keyboard),
instructions and tags, batch edits in the Episodes list, undo/redo over the annotation model's
history; the recordings themselves never change."""

from __future__ import annotations

import html

import pytest
from PySide6.QtCore import Qt

from tests.ui.replay_helpers import (answer_dialog, digest, press, replay_window,
                                     timeline_point, type_into_dialog, wait_painted,
                                     write_episodes)
from vla_studio.data.annotations import load_annotations, write_annotations
from vla_studio.ui.replay.help_overlay import key_rows


@pytest.fixture
def setup(qtbot, dry_station, tmp_path):
    paths = write_episodes(tmp_path / "dataset", 3)
    window = replay_window(qtbot, dry_station, tmp_path / "dataset")
    before = digest(paths)
    yield window, paths
    assert digest(paths) == before  # whatever was edited, no recording changed


def opened(qtbot, window, path):
    assert window.modes.open_path(path)
    wait_painted(qtbot, window.replay, 0)
    return window.replay


def ann(path):
    return load_annotations(path).annotations


def test_outcome_and_quality_keys_and_undo_redo_of_exactly_those_edits(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[0])
    press(qtbot, view, Qt.Key.Key_F)
    press(qtbot, view, Qt.Key.Key_4)
    assert ann(paths[0])["success"] == 0 and ann(paths[0])["quality"] == 4
    assert ann(paths[0])["success_source"] == "researcher"
    assert view.panel.outcome_buttons[False].isChecked()
    assert view.panel.quality_buttons[3].isChecked()
    press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "quality" not in ann(paths[0]) and ann(paths[0])["success"] == 0
    press(qtbot, view, Qt.Key.Key_Z,
          Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert ann(paths[0])["quality"] == 4
    press(qtbot, view, Qt.Key.Key_U)
    assert ann(paths[0])["success"] == -1 and view.episode.success() is None
    browser = window.panels["episodes"]
    qtbot.waitUntil(lambda: any(r.quality == 4 for r in browser.model.rows), timeout=5000)


def test_trim_keys_keep_the_steps_between_in_and_out(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[1])
    view.seek(20)
    press(qtbot, view, Qt.Key.Key_BracketLeft)
    assert ann(paths[1])["trim"] == [20, 120]
    view.seek(90)
    press(qtbot, view, Qt.Key.Key_BracketRight)
    assert ann(paths[1])["trim"] == [20, 91]
    assert view.timeline.trim == (20, 91) and "steps 20–90" in view.panel.trim.text()
    view.seek(10)
    press(qtbot, view, Qt.Key.Key_BracketRight)  # before the in point: refused, said why
    assert ann(paths[1])["trim"] == [20, 91] and "after trim in" in view.message.text()
    press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ann(paths[1])["trim"] == [20, 120]


def test_segments_are_created_resized_moved_labelled_and_deleted_with_the_mouse(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[0])
    tl = view.timeline
    qtbot.mousePress(tl, Qt.MouseButton.LeftButton, pos=timeline_point(view, 10, "segments"))
    qtbot.mouseMove(tl, timeline_point(view, 40, "segments"))
    qtbot.mouseRelease(tl, Qt.MouseButton.LeftButton, pos=timeline_point(view, 40, "segments"))
    (seg,) = ann(paths[0])["segments"]
    assert seg["start"] == 10 and 40 <= seg["end"] <= 42
    end_edge = tl.segment_rect(0).right()
    qtbot.mousePress(tl, Qt.MouseButton.LeftButton,
                     pos=timeline_point(view, 0, "segments").__class__(
                         round(end_edge), timeline_point(view, 0, "segments").y()))
    qtbot.mouseMove(tl, timeline_point(view, 60, "segments"))
    qtbot.mouseRelease(tl, Qt.MouseButton.LeftButton, pos=timeline_point(view, 60, "segments"))
    (seg,) = ann(paths[0])["segments"]
    assert seg["start"] == 10 and 60 <= seg["end"] <= 62
    body = timeline_point(view, 30, "segments")
    qtbot.mousePress(tl, Qt.MouseButton.LeftButton, pos=body)
    qtbot.mouseMove(tl, timeline_point(view, 50, "segments"))
    qtbot.mouseRelease(tl, Qt.MouseButton.LeftButton, pos=timeline_point(view, 50, "segments"))
    (moved,) = ann(paths[0])["segments"]
    assert moved["start"] > seg["start"] and moved["end"] - moved["start"] == \
        seg["end"] - seg["start"]
    answer_dialog(type_into_dialog(qtbot, "reach the cube"))
    qtbot.mouseDClick(tl, Qt.MouseButton.LeftButton, pos=timeline_point(view, 45, "segments"))
    assert ann(paths[0])["segments"][0]["label"] == "reach the cube"
    assert view.panel.segments.count() == 1 and "reach the cube" in \
        view.panel.segments.item(0).text()
    for _ in range(4):  # label, move, resize, create: all undone, in that order
        press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "segments" not in ann(paths[0])
    assert view.timeline.segments == []


def test_segments_from_the_keyboard_b_splits_enter_labels_delete_removes(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[2])
    press(qtbot, view, Qt.Key.Key_B)  # at step 0: one segment over the whole episode
    for step in (40, 80):
        view.seek(step)
        press(qtbot, view, Qt.Key.Key_B)
    assert [(s["start"], s["end"]) for s in ann(paths[2])["segments"]] == [(0, 40), (40, 80),
                                                                          (80, 120)]
    for step, label in ((5, "reach"), (50, "grasp"), (100, "lift")):
        view.seek(step)
        answer_dialog(type_into_dialog(qtbot, label))
        press(qtbot, view, Qt.Key.Key_Return)
    assert [s["label"] for s in ann(paths[2])["segments"]] == ["reach", "grasp", "lift"]
    view.seek(60)
    press(qtbot, view, Qt.Key.Key_Delete)
    assert [s["label"] for s in ann(paths[2])["segments"]] == ["reach", "lift"]
    view.seek(76)  # after the clamp at 72
    press(qtbot, view, Qt.Key.Key_E)  # segment boundaries are events too
    assert view.target == 80


def test_instructions_and_tags_are_edited_in_dialogs(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[1])

    def instructions(dialog):
        dialog.primary.setText("lift cube one")
        dialog.paraphrases.setPlainText("raise cube one\nlift cube one")
    answer_dialog(instructions)
    press(qtbot, view, Qt.Key.Key_I)
    assert ann(paths[1])["instructions"] == ["lift cube one", "raise cube one"]
    assert view.title.text() == "lift cube one"
    assert "recorded: pick up cube 1" in view.panel.instructions.text()
    answer_dialog(type_into_dialog(qtbot, "wobbly grasp, review"))
    press(qtbot, view, Qt.Key.Key_T)
    assert ann(paths[1])["tags"] == ["wobbly grasp", "review"]
    answer_dialog(lambda d: None, accept=False)  # Cancel changes nothing
    press(qtbot, view, Qt.Key.Key_I)
    assert len(load_annotations(paths[1]).history) == 2
    view.panel.notes.setPlainText("the gripper slips at 2 s")
    assert view.panel.save_notes.isEnabled()
    qtbot.mouseClick(view.panel.save_notes, Qt.MouseButton.LeftButton)
    assert ann(paths[1])["notes"] == "the gripper slips at 2 s"
    assert not view.panel.save_notes.isEnabled()
    browser = window.panels["episodes"]
    qtbot.waitUntil(lambda: any("review" in r.tags for r in browser.model.rows), timeout=5000)
    browser.filter_edit.setText("review")
    assert browser.proxy.rowCount() == 1


def test_batch_edits_of_the_selection_are_one_undoable_edit(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[0])
    browser = window.panels["episodes"]
    browser.table.selectAll()
    browser.batch.set_outcome(False)
    browser.batch.set_quality(2)
    answer_dialog(type_into_dialog(qtbot, "night shift"))
    browser.batch.add_tag()
    assert [ann(p).get("success") for p in paths] == [0, 0, 0]
    assert all(ann(p)["quality"] == 2 and ann(p)["tags"] == ["night shift"] for p in paths)
    assert view.panel.quality_buttons[1].isChecked()  # the open episode follows
    answer_dialog(lambda d: d.primary.setText("stack the cubes"))
    browser.batch.set_instruction()
    assert all(ann(p)["instructions"] == ["stack the cubes"] for p in paths)
    view.undo()
    assert all("instructions" not in ann(p) for p in paths)
    view.undo()
    assert all("tags" not in ann(p) for p in paths)
    view.undo()
    view.undo()
    assert all(ann(p) == {} for p in paths)


def test_n_and_p_follow_the_episodes_lists_sort_and_filter(qtbot, setup):
    window, paths = setup
    browser = window.panels["episodes"]
    view = opened(qtbot, window, paths[2])  # newest first: the list's first row
    press(qtbot, view, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: view.episode.path == paths[1], timeout=5000)
    assert browser.selected()[0].name == paths[1].name  # the list follows the view
    browser.filter_edit.setText("cube 0")  # from a hidden episode: the first one shown
    press(qtbot, view, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: view.episode.path == paths[0], timeout=5000)
    browser.filter_edit.setText("")
    browser.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # oldest first
    for expected in (paths[1], paths[2]):
        press(qtbot, view, Qt.Key.Key_N)
        qtbot.waitUntil(lambda: view.episode.path == expected, timeout=5000)
    press(qtbot, view, Qt.Key.Key_N)
    assert view.episode.path == paths[2] and "last episode" in view.message.text()
    press(qtbot, view, Qt.Key.Key_P)
    qtbot.waitUntil(lambda: view.episode.path == paths[1], timeout=5000)


def test_an_edit_made_elsewhere_is_never_undone_by_mistake(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[0])
    press(qtbot, view, Qt.Key.Key_S)
    write_annotations(paths[0], {"notes": "from the command line"})  # another editor
    press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ann(paths[0])["notes"] == "from the command line"
    assert ann(paths[0])["success"] == 1  # refused: the latest edit is not the view's own
    assert "edited elsewhere" in view.message.text()
    qtbot.waitUntil(lambda: not view.editor.stack.canUndo(), timeout=2000)


def test_the_key_overlay_lists_every_key_of_the_actions_table(qtbot, setup):
    window, paths = setup
    opened(qtbot, window, paths[0])
    window.actions_by_id["view.key_overlay"].trigger()
    overlay = window.modes.overlay
    assert overlay.isVisible()
    text = " ".join(label.text() for label in overlay.columns)
    for keys, title in key_rows()["Replay"] + key_rows()["Replay: annotate"]:
        assert html.escape(title) in text
    assert "Space" in text and "Ctrl+Z" in text and "Esc" in text
    qtbot.keyClick(overlay, Qt.Key.Key_A)
    assert not overlay.isVisible()
    assert ann(paths[0]) == {}


def test_re_execution_is_refused_for_an_episode_not_recorded_in_the_simulator(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[0])
    press(qtbot, view, Qt.Key.Key_X)
    assert "only episodes recorded on the simulated station" in view.message.text()


def test_plots_name_their_units_and_dimensions_can_be_toggled(qtbot, setup):
    window, paths = setup
    view = opened(qtbot, window, paths[0])
    plots = view.plots
    assert plots.visible_labels("action")[:3] == ["dx [m]", "dy [m]", "dz [m]"]
    assert "ee_pos.x [m]" in plots.visible_labels("state")
    assert "joint_pos.joint_pos[0] [rad]" not in plots.visible_labels("state")
    assert set(plots.visible_labels("gripper")) >= {"command", "measured"}
    ref = ("action", 0, "action")
    plots.show_curve(ref, False)
    assert "dx [m]" not in plots.visible_labels("action")
    assert not plots.curves[("requested_action", 0, "action")].isVisible()
    legend = [label.text for _, label in plots.plots["action"].legend.items]
    assert "dx [m]" not in legend and "dy [m]" in legend
