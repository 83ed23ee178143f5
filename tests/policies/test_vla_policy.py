"""The reference VLA as a Policy: spec, inference, save/load equality, bad checkpoints."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from vla_studio.core.types import Frame, Observation
from vla_studio.policies.base import ActionChunk, Policy
from vla_studio.policies.registry import POLICIES
from vla_studio.policies.vla import checkpoint
from vla_studio.policies.vla.checkpoint import CheckpointError
from vla_studio.policies.vla.policy import VLAPolicy, VLAPolicyConfig, untrained_policy
from tests.policies.conftest import TINY_MODEL


def station_observation(seed: int = 0) -> Observation:
    """An observation shaped like the default simulated station's."""
    rng = np.random.default_rng(seed)
    t = time.monotonic()
    frames = {"front": Frame("front", 1, t, rng.integers(0, 255, (240, 320, 3), np.uint8)),
              "wrist": Frame("wrist", 1, t, rng.integers(0, 255, (224, 224, 3), np.uint8))}
    state = {"ee_pos": np.array([0.45, 0.0, 0.3]), "ee_quat": np.array([0.0, 1.0, 0.0, 0.0]),
             "gripper": np.array([1.0]), "joint_pos": np.zeros(7)}
    return Observation(7, t, state, frames)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An untrained tiny policy saved as a native checkpoint directory."""
    policy = untrained_policy(seed=3, model=TINY_MODEL)
    return policy, checkpoint.write(policy.checkpoint, tmp_path_factory.mktemp("ckpt") / "tiny")


def test_vla_is_a_built_in_policy_kind():
    assert POLICIES.infos()["vla"].origin == "built-in"
    assert issubclass(POLICIES.load("vla"), Policy)


def test_spec_is_readable_from_the_checkpoint_before_loading(saved):
    _, path = saved
    spec = VLAPolicy(VLAPolicyConfig(checkpoint=str(path))).spec
    assert spec.cameras == ("front", "wrist") and spec.image_size == TINY_MODEL.image_size
    assert list(spec.state_features) == ["ee_pos", "ee_quat", "gripper"]
    assert spec.action_space.kind == "ee_delta" and spec.chunk_size == TINY_MODEL.chunk_size
    assert spec.control_rate_hz == 20.0


def test_infer_returns_a_chunk_with_token_probability_confidence(saved):
    _, path = saved
    policy = VLAPolicy(VLAPolicyConfig(checkpoint=str(path)))
    policy.load()
    assert set(policy.spec.normalization) >= {"action_q01", "action_q99", "state_mean", "state_std"}
    policy.reset("pick up the red cube")
    obs = station_observation()
    chunk = policy.infer(obs)
    assert isinstance(chunk, ActionChunk) and chunk.t_observation == obs.t
    h = TINY_MODEL.chunk_size
    assert chunk.actions.shape == (h, 7) and chunk.confidence.shape == (h,)
    assert ((chunk.confidence > 0) & (chunk.confidence <= 1)).all()
    probs = chunk.extras["token_probability"]
    assert probs.shape == (h, 7)
    np.testing.assert_allclose(chunk.confidence, np.exp(np.log(probs).mean(axis=1)))
    q01, q99 = policy.spec.normalization["action_q01"], policy.spec.normalization["action_q99"]
    assert ((chunk.actions >= q01 - 1e-9) & (chunk.actions <= q99 + 1e-9)).all()
    assert chunk.latency_ms > 0


def test_a_saved_checkpoint_loads_to_identical_actions(saved):
    original, path = saved
    loaded = VLAPolicy(VLAPolicyConfig(checkpoint=str(path)))
    loaded.load()
    for policy in (original, loaded):
        policy.reset("pick up the blue cube")
    for seed in range(3):
        a, b = original.infer(station_observation(seed)), loaded.infer(station_observation(seed))
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.confidence, b.confidence)
    for name, tensor in original.checkpoint.weights.items():
        assert np.array_equal(tensor.numpy(), loaded.checkpoint.weights[name].numpy()), name


def test_the_instruction_changes_the_answer_and_unknown_words_are_reported(saved):
    policy, _ = saved
    obs = station_observation()
    policy.reset("pick up the red cube")
    red = policy.infer(obs).extras["token_probability"]
    policy.reset("pick up the purple cube")
    assert policy.unknown_words == ["purple"]
    assert not np.array_equal(policy.infer(obs).extras["token_probability"], red)


def test_a_missing_camera_or_state_feature_is_a_clear_error(saved):
    policy, _ = saved
    policy.reset("pick up the red cube")
    obs = station_observation()
    with pytest.raises(ValueError, match="camera 'wrist'"):
        policy.infer(Observation(obs.tick, obs.t, obs.state, {"front": obs.frames["front"]}))
    with pytest.raises(ValueError, match="state feature 'ee_quat'"):
        policy.infer(Observation(obs.tick, obs.t, {"ee_pos": obs.state["ee_pos"],
                                                   "gripper": obs.state["gripper"]}, obs.frames))


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _forge_header(path):
    """Garbage weights whose size and checksum config.json is made to agree with."""
    path.write_bytes(b"\xff" * 64)
    cfg_path = path.parent / checkpoint.CONFIG
    cfg = json.loads(cfg_path.read_text())
    import hashlib
    cfg["files"][path.name] = {"bytes": 64, "sha256": hashlib.sha256(b"\xff" * 64).hexdigest()}
    cfg_path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("damage, file, words", [
    (lambda d: _truncate(d / checkpoint.WEIGHTS), checkpoint.WEIGHTS, "truncated"),
    (lambda d: _flip_byte(d / checkpoint.WEIGHTS), checkpoint.WEIGHTS, "corrupt"),
    (lambda d: _forge_header(d / checkpoint.WEIGHTS), checkpoint.WEIGHTS, "corrupt safetensors"),
    (lambda d: _truncate(d / checkpoint.CONFIG), checkpoint.CONFIG, "not valid JSON"),
    (lambda d: (d / checkpoint.NORMALIZATION).unlink(), checkpoint.NORMALIZATION, "missing"),
    (lambda d: _truncate(d / checkpoint.TOKENIZER, 0.9), checkpoint.TOKENIZER, "truncated"),
])
def test_a_corrupt_or_truncated_checkpoint_gives_a_one_line_error(saved, tmp_path, damage, file, words):
    _, path = saved
    broken = _copy(path, tmp_path / "broken")
    damage(broken)
    policy = VLAPolicy(VLAPolicyConfig(checkpoint=str(broken)))
    with pytest.raises(ValueError) as info:
        policy.load()
    message = str(info.value)
    assert isinstance(info.value, CheckpointError)
    assert "\n" not in message and str(broken / file) in message and words in message, message


def test_a_folder_without_a_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(CheckpointError, match="vla-studio train"):
        VLAPolicy(VLAPolicyConfig(checkpoint=str(tmp_path))).load()
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        VLAPolicy(VLAPolicyConfig(checkpoint=str(tmp_path / "nope"))).load()


def test_bench_vla_reports_every_figure(capsys):
    from vla_studio.cli import main as cli_main

    assert cli_main(["bench", "vla", "--json", "--iterations", "5", "--train-steps", "1",
                     "--batch-size", "4", "--train-threads", "1"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("parameters", "latency_p50_ms", "latency_p99_ms", "train_samples_per_s"):
        assert figures[key] > 0, key
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    assert figures["inference_threads"] == 1
