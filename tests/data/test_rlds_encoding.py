"""RLDS export building blocks, without TensorFlow: CRC-32C, TFRecord framing, image headers,
frame gap filling and pass-through, the plan (names, sizes, splits, layouts) and features.json."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from vla_studio.data.rlds import crc32c as crc_module
from vla_studio.data.rlds import tfrecord as tfrecord_module
from vla_studio.data.rlds.crc32c import crc32c, crc32c_numpy, crc32c_of_parts, masked_crc32c
from vla_studio.data.rlds.episode_source import CameraLayout, EpisodeSkipped, EpisodeSummary
from vla_studio.data.rlds.example import ExampleBuilder, varint
from vla_studio.data.rlds.images import FrameEncoder, collect_frames, encoded_image_shape
from vla_studio.data.rlds.plan import (ExportError, ExportOptions, make_plan, parse_image_size,
                                       snake_case)
from vla_studio.data.rlds.tfrecord import TFRecordWriter

from tests.data.rlds_episode_files import encode, scene_bgr


def crc32c_bitwise(data: bytes) -> int:
    """Textbook bit-at-a-time CRC-32C, independent of the module's tables."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize("impl", [crc32c, crc32c_numpy])
def test_crc32c_matches_the_standard_check_value(impl):
    assert impl(b"123456789") == 0xE3069283  # the CRC-32C catalogue's check value
    assert impl(b"") == 0


@pytest.mark.parametrize("n", [1, 7, 255, 256, 257, 1023, 1024, 4097, 65_539, 524_289, 1_100_001])
def test_crc32c_numpy_blocks_and_lanes_agree_with_bitwise_reference(n):
    data = np.random.default_rng(n).integers(0, 256, n, np.uint8).tobytes()
    expected = crc32c_bitwise(data)
    assert crc32c_numpy(data) == expected
    assert crc32c(data) == crc32c(memoryview(data)) == crc32c(bytearray(data)) == expected


@pytest.mark.parametrize("hardware", [True, False])
def test_checksum_of_pieces_equals_checksum_of_their_concatenation(hardware, monkeypatch):
    if not hardware:
        monkeypatch.setattr(crc_module, "_hardware_crc32c", None)  # the numpy fallback
    block = np.random.default_rng(1).integers(0, 256, 300_000, np.uint8)
    block.flags.writeable = False
    parts = [b"\x0a\x05", block[:100_000], b"", memoryview(b"xyz"), block[100_000:]]
    assert crc32c_of_parts(parts) == crc32c_bitwise(b"".join(parts))


def read_records(path: Path) -> list[bytes]:
    """Parse TFRecord framing, checking both masked checksums with the bitwise reference."""
    def masked(c: int) -> int:
        return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    raw, records, i = path.read_bytes(), [], 0
    while i < len(raw):
        length_bytes = raw[i:i + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        assert struct.unpack("<I", raw[i + 8:i + 12])[0] == masked(crc32c_bitwise(length_bytes))
        data = raw[i + 12:i + 12 + length]
        assert struct.unpack("<I", raw[i + 12 + length:i + 16 + length])[0] == \
            masked(crc32c_bitwise(data))
        records.append(data)
        i += 16 + length
    return records


def test_tfrecord_writer_frames_records_with_masked_checksums(tmp_path):
    payloads = [b"", b"x", bytes(range(256)) * 40]
    with TFRecordWriter(tmp_path / "f.tfrecord") as w:
        for p in payloads:
            w.write(p)
    assert read_records(tmp_path / "f.tfrecord") == payloads
    assert w.records == 3 and w.bytes_written == sum(16 + len(p) for p in payloads)
    assert masked_crc32c(b"") == ((0 >> 15 | 0 << 17) + 0xA282EAD8) & 0xFFFFFFFF


def test_tfrecord_writer_finishes_records_the_kernel_took_in_part(tmp_path, monkeypatch):
    real_writev = tfrecord_module.os.writev

    def stingy_writev(fd, buffers):  # accept at most 777 bytes per call, like a busy pipe
        return real_writev(fd, [bytes(b"".join(buffers)[:777])])

    monkeypatch.setattr(tfrecord_module.os, "writev", stingy_writev)
    block = np.arange(5000, dtype=np.uint16).view(np.uint8)
    payloads = [[b"head", block[:3000], b"", block[3000:]], [b"x" * 10]]
    with TFRecordWriter(tmp_path / "f.tfrecord") as w:
        for parts in payloads:
            w.write(parts)
    monkeypatch.undo()
    assert read_records(tmp_path / "f.tfrecord") == [b"".join(p) for p in payloads]


def test_varint_encodes_multibyte_and_negative_int64():
    assert varint(1) == b"\x01" and varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes, two's complement


def test_example_builder_rejects_a_key_added_twice():
    ex = ExampleBuilder()
    ex.add_floats("steps/action", np.zeros(3))
    with pytest.raises(ValueError, match="added twice"):
        ex.add_ints("steps/action", np.zeros(3))


def test_image_headers_give_format_size_and_channels():
    bgr = scene_bgr(96, 72, 0, 0)
    assert encoded_image_shape(encode(bgr, "jpeg")) == ("jpeg", 72, 96, 3)
    assert encoded_image_shape(encode(bgr, "png")) == ("png", 72, 96, 3)
    progressive = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert encoded_image_shape(progressive) == ("jpeg", 72, 96, 3)
    gray = cv2.imencode(".jpg", bgr[:, :, 0])[1].tobytes()
    assert encoded_image_shape(gray) == ("jpeg", 72, 96, 1)
    assert encoded_image_shape(b"not an image") is None


def test_steps_without_frame_repeat_previous_and_leading_gaps_take_first():
    frames, filled = collect_frames([b"", b"A", b"", b"B", b""], 0, 5, "front")
    assert frames == [b"A", b"A", b"A", b"B", b"B"] and filled == 3


def test_camera_without_any_frame_skips_the_episode():
    with pytest.raises(EpisodeSkipped, match="camera 'wrist' has no image"):
        collect_frames([b""] * 4, 2, 6, "wrist")


def test_frames_that_fit_pass_through_unchanged_and_others_are_resized():
    jpeg = encode(scene_bgr(96, 72, 0, 0), "jpeg")
    same = FrameEncoder(96, 72, "jpeg")
    out, converted = same.encode_all([jpeg, jpeg])
    assert out[0] is jpeg and converted == 0
    small = FrameEncoder(32, 24, "jpeg")
    out, converted = small.encode_all([jpeg, bytes(bytearray(jpeg)), jpeg])  # equal frames
    assert converted == 1 and out[0] is out[1] is out[2]
    assert encoded_image_shape(out[0]) == ("jpeg", 24, 32, 3)
    png = FrameEncoder(96, 72, "png").encode_all([jpeg])[0][0]
    assert encoded_image_shape(png) == ("png", 72, 96, 3)


def test_dataset_name_must_be_snake_case_and_error_suggests_one():
    with pytest.raises(ExportError, match="'pick_cube_v2'"):
        ExportOptions(name="PickCube-v2").validate()
    assert snake_case("2024 demos") == "dataset_2024_demos"
    ExportOptions(name="pick_cube_v2").validate()


@pytest.mark.parametrize("bad", [dict(val_fraction=1.0), dict(val_fraction=-0.1),
                                 dict(image_size=(4, 4)), dict(version="1.0"),
                                 dict(jpeg_quality=0), dict(shard_mb=0)])
def test_bad_options_are_rejected_with_a_message(bad):
    with pytest.raises(ExportError):
        ExportOptions(name="ok", **bad).validate()


def test_image_size_accepts_square_and_width_by_height():
    assert parse_image_size("224") == (224, 224)
    assert parse_image_size("320x240") == (320, 240)
    with pytest.raises(ExportError, match="WIDTHxHEIGHT"):
        parse_image_size("big")


def summary(i: int, *, success: bool | None = True, front=(96, 72), action_dim=7,
            instructions=("pick",)) -> EpisodeSummary:
    return EpisodeSummary(
        path=Path(f"/d/episodes/e{i}.h5"), episode_id=f"id-{i}", created="", status="complete",
        success=success, num_steps=10, trim=(0, 10), instructions=tuple(instructions),
        cameras={"front": CameraLayout("jpeg", *front, False)},
        state_shapes={"joints": (6,), "gripper": ()}, action_dim=action_dim,
        attrs={"action_names": json.dumps([f"j{k}" for k in range(action_dim)])})


def test_val_split_is_stable_when_the_dataset_grows():
    opts = ExportOptions(name="d", val_fraction=0.2)
    small = make_plan([summary(i) for i in range(20)], [], opts)
    big = make_plan([summary(i) for i in range(40)], [], opts)
    val_small = {e.summary.episode_id for e in small.episodes if e.split == "val"}
    val_big = {e.summary.episode_id for e in big.episodes if e.split == "val"}
    assert len(val_small) == 4 and len(val_big) == 8
    assert len(val_small & val_big) >= 2  # hash order: earlier val episodes mostly stay in val
    assert small.splits == ("train", "val")


def test_tiny_dataset_warns_that_val_would_be_empty():
    plan = make_plan([summary(i) for i in range(3)], [], ExportOptions(name="d", val_fraction=0.05))
    assert plan.splits == ("train",)
    assert any("val split would be empty" in w for w in plan.warnings)
    plan = make_plan([summary(i) for i in range(3)], [], ExportOptions(name="d"))
    assert any("train[95%:]" in w for w in plan.warnings)


def test_episodes_with_another_layout_are_skipped_with_the_difference():
    summaries = [summary(i) for i in range(3)] + [summary(9, front=(64, 48))]
    plan = make_plan(summaries, [], ExportOptions(name="d"))
    assert len(plan.episodes) == 3
    (path, reason), = plan.skipped
    assert path.name == "e9.h5" and "front 64x48" in reason and "--image-size" in reason
    resized = make_plan(summaries, [], ExportOptions(name="d", image_size=(32, 32)))
    assert len(resized.episodes) == 4 and not resized.skipped


def test_success_only_with_no_success_explains_why_nothing_is_exported():
    with pytest.raises(ExportError, match="not marked successful"):
        make_plan([summary(0, success=False), summary(1, success=None)], [],
                  ExportOptions(name="d", success_only=True))


def test_features_json_declares_rlds_steps_with_static_shapes():
    plan = make_plan([summary(0, instructions=("a", "b")), summary(1)], [], ExportOptions(name="d"))
    js = plan.schema().features_json()
    steps = js["featuresDict"]["features"]["steps"]
    assert steps["pythonClassName"].endswith("dataset_feature.Dataset")
    assert steps["sequence"]["length"] == "-1"
    feats = steps["sequence"]["feature"]["featuresDict"]["features"]
    obs = feats["observation"]["featuresDict"]["features"]
    assert obs["front"]["image"] == {"dtype": "uint8", "encodingFormat": "jpeg",
                                     "shape": {"dimensions": ["72", "96", "3"]}}
    assert obs["state"]["tensor"]["shape"] == {"dimensions": ["7"]}  # gripper 1 + joints 6
    assert obs["gripper"]["pythonClassName"].endswith("scalar.Scalar")
    assert feats["action"]["tensor"]["shape"] == {"dimensions": ["7"]}
    assert {"language_instruction", "language_instruction_2", "is_first", "is_last",
            "is_terminal", "reward", "discount"} <= set(feats)
    assert plan.state.slices() == {"gripper": (0, 1), "joints": (1, 7)}
