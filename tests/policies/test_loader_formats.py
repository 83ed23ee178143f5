"""Loaders: native folders dispatched through the registry, .pt weights, .pt2 programs, plugins,
and one-line errors for every damaged or untrusted file."""

from __future__ import annotations

import json
import pickle
import time

import numpy as np
import pytest

from tests.policies.policy_doubles import TinyTorchPolicy, write_tiny_torch
from vla_studio.core.types import Frame, Observation
from vla_studio.policies.errors import PolicyLoadError
from vla_studio.policies.loaders import load_policy, parse_source, policy_id
from vla_studio.policies.small_conv import SmallConvConfig, SmallConvPolicy, write_small_conv


def state_obs() -> Observation:
    return Observation(3, time.monotonic(), {"ee_pos": np.array([0.4, 0.0, 0.3], np.float32),
                                             "gripper": np.array([1.0], np.float32)})


def test_a_native_folder_loads_the_class_its_config_names(tmp_path):
    policy = load_policy(write_tiny_torch(tmp_path / "tiny"))
    assert isinstance(policy, TinyTorchPolicy)
    chunk = policy.infer(state_obs())
    assert chunk.actions.shape == (4, 7)
    np.testing.assert_allclose(chunk.actions[:, 6], 1.0)  # de-standardised: gripper mean 1, std 0
    assert policy.spec.normalization["action/std"][0] == pytest.approx(0.01)


def test_the_same_weights_load_from_safetensors_and_from_a_weights_only_pt(tmp_path):
    a = load_policy(write_tiny_torch(tmp_path / "st", seed=7))
    b = load_policy(write_tiny_torch(tmp_path / "pt", seed=7, pt=True))
    np.testing.assert_allclose(a.infer(state_obs()).actions, b.infer(state_obs()).actions)


def test_a_pt_file_with_pickled_code_is_refused_by_weights_only(tmp_path):
    import torch

    path = write_tiny_torch(tmp_path / "evil", pt=True)
    torch.save({"weight": torch.zeros(2), "payload": ValueError("arbitrary object")}, path)
    with pytest.raises(PolicyLoadError) as err:
        load_policy(path)
    assert "\n" not in str(err.value) and "tiny.pt" in str(err.value)


def test_the_built_in_small_conv_policy_round_trips_through_its_checkpoint(tmp_path):
    cfg = SmallConvConfig(name="small_conv", width=8, chunk_size=5, image_size=(32, 32))
    policy = load_policy(write_small_conv(tmp_path / "sc", cfg))
    assert isinstance(policy, SmallConvPolicy) and policy.spec.chunk_size == 5
    frames = {c: Frame(c, 0, 0.0, color=np.zeros((32, 32, 3), np.uint8)) for c in ("front", "wrist")}
    obs = Observation(0, 0.0, state_obs().state, frames)
    assert policy.infer(obs).actions.shape == (5, 7)


def test_a_plugin_policy_loads_through_its_entry_point():
    policy = load_policy("plugin:circle", options={"chunk": 4})
    assert type(policy).__name__ == "CirclePolicy"
    assert policy.infer(state_obs()).actions.shape == (4, 7)
    assert parse_source("circle").kind == "plugin"


def export_program(tmp_path):
    import torch

    class Head(torch.nn.Module):
        def forward(self, ee_pos):
            actions = torch.zeros(1, 3, 7) + ee_pos.sum() * 0.0
            return actions + torch.tensor([0.0] * 6 + [1.0]), torch.full((1, 3), 0.8)

    path = tmp_path / "head.pt2"
    torch.export.save(torch.export.export(Head(), (torch.zeros(1, 3),)), str(path))
    spec = {"cameras": [], "image_size": [0, 0],
            "state_features": {"ee_pos": {"dtype": "float32", "shape": [3]}},
            "action_space": {"kind": "ee_delta",
                             "names": ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]},
            "control_rate_hz": 20.0, "chunk_size": 3}
    path.with_suffix(".json").write_text(json.dumps({
        "format": "torch.export", "spec": spec, "inputs": ["observation/state/ee_pos"],
        "outputs": ["actions", "confidence"]}))
    return path


def test_an_exported_program_is_refused_unless_trusted(tmp_path):
    path = export_program(tmp_path)
    with pytest.raises(PolicyLoadError, match="trusted files only"):
        load_policy(path)
    policy = load_policy(path, trusted=True)
    chunk = policy.infer(state_obs())
    assert chunk.actions.shape == (3, 7) and chunk.actions[0, 6] == pytest.approx(1.0)
    np.testing.assert_allclose(chunk.confidence, 0.8, rtol=1e-6)


def one_line_error(source, **kw) -> str:
    with pytest.raises(PolicyLoadError) as err:
        load_policy(source, **kw)
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_truncated_safetensors_file_is_one_line(tmp_path):
    ckpt = write_tiny_torch(tmp_path / "t")
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert "truncated" in one_line_error(ckpt)
    weights.write_bytes(b"\x05")
    assert "truncated" in one_line_error(ckpt)
    weights.write_bytes(b"\xff" * 64)
    assert "corrupt" in one_line_error(ckpt)


def test_damaged_json_files_are_one_line(tmp_path):
    ckpt = write_tiny_torch(tmp_path / "j")
    (ckpt / "normalization.json").write_text('{"action": {"mean": [1, "x"]}}')
    assert "normalization.json" in one_line_error(ckpt)
    (ckpt / "normalization.json").write_text('{"action": {"std": [NaN]}}')
    assert "NaN" in one_line_error(ckpt)
    (ckpt / "config.json").write_bytes(b"\xff\xfe{")
    assert "UTF-8" in one_line_error(ckpt)
    (ckpt / "config.json").write_text('{"config": {}}')
    assert "policy_type" in one_line_error(ckpt)


def test_unknown_policy_types_and_mismatched_weights_are_one_line(tmp_path):
    ckpt = write_tiny_torch(tmp_path / "u")
    (ckpt / "config.json").write_text(json.dumps({"policy_type": "no_such_policy"}))
    text = one_line_error(ckpt)
    assert "no_such_policy" in text and "small_conv" in text  # lists what is installed
    (ckpt / "config.json").write_text(json.dumps({"policy_type": "test_tiny_torch",
                                                  "config": {"hidden": 32}}))
    assert "size mismatch" in one_line_error(ckpt)
    (ckpt / "config.json").write_text(json.dumps({"policy_type": "circle"}))
    assert "does not read weights" in one_line_error(ckpt)


def test_missing_paths_and_folders_without_config_are_one_line(tmp_path):
    assert "no such file" in one_line_error(str(tmp_path / "nope"))
    assert "config.json" in one_line_error(tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    assert "not a policy" in one_line_error(tmp_path / "x.txt")


def test_policy_ids_change_with_the_weights(tmp_path):
    a = policy_id(str(write_tiny_torch(tmp_path / "a", seed=1)))
    b = policy_id(str(write_tiny_torch(tmp_path / "b", seed=2)))
    assert a.startswith("native:") and a.split("#")[1] != b.split("#")[1]
    assert pickle.loads(pickle.dumps(a)) == a


def test_untrained_is_a_built_in_source_with_its_own_id_and_trust_label():
    from vla_studio.policies.loaders import (FORMATS, UNTRAINED, load_policy, parse_source,
                                             policy_id)

    src = parse_source("untrained")
    assert src.kind == UNTRAINED and str(src) == "untrained"
    assert policy_id("untrained") == "untrained:vla#seed0"
    assert dict((kind, trust) for kind, _, trust in FORMATS)[UNTRAINED] == "built-in"
    policy = load_policy("untrained")
    spec = policy.spec
    assert spec.cameras == ("front", "wrist") and spec.control_rate_hz == 20.0
    assert set(spec.state_features) == {"ee_pos", "ee_quat", "gripper"}


def test_a_reference_vla_checkpoint_folder_or_its_run_folder_loads_by_its_format(tmp_path):
    """`vla-studio train` writes format vla-studio-vla (no policy_type): the folder, and the
    training run folder around it (best/), load as the vla policy type."""
    from vla_studio.policies.loaders import is_vla_checkpoint, load_policy, policy_id
    from vla_studio.policies.vla import checkpoint
    from vla_studio.policies.vla.model import ModelConfig
    from vla_studio.policies.vla.policy import untrained_policy

    small = ModelConfig(image_size=(32, 32), width=32, depth=1, heads=2,
                        channels=(8, 16, 16, 32), grid=2, chunk_size=4)
    ckpt = untrained_policy(model=small).checkpoint
    run = tmp_path / "run"
    checkpoint.save(run / "best", model=ckpt.model, weights=ckpt.weights, spec=ckpt.spec,
                    tokenizer=ckpt.tokenizer, actions=ckpt.actions, state=ckpt.state,
                    training={"note": "test"})
    assert is_vla_checkpoint(run / "best") and is_vla_checkpoint(run)
    assert not is_vla_checkpoint(tmp_path)
    for source in (run / "best", run):
        policy = load_policy(str(source))
        assert type(policy).__name__ == "VLAPolicy" and policy.spec.chunk_size == 4
    assert policy_id(str(run / "best")).startswith("native:")
