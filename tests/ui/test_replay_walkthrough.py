"""The researcher's walkthrough of issue 14, on a dataset recorded with the simulated expert:
review ten episodes with the keyboard only, fix two instructions, segment one episode into three
labelled subtasks, trim one, mark success on three (a fourth mark is undone), export; the RLDS,
loaded with tensorflow_datasets (in a child process: TensorFlow cannot share this one), holds
exactly those edits, and the episode files' recorded data did not change."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.profiles import changed_profile
from tests.recorded_datasets import record_expert
from tests.ui.replay_helpers import (answer_dialog, digest, press, replay_window,
                                     type_into_dialog, wait_painted)
from vla_studio.data.annotations import load_annotations
from vla_studio.paths import resource
from vla_studio.station import Station

ROOT = Path(__file__).resolve().parents[2]
FIXED = {0: "pick up the red block", 1: "lift the red cube off the table"}
SUBTASKS = ("reach the cube", "grasp it", "lift it")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    dataset = tmp_path_factory.mktemp("walkthrough") / "demos"
    record_expert(dataset, 10, max_seconds=1.6)
    return dataset


@pytest.fixture
def station(tmp_path, recorded):
    profile = changed_profile(resource("stations", "dry_run.toml"), tmp_path,
                              recording={"dataset_dir": str(recorded)})
    station = Station.from_profile(profile)
    station.start()
    yield station
    station.close()


def keys(qtbot, view, *presses) -> None:
    for key in presses:
        press(qtbot, view, *(key if isinstance(key, tuple) else (key,)))


def test_review_ten_episodes_by_keyboard_edit_them_and_export(qtbot, station, recorded,
                                                              tmp_path):
    files = sorted((recorded / "episodes").glob("*.h5"))
    before = digest(files)
    window = replay_window(qtbot, station, recorded)
    browser, view = window.panels["episodes"], window.replay
    browser.table.setFocus()
    qtbot.keyClick(browser.table, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(browser.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: view.episode is not None, timeout=5000)
    assert view.episode.path.name == browser.model.rows[
        browser.proxy.mapToSource(browser.proxy.index(0, 0)).row()].name  # the newest
    order, segmented, trimmed, successes = [], None, None, []
    for i in range(10):
        wait_painted(qtbot, view, view.target)
        path = view.episode.path
        order.append(path)
        keys(qtbot, view, Qt.Key.Key_Space)  # watch it
        qtbot.waitUntil(lambda: view.step >= 8, timeout=5000)
        keys(qtbot, view, Qt.Key.Key_K, Qt.Key.Key_Home, Qt.Key.Key_Right, Qt.Key.Key_E,
             (Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier), Qt.Key.Key_End)
        if i in FIXED:
            answer_dialog(type_into_dialog(qtbot, FIXED[i]))
            keys(qtbot, view, Qt.Key.Key_I)
        if i == 2:
            segmented = path
            keys(qtbot, view, Qt.Key.Key_Home, Qt.Key.Key_B, *[Qt.Key.Key_Right] * 10,
                 Qt.Key.Key_B, *[Qt.Key.Key_Right] * 10, Qt.Key.Key_B, Qt.Key.Key_Home)
            for label in SUBTASKS:
                answer_dialog(type_into_dialog(qtbot, label))
                keys(qtbot, view, Qt.Key.Key_Return, *[Qt.Key.Key_Right] * 10)
        if i == 3:
            trimmed = path
            keys(qtbot, view, Qt.Key.Key_Home, *[Qt.Key.Key_Right] * 4,
                 Qt.Key.Key_BracketLeft, Qt.Key.Key_End, *[Qt.Key.Key_Left] * 6,
                 Qt.Key.Key_BracketRight)
        if i in (4, 5, 6, 7):
            keys(qtbot, view, Qt.Key.Key_S)
            successes.append(path)
        if i == 7:  # on second thought: not that one
            keys(qtbot, view, (Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier))
            successes.pop()
        if i < 9:
            keys(qtbot, view, Qt.Key.Key_N)
            qtbot.waitUntil(lambda: view.episode.path != path, timeout=5000)
    assert len(set(order)) == 10

    out = tmp_path / "rlds"

    def export(dialog) -> None:
        dialog.out.setText(str(out))
        dialog.name.setText("walkthrough")
        dialog.val_fraction.setValue(0.0)
        dialog.subtasks.setChecked(True)
        dialog.start()
        dialog.wait(120)
        assert dialog.status.text() == "Export finished.", dialog.status.text()
    answer_dialog(export)
    press(qtbot, view, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert (out / "walkthrough" / "1.0.0" / "metadata.json").exists()

    assert digest(files) == before  # not one byte of a recording changed
    edited = {p for p in order if load_annotations(p).annotations}
    assert edited == {order[0], order[1], segmented, trimmed, *successes}
    for p in set(files) - edited:
        assert load_annotations(p).annotations == {}
    loaded = _load_in_tfds(out)
    assert len(loaded) == 10
    for path in files:
        ep = loaded[str(path.resolve())]
        ann = load_annotations(path).annotations
        with h5py.File(path, "r") as f:
            recorded_instruction = f.attrs["language_instruction"]
            start, end = ann.get("trim", (0, f["steps/action"].shape[0]))
            action = np.asarray(f["steps/action"][start:end], np.float32)
            recorded_success = int(f.attrs["success"])
        index = order.index(path)
        want_instruction = FIXED.get(index, recorded_instruction)
        assert ep["instructions"] == [want_instruction]
        assert ep["steps"] == end - start and ep["trim_start"] == start
        assert ep["action_sha256"] == hashlib.sha256(action.tobytes()).hexdigest()
        want_success = 1 if path in successes else recorded_success
        assert ep["success"] == want_success
        assert ep["is_terminal"][-1] is (want_success == 1)
        assert ep["reward_last"] == (1.0 if want_success == 1 else 0.0)
        if path == segmented:
            assert ep["subtasks"][:10] == [SUBTASKS[0]] * 10
            assert ep["subtasks"][10:20] == [SUBTASKS[1]] * 10
            assert set(ep["subtasks"][20:]) == {SUBTASKS[2]}
            assert [k for k, first in enumerate(ep["subtask_first"]) if first] == [0, 10, 20]
        else:
            assert set(ep["subtasks"]) == {""}
    assert recorded_success == 0  # the expert ran out of time on every one of them
    trim = load_annotations(trimmed).annotations["trim"]
    assert trim[0] == 4 and loaded[str(trimmed.resolve())]["steps"] == trim[1] - 4
    meta = json.loads((out / "walkthrough" / "1.0.0" / "metadata.json").read_text())
    assert meta["annotations"]["episodes_with_edits"] == len(edited)


def _load_in_tfds(out: Path) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "tests.tfds_dump", str(out), "walkthrough"],
                          capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {row["file"]: row for row in rows}
