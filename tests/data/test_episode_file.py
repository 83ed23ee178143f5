"""The episode file layout, written by the writer and read back by EpisodeReader (the contract
with the RLDS exporter), plus annotations that override the recording without touching it."""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest

from vla_studio.core.safety import SafetyFlag
from vla_studio.core.types import Frame, Observation, SourceKind, StageTiming, Step
from vla_studio.data.annotations import (AnnotationError, annotation_history, undo_annotation,
                                         write_annotations)
from vla_studio.data.episode_file import (FORMAT, FORMAT_VERSION, RECORDING_SUFFIX, EpisodeFileError,
                                          EpisodeReader)
from vla_studio.data.episode_writer import EpisodeFileWriter, seal_episode
from vla_studio.data.step_encoder import CameraSchema, EpisodeSchema, StepEncoder

TIMING = StageTiming(0.1, 0.1, 0.1, 0.1, 0.1, 0.0)
H, W = 48, 64


def color_image(k: int) -> np.ndarray:
    """A smooth image that JPEG keeps close to the original."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([(x * 4 + k * 10) % 256, (y * 5) % 256, np.full_like(x, 40 * k % 256)], -1)
    return img.astype(np.uint8)


def depth_image(k: int) -> np.ndarray:
    return (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 3 + k).astype(np.uint16)


def make_schema(image_format: str = "jpeg", with_policy: bool = False) -> EpisodeSchema:
    cams = (CameraSchema("front", "synthetic", True, W, H, None, 30.0, 0.25),
            CameraSchema("wrist", "synthetic", True, W, H, (H, W), 15.0, 0.25,
                         {"width": W, "height": H, "fx": 30.0, "fy": 30.0, "cx": 32.0, "cy": 24.0},
                         0.001))
    return EpisodeSchema(("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"), "ee_delta",
                         {"ee_pos": (3,), "gripper": (1,)}, cams, image_format, 95, with_policy)


def make_steps(n: int, t0: float = 100.0) -> list[Step]:
    """Steps at 20 Hz; front delivers a new frame every step, wrist every other step (shared);
    step 3 has no wrist frame; step 2 is a hold while paused; step 4 is clipped by the safety
    filter."""
    steps = []
    for i in range(n):
        t = t0 + i * 0.05
        front = Frame("front", i, t - 0.01, color_image(i), None, t - 0.011)
        wrist = None if i == 3 else Frame("wrist", i // 2, t - 0.02, color_image(50 + i // 2),
                                          depth_image(i // 2), None)
        obs = Observation(i, t, {"ee_pos": np.array([0.4, 0.0, 0.3 + i * 0.001]),
                                 "gripper": np.array([1.0])}, {"front": front, "wrist": wrist})
        hold = i == 2
        action = np.array([0.001 * i, 0, 0, 0, 0, 0, 1.0])
        steps.append(Step(
            index=i, t=t, observation=obs, action=np.zeros(7) if hold else action,
            requested=None if hold else action, source=SourceKind.HOLD if hold else
            (SourceKind.POLICY if i % 2 else SourceKind.TELEOP),
            safety_flags=int(SafetyFlag.CLIPPED_WORKSPACE) if i == 4 else 0,
            hold_reason="paused: new episode" if hold else "", timing=TIMING,
            extras={"policy_action": action * 2, "confidence": 0.5 + 0.01 * i}))
    return steps


def write_episode(path, steps, schema, *, success=1, batch=3, attrs=None):
    writer = EpisodeFileWriter(path, schema, {"episode_id": "abc", "language_instruction": "pick",
                                              "language_instructions": ["pick", "grab"],
                                              "start_time_unix": 1.7e9, "start_time_monotonic": 99.0,
                                              **(attrs or {})})
    writer.create()
    encoder = StepEncoder(schema)
    for i, step in enumerate(steps):
        missing = [c.name for c in schema.cameras if step.observation.frames.get(c.name) is None]
        encoder.add(step, missing)
        if encoder.pending >= batch or i == len(steps) - 1:
            writer.append(encoder.take())
            writer.commit()
    writer.close()
    seal_episode(path, writer.committed_steps, {"status": "complete", "flags": ["x"]}, success)
    return encoder


def test_layout_round_trip_through_the_reader(tmp_path):
    path = tmp_path / "ep.h5"
    steps = make_steps(8)
    schema = make_schema(with_policy=True)
    encoder = write_episode(path, steps, schema)
    with EpisodeReader(path) as ep:
        a = ep.attrs
        assert a["format"] == FORMAT and a["format_version"] == FORMAT_VERSION
        assert a["status"] == "complete" and a["success"] == 1 and a["num_steps"] == 8
        assert a["language_instructions"] == ["pick", "grab"] and a["flags"] == ["x"]
        assert ep.num_steps == 8 and ep.cameras == ["front", "wrist"]
        assert ep.depth_cameras == ["wrist"] and ep.image_format("front") == "jpeg"
        assert ep.image_size("wrist") == (W, H)
        np.testing.assert_allclose(ep.step("action"), np.stack([s.action for s in steps]), atol=1e-7)
        req = ep.step("requested_action")
        assert np.isnan(req[2]).all() and not np.isnan(req[1]).any()
        assert ep.step("action_source").tolist() == [1, 2, 4, 2, 1, 2, 1, 2]
        labels = json.loads(ep.file["steps/action_source"].attrs["labels"])
        assert labels == ["hold", "teleop", "policy", "intervention", "paused"]
        assert ep.step("safety_flags")[4] == int(SafetyFlag.CLIPPED_WORKSPACE)
        assert ep.step("is_first").tolist() == [True] + [False] * 7
        assert ep.step("is_last").tolist() == [False] * 7 + [True]
        assert ep.step("is_terminal").tolist() == [False] * 7 + [True]
        assert ep.step("reward").tolist() == [0.0] * 7 + [1.0]
        assert ep.step("discount").tolist() == [1.0] * 8
        np.testing.assert_array_equal(ep.step("timestamp"), [s.t for s in steps])
        # t0_unix maps the monotonic tick time of step 0 to wall-clock time
        assert ep.file["steps/timestamp"].attrs["t0_unix"] == pytest.approx(1.7e9 + (100.0 - 99.0))
        np.testing.assert_allclose(ep.step("policy_action")[1], steps[1].action * 2, atol=1e-6)
        assert ep.step("confidence")[3] == pytest.approx(0.53)
        state = ep.state()
        assert state["ee_pos"].shape == (8, 3) and state["ee_pos"].dtype == np.float32
        assert state["ee_pos"][5, 2] == pytest.approx(0.305)
        # per-camera timing, true capture and device times
        cap = ep.step("observation/image/front/capture_time")
        np.testing.assert_allclose(cap, [s.t - 0.01 for s in steps])
        np.testing.assert_allclose(ep.step("observation/image/front/device_time"),
                                   [s.t - 0.011 for s in steps])
        assert np.isnan(ep.step("observation/image/wrist/device_time")).all()
        assert ep.step("observation/image/wrist/frame_index").tolist() == [0, 0, 1, -1, 2, 2, 3, 3]
        # images decode back to what the camera produced
        for i in (0, 5, 7):
            img = cv2.cvtColor(cv2.imdecode(np.frombuffer(ep.image_bytes("front", i), np.uint8),
                                            cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            assert np.abs(img.astype(int) - color_image(i).astype(int)).mean() < 3.0
        assert ep.image_bytes("wrist", 3) == b""
        assert list(ep.iter_image_bytes("wrist", block_bytes=100)) == \
            [ep.image_bytes("wrist", i) for i in range(8)]
        depth = ep.depth("wrist")
        assert depth.dtype == np.uint16 and depth.shape == (8, H, W)
        np.testing.assert_array_equal(depth[4], depth_image(2))
        assert not depth[3].any()  # no frame at step 3: zeros
        assert ep.depth("front") is None
        assert ep.instructions() == ["pick", "grab"] and ep.success() is True and ep.trim() == (0, 8)
    assert encoder.camera_stats["wrist"].duplicates == 3 and encoder.camera_stats["wrist"].gaps == 1


def test_a_frame_seen_by_consecutive_steps_is_stored_once_and_shared(tmp_path):
    path = tmp_path / "ep.h5"
    write_episode(path, make_steps(8), make_schema())
    with EpisodeReader(path) as ep:
        index = ep.image_index("wrist")
        assert (index[0] == index[1]).all() and (index[4] == index[5]).all()
        assert index[3, 1] == 0  # the step without a frame points at no bytes
        distinct = {tuple(r) for r in index.tolist() if r[1]}
        assert len(distinct) == 4
        assert ep.file["steps/observation/image/wrist/data"].shape[0] == sum(l for _, l in distinct)


def test_png_images_are_lossless(tmp_path):
    path = tmp_path / "ep.h5"
    write_episode(path, make_steps(3), make_schema("png"))
    with EpisodeReader(path) as ep:
        assert ep.image_format("front") == "png"
        img = cv2.imdecode(np.frombuffer(ep.image_bytes("front", 2), np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), color_image(2))


def test_failure_has_no_reward_and_success_unknown_reads_as_none(tmp_path):
    for success, expected in ((0, False), (-1, None)):
        path = tmp_path / f"ep{success}.h5"
        write_episode(path, make_steps(4), make_schema(), success=success)
        with EpisodeReader(path) as ep:
            assert ep.success() is expected
            assert not ep.step("reward").any()
            assert not ep.has_step("policy_action")


def test_a_file_being_recorded_reads_its_committed_steps(tmp_path):
    path = tmp_path / f"ep{RECORDING_SUFFIX}"
    schema = make_schema()
    writer = EpisodeFileWriter(path, schema, {"episode_id": "live", "language_instruction": "go"})
    writer.create()
    encoder = StepEncoder(schema)
    for step in make_steps(5):
        encoder.add(step, [] if step.observation.frames["wrist"] else ["wrist"])
    writer.append(encoder.take())
    writer.commit()
    with EpisodeReader(path) as ep:
        assert ep.attrs["status"] == "recording" and ep.num_steps == 5
        assert len(ep.image_bytes("front", 4)) > 0
    writer.close()


def test_annotations_override_the_recording_and_every_edit_can_be_undone(tmp_path):
    path = tmp_path / "ep.h5"
    write_episode(path, make_steps(8), make_schema())
    write_annotations(path, {"instructions": ["put the cube down", "lower the cube"],
                             "success": False})
    write_annotations(path, {"trim": [1, 6], "quality": 4, "notes": "slow start",
                             "segments": [{"start": 1, "end": 3, "label": "reach"}]})
    with EpisodeReader(path) as ep:
        assert ep.instructions() == ["put the cube down", "lower the cube"]
        assert ep.success() is False and ep.trim() == (1, 6)
        assert ep.annotations["segments"] == [{"start": 1, "end": 3, "label": "reach"}]
        assert ep.attrs["language_instruction"] == "pick"  # the recording is untouched
        assert ep.file["steps/reward"][-1] == 1.0 and ep.step("reward")[-1] == 0.0  # derived
    assert len(annotation_history(path)) == 2
    assert undo_annotation(path) is True
    with EpisodeReader(path) as ep:
        assert ep.trim() == (0, 8) and "quality" not in ep.annotations
        assert ep.success() is False
    assert undo_annotation(path) is True and undo_annotation(path) is False
    with EpisodeReader(path) as ep:
        assert ep.instructions() == ["pick", "grab"] and ep.success() is True


@pytest.mark.parametrize("changes, message", [
    ({"trim": [5, 3]}, "trim"), ({"quality": 9}, "quality"), ({"instructions": [""]}, "non-empty"),
    ({"segments": [{"start": 0, "end": 99, "label": "x"}]}, "outside"), ({"colour": 1}, "unknown"),
])
def test_invalid_annotations_are_refused_and_nothing_is_written(tmp_path, changes, message):
    path = tmp_path / "ep.h5"
    write_episode(path, make_steps(8), make_schema())
    with pytest.raises(AnnotationError, match=message):
        write_annotations(path, changes)
    with h5py.File(path, "r") as f:
        assert "annotations" not in f


def test_reader_names_files_that_are_not_episodes(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(EpisodeFileError, match="not a VLA Studio episode"):
        EpisodeReader(other).attrs
    with pytest.raises(EpisodeFileError, match="no such episode"):
        EpisodeReader(tmp_path / "missing.h5").num_steps
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(EpisodeFileError, match="not a readable HDF5"):
        EpisodeReader(tmp_path / "junk.h5").num_steps


def test_missing_state_values_and_bad_actions_become_nan_not_crashes(tmp_path):
    schema = make_schema()
    encoder = StepEncoder(schema)
    step = make_steps(1)[0]
    broken = Step(0, step.t, Observation(0, step.t, {"ee_pos": np.array([1.0, 2.0])}, step.observation.frames),
                  np.array([]), np.array([1.0, 2.0]), SourceKind.HOLD, 0, "robot error", TIMING)
    encoder.add(broken)
    batch = encoder.take()
    assert np.isnan(batch.action[0]).all() and np.isnan(batch.requested[0]).all()
    assert np.isnan(batch.state["ee_pos"][0]).all() and np.isnan(batch.state["gripper"][0]).all()
