"""Policy → Train…: a tiny training run in a child process, its live loss plot, cancel."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.policies.micro_dataset import write_micro_dataset
from vla_studio.ui.widgets.train_dialog import TrainDialog

TINY = ("--image-size 32 32 --width 32 --depth 1 --batch-size 8 --threads 1 --device cpu "
        "--seed 3")


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    return write_micro_dataset(tmp_path_factory.mktemp("train-dialog") / "dataset")


def _dialog(qtbot, micro, out, epochs: int) -> TrainDialog:
    dialog = TrainDialog(micro)
    qtbot.addWidget(dialog)
    dialog.out.setText(str(out))
    dialog.epochs.setValue(epochs)
    dialog.chunk.setValue(4)
    dialog.options.setText(TINY)
    dialog.show()
    return dialog


def test_policy_menu_opens_the_train_dialog(main_window, qtbot):
    action = main_window.actions_by_id["policy.train"]
    menus = [a.text() for a in main_window.menuBar().actions()]
    assert "&Policy" in menus
    action.trigger()
    dialog = main_window.findChild(TrainDialog)
    assert dialog is not None and dialog.isVisible()
    assert dialog.datasets.item(0).text() == str(main_window.station.profile.dataset_dir)
    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)  # idle: Close closes
    assert not dialog.isVisible()
    action.trigger()  # a closed dialog is replaced by a fresh one
    dialog = main_window._train_dialog
    assert dialog.isVisible()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)  # and so does Esc
    assert not dialog.isVisible()


def test_training_from_the_dialog_plots_the_loss_and_names_the_policy(qtbot, micro, tmp_path):
    out = tmp_path / "run"
    dialog = _dialog(qtbot, micro, out, epochs=2)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert dialog.job is not None and dialog.job.running
    assert not dialog.close_button.isEnabled() and not dialog.form.isEnabled()
    dialog.close()  # refused while training runs
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.timer.isActive(), timeout=180_000)
    assert dialog.job.returncode == 0, dialog.job.error_text()
    xs, ys = dialog.train_curve.getData()
    assert len(xs) >= 3 and all(y > 0 for y in ys)  # one point per progress report
    vx, vy = dialog.val_curve.getData()
    assert len(vx) == 2  # one validation point per epoch
    assert dialog.progress.value() == dialog.progress.maximum() > 0
    assert str(out / "best") in dialog.result.text()
    assert (out / "best" / "model.safetensors").is_file()
    assert dialog.close_button.isEnabled()


def test_cancel_stops_the_child_and_keeps_the_dialog_usable(qtbot, micro, tmp_path):
    dialog = _dialog(qtbot, micro, tmp_path / "run", epochs=200)
    dialog.start()
    qtbot.waitUntil(lambda: len(dialog.job.state.losses) >= 2, timeout=120_000)
    proc = dialog.job._proc
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.timer.isActive(), timeout=60_000)
    assert proc.poll() is not None  # reaped
    assert dialog.job.cancelled and dialog.status.text().startswith("Cancelled")
    assert dialog.start_button.isEnabled() and dialog.close_button.isEnabled()
    dialog.close()
    assert not dialog.isVisible()


def test_a_training_error_is_shown_in_one_line(qtbot, tmp_path):
    dialog = TrainDialog(tmp_path / "no-such-dataset")
    qtbot.addWidget(dialog)
    dialog.out.setText(str(tmp_path / "run"))
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.timer.isActive(), timeout=60_000)
    assert dialog.status.text().startswith("Training failed:")
    assert "not a VLA Studio dataset" in dialog.status.text()
