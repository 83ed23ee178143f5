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

from tests.data.rlds_episode_files import SIM_PROFILE, SIM_STATE_SHAPES, EpisodeSpec, write_dataset


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


def sim_spec(seed: int, **kw) -> EpisodeSpec:
    return EpisodeSpec(seed=seed, state_shapes=dict(SIM_STATE_SHAPES),
                       station_profile=SIM_PROFILE, **kw)


def export_json(tmp_path: Path, specs: list[EpisodeSpec], **options) -> tuple[dict, dict]:
    """(observation and action feature JSON, metadata.json) of an export of ``specs``."""
    write_dataset(tmp_path / "src", specs)
    report = RldsExporter(tmp_path / "src", tmp_path / "out",
                          ExportOptions(name="demo", **options)).run()
    features = json.loads((report.dataset_dir / "features.json").read_text())
    steps = features["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]
    flat = dict(steps["features"])
    flat.update(flat.pop("observation")["featuresDict"]["features"])
    return flat, json.loads((report.dataset_dir / "metadata.json").read_text())


def test_state_and_action_meanings_are_in_features_json_and_metadata(tmp_path):
    features, meta = export_json(tmp_path, [sim_spec(0), sim_spec(1)],
                                 state_keys=("ee_pos", "ee_quat", "gripper"),
                                 camera_map={"front": "image", "wrist": "wrist_image"})
    state = features["state"]["description"]
    assert "concatenated in the order asked for" in state
    assert ("ee_pos [x, y, z] (m; end-effector position in the robot base frame); ee_quat "
            "[w, x, y, z] (end-effector orientation quaternion in the robot base frame; order "
            "w x y z); gripper [opening] (measured gripper opening, 1 open, 0 closed)") in state
    assert features["gripper"]["valueRange"] == "0 (closed) to 1 (open)"
    assert "order w x y z" in features["ee_quat"]["description"]
    action = features["action"]["description"]
    assert "ee_delta" in action and "robot base frame" in action
    assert "dx, dy, dz in metres, droll, dpitch, dyaw in radians" in action
    assert "gripper: absolute command, 1 open, 0 closed" in action
    assert "recorded as camera 'front'" in features["image"]["description"]

    assert meta["state"]["element_names"] == [
        "ee_pos.x", "ee_pos.y", "ee_pos.z", "ee_quat.w", "ee_quat.x", "ee_quat.y", "ee_quat.z",
        "gripper.opening"]
    quat = meta["state"]["keys"][1]
    assert quat["key"] == "ee_quat" and quat["slice"] == [3, 7]
    assert quat["quaternion_order"] == "w x y z" and quat["names_from"] == "robot"
    assert meta["meanings"]["quaternion_order"] == {"ee_quat": "w x y z"}
    assert meta["meanings"]["gripper"].startswith("1 open, 0 closed")
    assert meta["action"]["units"] == ["m", "m", "m", "rad", "rad", "rad", ""]
    assert meta["action"]["frame"] == "robot base frame" and meta["action"]["kind"] == "ee_delta"


def test_element_names_come_from_the_recorded_robot(tmp_path):
    features, meta = export_json(tmp_path, [sim_spec(0)])
    joints = next(k for k in meta["state"]["keys"] if k["key"] == "joint_pos")
    # the simulated arm names its joints (a convention could only say joint_pos[i])
    assert joints["names"] == [f"joint{i}" for i in range(1, 8)] and joints["unit"] == "rad"
    assert joints["names_from"] == "robot"
    assert "joint_vel [joint1," in features["state"]["description"]
    assert "sorted by key" in features["state"]["description"]


def test_without_the_robot_the_standard_keys_keep_their_conventions(tmp_path):
    plugin = SIM_PROFILE.replace('type = "sim"', 'type = "some_uninstalled_arm"', 1)
    shapes = {"ee_pos": (3,), "ee_quat": (4,), "gripper": (1,), "force": (3,)}
    _, meta = export_json(tmp_path, [EpisodeSpec(seed=0, state_shapes=shapes,
                                                 station_profile=plugin)])
    keys = {k["key"]: k for k in meta["state"]["keys"]}
    assert keys["ee_quat"]["names"] == ["w", "x", "y", "z"]
    assert keys["ee_quat"]["names_from"] == "convention"
    assert keys["force"]["names"] == ["force[0]", "force[1]", "force[2]"]
    assert keys["force"]["names_from"] == "unknown" and keys["force"]["unit"] == ""


def test_joint_position_actions_are_described_in_radians(tmp_path):
    names = [f"joint{i}" for i in range(1, 8)] + ["gripper"]
    features, meta = export_json(tmp_path, [sim_spec(0, action_space_kind="joint_position",
                                                     action_names=names)])
    action = features["action"]["description"]
    assert "joint_position" in action and "absolute joint position targets in radians" in action
    assert "gripper command, 1 open, 0 closed" in action
    assert meta["action"]["units"] == ["rad"] * 7 + [""]
