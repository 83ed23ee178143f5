"""What the exported values mean, without TensorFlow: RLDS end-of-episode flags, the Open
X-Embodiment camera and state naming options, and the meanings written beside the data
(``features.json`` descriptions, ``metadata.json``). tests/data/test_rlds_roundtrip.py loads the
same kind of exports through tensorflow_datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vla_studio import cli
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.rlds import ExportError, ExportOptions, RldsExporter
from vla_studio.data.rlds.episode_encoder import read_episode

from tests.data.rlds_episode_files import EpisodeSpec, write_dataset


def exported_values(dataset: Path, **options) -> dict[str, dict]:
    """episode id -> the flat feature values the exporter writes for it."""
    exporter = RldsExporter(dataset, dataset / "unused", ExportOptions(name="demo", **options))
    plan = exporter.plan()
    out = {}
    for planned in plan.episodes:
        with EpisodeReader(planned.summary.path) as reader:
            out[planned.summary.episode_id] = read_episode(plan, planned, reader).values
    return out


def test_is_terminal_only_on_the_last_step_of_a_success_and_is_last_always(tmp_path):
    specs = [EpisodeSpec(seed=0, episode_id="success", success=1),
             EpisodeSpec(seed=1, episode_id="failure", success=0),
             EpisodeSpec(seed=2, episode_id="time_limit", success=-1),
             EpisodeSpec(seed=3, episode_id="relabelled_failure", success=1,
                         annotation_success=0),
             EpisodeSpec(seed=4, episode_id="relabelled_success", success=-1,
                         annotation_success=1, trim=(1, 9))]
    write_dataset(tmp_path, specs)
    values = exported_values(tmp_path)
    for episode_id, succeeded in [("success", True), ("failure", False), ("time_limit", False),
                                  ("relabelled_failure", False), ("relabelled_success", True)]:
        v = values[episode_id]
        n = len(v["steps/is_last"])
        last = np.arange(n) == n - 1
        np.testing.assert_array_equal(v["steps/is_last"], last, err_msg=episode_id)
        np.testing.assert_array_equal(v["steps/is_terminal"], last & succeeded,
                                      err_msg=episode_id)
        np.testing.assert_array_equal(v["steps/reward"], (last & succeeded).astype(np.float32),
                                      err_msg=episode_id)
        np.testing.assert_array_equal(v["steps/is_first"], np.arange(n) == 0, err_msg=episode_id)


OXE = dict(camera_map={"front": "image", "wrist": "wrist_image"},
           state_keys=("ee_position", "gripper", "joints"))


def test_camera_map_and_state_keys_name_and_order_the_exported_streams(tmp_path):
    paths = write_dataset(tmp_path, [EpisodeSpec(seed=i, episode_id=f"e{i}") for i in range(2)])
    values = exported_values(tmp_path, **OXE)
    for path, v in zip(paths, values.values()):
        observation = {k.split("/")[2] for k in v if k.startswith("steps/observation/")}
        assert {"image", "wrist_image", "state"} <= observation
        assert not {"front", "wrist"} & observation
        with EpisodeReader(path) as reader:
            assert [bytes(b) for b in v["steps/observation/image"]] == \
                list(reader.iter_image_bytes("front"))
            state = reader.state()
        expected = np.concatenate([state[k].reshape(len(state[k]), -1) for k in OXE["state_keys"]],
                                  axis=1)
        np.testing.assert_array_equal(v["steps/observation/state"], expected)


def test_only_mapped_cameras_and_listed_state_keys_are_exported(tmp_path):
    write_dataset(tmp_path, [EpisodeSpec(seed=0)])
    exporter = RldsExporter(tmp_path, tmp_path / "out", ExportOptions(
        name="demo", camera_map=(("wrist", "image"),), state_keys=["gripper", "ee_position"]))
    plan = exporter.plan()
    assert [(c.camera, c.feature) for c in plan.cameras] == [("wrist", "observation/image")]
    assert [k for k, _ in plan.state.keys] == ["gripper", "ee_position"]
    assert plan.state.slices() == {"gripper": (0, 1), "ee_position": (1, 4)}
    assert any("front are not exported: they are not in the camera map" in w
               for w in plan.warnings)
    assert "observation/joints" not in plan.schema().steps


def test_an_episode_without_a_mapped_camera_is_skipped_saying_what_it_lacks(tmp_path):
    paths = write_dataset(tmp_path, [EpisodeSpec(seed=0), EpisodeSpec(seed=1),
                                     EpisodeSpec(seed=2, cameras={"front": (96, 72)}),
                                     EpisodeSpec(seed=3, cameras={"front": (96, 72),
                                                                  "wrist": (64, 48),
                                                                  "top": (32, 24)})])
    report = RldsExporter(tmp_path, tmp_path / "out", ExportOptions(name="demo", **OXE)).run()
    assert report.total_episodes == 3  # the extra, unmapped camera does not matter
    (path, reason), = report.skipped
    assert path == paths[2] and "has no camera 'wrist'" in reason


@pytest.mark.parametrize("options, message", [
    (dict(camera_map={"frnt": "image"}), "camera 'frnt' in the camera map is not a colour camera "
                                         "of any episode being exported (cameras: front, wrist)"),
    (dict(state_keys=("ee_pos",)), "state key 'ee_pos' in --state-keys is not recorded in any "
                                   "episode being exported (state keys: ee_position, gripper, "
                                   "joints)"),
    (dict(camera_map={"front": "image", "wrist": "image"}), "the name 'image' is given to both"),
    (dict(camera_map=[("front", "image"), ("front", "x")]), "camera 'front' is mapped twice"),
    (dict(camera_map={"front": "state"}), "is taken by the concatenated robot state"),
    (dict(camera_map={"front": "image/left"}), "is not a usable feature name"),
    (dict(camera_map={}), "the camera map is empty"),
    (dict(state_keys=("gripper", "joints", "gripper")), "'gripper' is listed twice"),
    (dict(state_keys=()), "the state key list is empty"),
    (dict(camera_map={"front": "image_depth", "wrist": "image"}, include_depth=True),
     "observation/image_depth would hold both camera 'front' and the depth of camera 'wrist'"),
], ids=["unknown_camera", "unknown_state_key", "duplicate_name", "camera_twice",
        "reserved_name", "bad_name", "empty_map", "key_twice", "no_keys", "depth_clash"])
def test_bad_camera_maps_and_state_keys_are_one_line_errors(tmp_path, options, message):
    spec = EpisodeSpec(seed=0, depth_cameras=("wrist",))
    write_dataset(tmp_path / "src", [spec])
    with pytest.raises(ExportError) as info:
        RldsExporter(tmp_path / "src", tmp_path / "out", ExportOptions(name="demo", **options)).run()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--camera-map", "front"], "camera map entry 'front' must look like CAMERA=NAME"),
    (["--camera-map", "front=image,,wrist=w"], "has an empty entry"),
    (["--camera-map", "front=image,wrist=image"], "the name 'image' is given to both"),
    (["--camera-map", "top=image"], "camera 'top' in the camera map is not a colour camera"),
    (["--state-keys", "gripper,ee_pos"], "state key 'ee_pos' in --state-keys is not recorded"),
    (["--state-keys", ","], "--state-keys is empty"),
], ids=["no_equals", "empty_entry", "duplicate_name", "unknown_camera", "unknown_key",
        "empty_keys"])
def test_cli_names_the_bad_camera_map_or_state_key_in_one_line(tmp_path, capsys, argv, message):
    write_dataset(tmp_path / "src", [EpisodeSpec(seed=0)])
    code = cli.main(["export", "rlds", str(tmp_path / "src"), str(tmp_path / "out"),
                     "--name", "demo", *argv])
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("vla-studio: error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_cli_exports_with_open_x_embodiment_names(tmp_path, capsys):
    write_dataset(tmp_path / "src", [EpisodeSpec(seed=0)])
    code = cli.main(["export", "rlds", str(tmp_path / "src"), str(tmp_path / "out"),
                     "--name", "demo", "--camera-map", "front=image, wrist=wrist_image",
                     "--state-keys", "ee_position,gripper"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "out" / "demo" / "1.0.0" / "metadata.json").read_text())
    assert meta["options"]["camera_map"] == {"front": "image", "wrist": "wrist_image"}
    assert meta["options"]["state_keys"] == ["ee_position", "gripper"]
    assert meta["cameras"]["front"]["feature"] == "steps/observation/image"
    assert [k["key"] for k in meta["state"]["keys"]] == ["ee_position", "gripper"]
