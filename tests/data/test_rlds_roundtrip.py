"""Round trip through the real consumer: tensorflow_datasets loads the export unchanged, and every
episode's steps, images, depth, actions, state, flags and instructions match the source HDF5.

One export per scenario is shared by the module (TensorFlow is slow to import; datasets are tiny).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

from vla_studio.data.rlds import ExportOptions, RldsExporter  # noqa: E402

from tests.data.rlds_episode_files import (EpisodeSpec, STATE_SHAPES,  # noqa: E402
                                           write_corrupt_episode, write_dataset)

PARAPHRASES = ["pick up the red cube", "grab the red block", "lift the red cube"]
SPECS = [
    EpisodeSpec(seed=0, steps=12, instructions=PARAPHRASES),
    EpisodeSpec(seed=1, steps=10, success=0, missing={"wrist": [0, 1, 5], "front": [7]}),
    EpisodeSpec(seed=2, steps=14, success=-1, trim=(2, 9), annotation_success=1,
                annotation_instructions=["put the cube down", "place the cube"]),
    EpisodeSpec(seed=3, steps=15),
    EpisodeSpec(seed=4, steps=9, success=0, instructions=["push the cube left"]),
    EpisodeSpec(seed=5, steps=11),
    EpisodeSpec(seed=6, steps=8, status="recording"),
    EpisodeSpec(seed=7, steps=8, cameras={"front": (96, 72), "wrist": (32, 24)}),
]
for s in SPECS:
    s.depth_cameras = ("front",)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rlds_roundtrip_src")
    write_dataset(root, SPECS)
    write_corrupt_episode(root / "episodes" / "episode_0042.h5")
    return root


@pytest.fixture(scope="module")
def passthrough(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("rlds_roundtrip_out")
    report = RldsExporter(source, out, ExportOptions(name="vla_demo", val_fraction=0.34,
                                                     include_depth=True)).run()
    return out, report


@pytest.fixture(scope="module")
def resized(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("rlds_roundtrip_resized")
    report = RldsExporter(source, out, ExportOptions(name="vla_demo_small", image_size=(48, 40),
                                                     success_only=True)).run()
    return out, report


class Source:
    """What the exported episode must contain, read straight from the HDF5 file."""

    def __init__(self, path: str) -> None:
        with h5py.File(path, "r") as f:
            ann = f["annotations"].attrs
            self.t = int(f.attrs["num_steps"])
            self.start, self.end = (int(v) for v in ann["trim"]) if "trim" in ann else (0, self.t)
            self.instructions = json.loads(ann["instructions"] if "instructions" in ann
                                           else f.attrs["language_instructions"])
            success = int(ann["success"]) if "success" in ann else int(f.attrs["success"])
            self.success = success
            sl = slice(self.start, self.end)
            self.action = f["steps/action"][sl]
            self.action_source = f["steps/action_source"][sl]
            self.timestamp = f["steps/timestamp"][sl]
            self.state = {k: f[f"steps/observation/state/{k}"][sl] for k in STATE_SHAPES}
            self.depth = f["steps/observation/depth/front"][sl]
            self.frames = {}
            for cam in ("front", "wrist"):
                g = f[f"steps/observation/image/{cam}"]
                data, index = g["data"][()], g["index"][()]
                frames = [data[o:o + n].tobytes() for o, n in index]
                self.frames[cam] = gap_filled(frames[self.start:self.end])

    @property
    def n(self) -> int:
        return self.end - self.start


def gap_filled(frames: list[bytes]) -> list[bytes]:
    """A step without a frame (b"") shows the previous one; leading gaps show the first."""
    first = next(f for f in frames if f)
    out, last = [], first
    for f in frames:
        last = f or last
        out.append(last)
    return out


def load(builder, split, raw_images=False):
    decoders = None
    if raw_images:
        skip = tfds.decode.SkipDecoding()
        decoders = {"steps": {"observation": {"front": skip, "wrist": skip}}}
    return list(tfds.as_numpy(builder.as_dataset(split=split, decoders=decoders)))


def steps_of(episode) -> dict:
    steps = list(episode["steps"])
    return {k: np.stack([s[k] for s in steps]) if k != "observation" else
            {o: np.stack([s["observation"][o] for s in steps]) for o in steps[0]["observation"]}
            for k in steps[0]}


def test_builder_from_directory_loads_train_and_val(passthrough):
    out, report = passthrough
    builder = tfds.builder_from_directory(str(out / "vla_demo" / "1.0.0"))
    assert set(builder.info.splits) == {"train", "val"}
    assert builder.info.splits["train"].num_examples == report.episodes["train"] == 4
    assert builder.info.splits["val"].num_examples == report.episodes["val"] == 2
    meta = json.loads((out / "vla_demo" / "1.0.0" / "metadata.json").read_text())
    for split in ("train", "val"):
        got = [e["episode_metadata"]["episode_id"].decode() for e in load(builder, split)]
        assert sorted(got) == sorted(e["episode_id"] for e in meta["episodes"]
                                     if e["split"] == split)


def test_tfds_builder_by_name_and_data_dir_loads_the_export(passthrough):
    out, _ = passthrough
    builder = tfds.builder("vla_demo", data_dir=str(out))
    assert builder.info.version == "1.0.0"
    episodes = load(builder, "train") + load(builder, "val")
    assert len(episodes) == 6
    assert len(load(builder, "train[:50%]")) == 2  # percent slicing, as Octo/OpenVLA use


def test_skipped_episodes_are_the_recording_corrupt_and_mismatched_ones(passthrough):
    _, report = passthrough
    assert sorted(p.name for p, _ in report.skipped) == [
        "episode_0006.h5", "episode_0007.h5", "episode_0042.h5"]
    assert report.filled_frames == {"front": 1, "wrist": 3}


def test_every_episode_matches_its_source_file(passthrough):
    out, _ = passthrough
    builder = tfds.builder_from_directory(str(out / "vla_demo" / "1.0.0"))
    episodes = load(builder, "train") + load(builder, "val")
    raw = {e["episode_metadata"]["episode_id"]: e
           for e in load(builder, "train", True) + load(builder, "val", True)}
    for ep in episodes:
        md = ep["episode_metadata"]
        src = Source(md["file_path"].decode())
        st = steps_of(ep)
        n = src.n
        assert md["num_steps"] == n and md["trim_start"] == src.start
        assert md["success"] == src.success
        assert json.loads(md["language_instructions"].decode()) == src.instructions
        np.testing.assert_array_equal(st["action"], src.action)
        np.testing.assert_array_equal(st["action_source"], src.action_source)
        np.testing.assert_allclose(st["timestamp"], src.timestamp - src.timestamp[0], atol=1e-5)
        state = np.concatenate([src.state[k].reshape(n, -1) for k in sorted(src.state)], axis=1)
        np.testing.assert_array_equal(st["observation"]["state"], state)
        for key in STATE_SHAPES:
            np.testing.assert_array_equal(st["observation"][key], src.state[key])
        first = np.zeros(n, bool)
        first[0] = True
        np.testing.assert_array_equal(st["is_first"], first)
        np.testing.assert_array_equal(st["is_last"], first[::-1])
        terminal = first[::-1] & (src.success == 1)  # truncated unless it succeeded
        np.testing.assert_array_equal(st["is_terminal"], terminal)
        np.testing.assert_array_equal(st["reward"], first[::-1] * float(src.success == 1))
        np.testing.assert_array_equal(st["discount"], np.ones(n, np.float32))
        texts = src.instructions
        for k in range(3):
            key = "language_instruction" if k == 0 else f"language_instruction_{k + 1}"
            assert {s.decode() for s in st[key]} == {texts[k % len(texts)]}
        raw_steps = steps_of(raw[md["episode_id"]])
        for cam in ("front", "wrist"):
            assert [bytes(b) for b in raw_steps["observation"][cam]] == src.frames[cam]
            decoded = st["observation"][cam]
            for i in (0, n // 2, n - 1):
                same_decoder = tf.io.decode_image(src.frames[cam][i], channels=3).numpy()
                np.testing.assert_array_equal(decoded[i], same_decoder)
                bgr = cv2.imdecode(np.frombuffer(src.frames[cam][i], np.uint8), cv2.IMREAD_COLOR)
                diff = np.abs(decoded[i].astype(int) - cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                assert diff.max() <= 8  # RGB order (a BGR swap would differ by ~190 on the cube)
        np.testing.assert_array_equal(st["observation"]["front_depth"], src.depth[..., None])


def test_paraphrases_fill_extra_instruction_slots_by_cycling(passthrough):
    out, _ = passthrough
    builder = tfds.builder_from_directory(str(out / "vla_demo" / "1.0.0"))
    slots = set()
    for ep in load(builder, "train") + load(builder, "val"):
        st = steps_of(ep)
        slots.add(tuple(st[k][0].decode() for k in ("language_instruction",
                                                    "language_instruction_2",
                                                    "language_instruction_3")))
    assert ("pick up the red cube", "grab the red block", "lift the red cube") in slots
    assert ("put the cube down", "place the cube", "put the cube down") in slots
    assert ("push the cube left",) * 3 in slots


def test_resized_success_only_export_has_the_asked_size(resized):
    out, report = resized
    builder = tfds.builder("vla_demo_small", data_dir=str(out))
    episodes = load(builder, "train")
    # seeds 0, 2 (success by annotation), 3, 5 and 7, whose smaller wrist camera is resized too
    assert len(episodes) == report.total_episodes == 5
    assert report.filtered_unsuccessful == 2
    assert all(e["episode_metadata"]["success"] == 1 for e in episodes)
    for ep in episodes:
        src = Source(ep["episode_metadata"]["file_path"].decode())
        st = steps_of(ep)
        for cam in ("front", "wrist"):
            images = st["observation"][cam]
            assert images.shape == (src.n, 40, 48, 3)
            bgr = cv2.imdecode(np.frombuffer(src.frames[cam][0], np.uint8), cv2.IMREAD_COLOR)
            expected = cv2.cvtColor(cv2.resize(bgr, (48, 40), interpolation=cv2.INTER_AREA),
                                    cv2.COLOR_BGR2RGB)
            assert np.abs(images[0].astype(int) - expected).mean() < 3.0
        assert "front_depth" not in st["observation"]


def test_tensorflow_verifies_our_record_checksums(passthrough, tmp_path):
    out, _ = passthrough
    copy = tmp_path / "vla_demo" / "1.0.0"
    shutil.copytree(out / "vla_demo" / "1.0.0", copy)
    shard = next(copy.glob("vla_demo-train.tfrecord-*"))
    data = bytearray(shard.read_bytes())
    assert len(list(tf.data.TFRecordDataset(str(shard)))) == 4
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(shard)))


def test_episodes_written_by_the_recorder_round_trip(tmp_path):
    from vla_studio.bench.export import generate_dataset
    from vla_studio.data.episode_file import EpisodeReader

    paths = generate_dataset(tmp_path / "recorded", episodes=2, steps=7, cameras=2, size=(64, 48))
    report = RldsExporter(tmp_path / "recorded", tmp_path / "out",
                          ExportOptions(name="recorded")).run()
    assert report.total_episodes == 2 and not report.skipped
    builder = tfds.builder("recorded", data_dir=str(tmp_path / "out"))
    episodes = {e["episode_metadata"]["file_path"].decode(): e for e in load(builder, "train")}
    raw = {e["episode_metadata"]["file_path"].decode(): e
           for e in tfds.as_numpy(builder.as_dataset(split="train", decoders={
               "steps": {"observation": {c: tfds.decode.SkipDecoding()
                                         for c in ("cam0", "cam1")}}}))}
    for path in paths:
        key = str(path.resolve())
        st, raw_st = steps_of(episodes[key]), steps_of(raw[key])
        with EpisodeReader(path) as reader:
            np.testing.assert_array_equal(st["action"], reader.step("action"))
            state = reader.state()
            np.testing.assert_array_equal(
                st["observation"]["state"],
                np.concatenate([state[k].reshape(7, -1) for k in sorted(state)], axis=1))
            for cam in ("cam0", "cam1"):
                assert [bytes(b) for b in raw_st["observation"][cam]] == \
                    [reader.image_bytes(cam, i) for i in range(7)]
            assert st["language_instruction"][0].decode() == reader.instructions()[0]
        assert st["reward"][-1] == 1.0 and st["is_last"][-1]


def test_bench_export_prints_speed_and_tfds_comparison_as_json(capsys):
    from vla_studio import cli

    code = cli.main(["bench", "export", "--json", "--episodes", "2", "--steps", "6", "--repeat", "1",
                     "--cameras", "1", "--size", "64x48"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 2 and result["steps"] == 12
    for key in ("episodes_per_s", "mb_per_s", "tfds_builder_s", "speedup_vs_tfds"):
        assert isinstance(result[key], float) and result[key] > 0


def test_episodes_recorded_through_the_control_loop_export_with_depth(make_station, tmp_path):
    """The whole path: dry-run station, real Recorder, RLDS export, tensorflow_datasets."""
    from vla_studio.data.episode_file import EpisodeReader
    from vla_studio.data.labels import EpisodeLabels
    from vla_studio.data.recorder import Recorder

    from tests.data.conftest import wait_until

    station = make_station()
    recorder = Recorder(station, tmp_path / "dataset")
    recorder.connect()
    try:
        for success in (True, False):
            recorder.start(EpisodeLabels("pick up the red cube", ("grab the red cube",)))
            wait_until(lambda: (recorder.status().episode.steps
                                if recorder.status().episode else 0) >= 12, what="12 steps")
            recorder.stop(success=success)
            assert recorder.wait_idle()
    finally:
        recorder.disconnect()
    report = RldsExporter(tmp_path / "dataset", tmp_path / "out",
                          ExportOptions(name="dry_run", include_depth=True)).run()
    assert report.total_episodes == 2 and not report.skipped
    builder = tfds.builder("dry_run", data_dir=str(tmp_path / "out"))
    # the recorded station profile names the robot, whose own features name the elements
    ee_pos = builder.info.features["steps"]["observation"]["ee_pos"].doc.desc
    assert ee_pos == "state ee_pos [x, y, z] (m; end-effector position in the robot base frame)"
    meta = json.loads((report.dataset_dir / "metadata.json").read_text())
    assert {k["key"]: k["names_from"] for k in meta["state"]["keys"]} == {
        "ee_pos": "robot", "gripper": "robot"}
    skip = tfds.decode.SkipDecoding()
    raw = tfds.as_numpy(builder.as_dataset(split="train", decoders={
        "steps": {"observation": {"front": skip, "wrist": skip}}}))
    decoded = {e["episode_metadata"]["episode_id"]: e for e in load(builder, "train")}
    for episode in raw:
        md = episode["episode_metadata"]
        st, dec = steps_of(episode), steps_of(decoded[md["episode_id"]])
        with EpisodeReader(md["file_path"].decode()) as reader:
            n = reader.num_steps
            assert len(st["action"]) == n and md["success"] == int(reader.success())
            # the failure was stopped by the operator: truncated, not terminal
            assert list(st["is_last"]).count(True) == 1 and st["is_last"][-1]
            assert st["is_terminal"].any() == bool(reader.success()) == st["is_terminal"][-1]
            np.testing.assert_array_equal(st["action"], reader.step("action"))
            for cam in ("front", "wrist"):
                frames = list(reader.iter_image_bytes(cam))
                assert [bytes(b) for b in st["observation"][cam]] == gap_filled(frames)
            np.testing.assert_array_equal(dec["observation"]["wrist_depth"],
                                          reader.depth("wrist")[..., None])
            assert {s.decode() for s in st["language_instruction_2"]} == {"grab the red cube"}


def test_hand_written_example_encoding_parses_with_tensorflows_protobuf():
    from vla_studio.data.rlds.example import ExampleBuilder

    big = np.random.default_rng(0).integers(0, 256, 40_000, np.uint8)  # kept by reference
    ex = ExampleBuilder()
    ex.add_floats("steps/action", np.arange(14, dtype=np.float64).reshape(2, 7))
    ex.add_ints("steps/is_first", np.array([True, False]))
    ex.add_ints("ints", np.array([-1, 0, 300, 2**40]))
    ex.add_text("text", ["héllo", ""])
    ex.add_bytes("frames", [big, b"small", big[:10]])
    ex.add_floats("empty", np.zeros(0))
    parsed = tf.train.Example.FromString(ex.serialize()).features.feature
    assert list(parsed["steps/action"].float_list.value) == list(range(14))
    assert list(parsed["steps/is_first"].int64_list.value) == [1, 0]
    assert list(parsed["ints"].int64_list.value) == [-1, 0, 300, 2**40]
    assert [v.decode() for v in parsed["text"].bytes_list.value] == ["héllo", ""]
    assert list(parsed["frames"].bytes_list.value) == [big.tobytes(), b"small", big[:10].tobytes()]
    assert len(parsed["empty"].float_list.value) == 0
    assert len(ex.parts()) > 2 and b"".join(ex.parts()) == ex.serialize()


OXE_STATE = ("ee_position", "gripper", "joints")


@pytest.fixture(scope="module")
def oxe_named(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("rlds_roundtrip_oxe")
    report = RldsExporter(source, out, ExportOptions(
        name="vla_demo_oxe", include_depth=True, state_keys=OXE_STATE,
        camera_map={"front": "image", "wrist": "wrist_image"})).run()
    return out, report


def test_open_x_embodiment_names_load_through_tfds(oxe_named):
    out, report = oxe_named
    builder = tfds.builder("vla_demo_oxe", data_dir=str(out))
    observation = builder.info.features["steps"]["observation"]
    assert set(observation.keys()) == {"image", "wrist_image", "image_depth", "state",
                                       *OXE_STATE}
    assert observation["state"].shape == (10,)  # 3 + 1 + 6, in the order asked for
    episodes = load(builder, "train")
    assert len(episodes) == report.total_episodes == 6
    for ep in episodes:
        src = Source(ep["episode_metadata"]["file_path"].decode())
        st = steps_of(ep)
        state = np.concatenate([src.state[k].reshape(src.n, -1) for k in OXE_STATE], axis=1)
        np.testing.assert_array_equal(st["observation"]["state"], state)
        np.testing.assert_array_equal(st["observation"]["image_depth"], src.depth[..., None])
        for cam, name in (("front", "image"), ("wrist", "wrist_image")):
            first = tf.io.decode_image(src.frames[cam][0], channels=3).numpy()
            np.testing.assert_array_equal(st["observation"][name][0], first)


def test_tfds_loads_and_exposes_the_meaning_of_every_number(tmp_path):
    from tests.data.rlds_episode_files import SIM_PROFILE, SIM_STATE_SHAPES

    write_dataset(tmp_path / "src", [EpisodeSpec(seed=i, state_shapes=dict(SIM_STATE_SHAPES),
                                                 station_profile=SIM_PROFILE, success=i % 2)
                                     for i in range(2)])
    RldsExporter(tmp_path / "src", tmp_path / "out", ExportOptions(
        name="meanings", state_keys=("ee_pos", "ee_quat", "gripper"),
        camera_map={"front": "image", "wrist": "wrist_image"})).run()
    builder = tfds.builder_from_directory(str(tmp_path / "out" / "meanings" / "1.0.0"))
    steps = builder.info.features["steps"]
    observation = steps["observation"]
    state = observation["state"].doc.desc
    assert "ee_quat [w, x, y, z]" in state and "order w x y z" in state
    assert "gripper [opening] (measured gripper opening, 1 open, 0 closed)" in state
    assert observation["gripper"].doc.value_range == "0 (closed) to 1 (open)"
    assert "robot base frame" in observation["ee_pos"].doc.desc
    action = steps["action"].doc.desc
    assert "metres" in action and "radians" in action and "1 open, 0 closed" in action
    assert "truncated" in steps["is_terminal"].doc.desc
    assert steps["reward"].doc.value_range == "0 or 1"
    episodes = load(builder, "train")
    assert sorted(bool(steps_of(e)["is_terminal"][-1]) for e in episodes) == [False, True]


def test_video_storage_exports_the_same_episode_as_jpeg(tmp_path):
    """An episode transcoded to video exports like its JPEG original: the same steps, and
    frames (decoded from the video, re-encoded as JPEG) within the transcode's PSNR."""
    import shutil as sh

    from tests.data.video_episodes import small_episode
    from vla_studio.data.transcode import transcode_episode
    from vla_studio.data.video_storage import open_frame_source

    jpeg_root, video_root = tmp_path / "jpeg", tmp_path / "video"
    path = small_episode(jpeg_root, steps=30)
    (video_root / "episodes").mkdir(parents=True)
    video_path = video_root / "episodes" / path.name
    sh.copy(path, video_path)
    assert transcode_episode(video_path).outcome == "transcoded"
    loaded = {}
    for name, root in (("jpeg", jpeg_root), ("video", video_root)):
        report = RldsExporter(root, tmp_path / f"out_{name}", ExportOptions(name=name)).run()
        assert report.total_episodes == 1 and not report.skipped
        (episode,) = load(tfds.builder(name, data_dir=str(tmp_path / f"out_{name}")), "train")
        loaded[name] = steps_of(episode)
    jpeg, video = loaded["jpeg"], loaded["video"]
    np.testing.assert_array_equal(jpeg["action"], video["action"])
    np.testing.assert_array_equal(jpeg["observation"]["state"], video["observation"]["state"])
    source = open_frame_source(path)
    for cam in ("front", "wrist"):
        assert video["observation"][cam].shape == jpeg["observation"][cam].shape
        for step in range(30):
            assert cv2.PSNR(jpeg["observation"][cam][step], video["observation"][cam][step]) > 25
        stored = source.read_color(cam, 29)
        assert cv2.PSNR(stored, video["observation"][cam][29]) > 25
    source.close()
