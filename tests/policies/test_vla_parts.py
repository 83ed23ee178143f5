"""The reference VLA's parts: tokenizer, action bins, network shapes, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla_studio.policies.vla.batches import (GOAL_SCALE_M, Augmentation, SampleTable,
                                             ShardedBatchOrder, augment, gather, grasp_goals)
from vla_studio.policies.vla.colour_swap import ColourSwap
from vla_studio.policies.vla.model import (ModelConfig, SpatialSoftmax, VLANet, chunk_loss,
                                           goal_loss_sum)
from vla_studio.policies.vla.normalization import ActionBins, StateStats
from vla_studio.policies.vla.tokenizer import BOS_ID, PAD_ID, UNK_ID, WordTokenizer
from tests.policies.conftest import TINY_MODEL


def test_tokenizer_maps_known_words_and_marks_unknown_ones():
    tok = WordTokenizer.build(["pick up the red cube", "Pick up the blue block!"], max_tokens=8)
    ids = tok.encode("pick up the RED cube.")
    assert ids[0] == BOS_ID and ids.shape == (8,) and ids[6:].tolist() == [PAD_ID, PAD_ID]
    assert UNK_ID not in ids[:6]
    assert tok.encode("pick up the red block").tolist() == ids.tolist()  # block = cube
    assert tok.unknown_words("pick up the purple cube") == ["purple"]
    assert UNK_ID in tok.encode("pick up the purple cube")
    assert WordTokenizer.from_json(tok.to_json()) == tok
    with pytest.raises(ValueError, match="format"):
        WordTokenizer.from_json({"vocab": ["<pad>"]})


def test_action_bins_round_trip_within_half_a_bin_and_clip_outliers():
    rng = np.random.default_rng(0)
    actions = rng.normal(0, 0.01, (5000, 3))
    actions[:, 2] = 0.25  # a constant dimension
    bins = ActionBins.fit(actions, 256)
    inside = actions[(actions >= bins.q01).all(1) & (actions <= bins.q99).all(1)]
    tokens = bins.to_tokens(inside)
    assert tokens.min() >= 0 and tokens.max() <= 255
    half_bin = (bins.q99 - bins.q01) / 256 / 2
    assert (np.abs(bins.from_tokens(tokens) - inside)[:, :2] <= half_bin[:2] + 1e-12).all()
    np.testing.assert_allclose(bins.from_tokens(tokens)[:, 2], 0.25, atol=1e-6)
    extreme = np.array([[1.0, -1.0, 0.25]])
    assert bins.to_tokens(extreme)[0, :2].tolist() == [255, 0]
    assert ActionBins.from_json(bins.to_json()).to_json() == bins.to_json()


def test_state_stats_standardise_and_round_trip():
    states = {"ee_pos": np.random.default_rng(1).normal(3.0, 2.0, (1000, 3)),
              "gripper": np.ones((1000, 1))}
    stats = StateStats.fit(["ee_pos", "gripper"], states)
    flat = np.concatenate([states["ee_pos"], states["gripper"]], axis=1)
    z = stats.normalize(flat)
    np.testing.assert_allclose(z[:, :3].mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(z[:, :3].std(0), 1.0, atol=1e-9)
    assert np.isfinite(z[:, 3]).all()  # a constant feature is not blown up
    again = StateStats.from_json(stats.to_json())
    np.testing.assert_array_equal(again.normalize(flat), z)


def test_network_outputs_a_chunk_of_bins_per_action_dimension():
    cfg = ModelConfig(**{**TINY_MODEL.to_json(), "state_dim": 4, "vocab_size": 9})
    torch.manual_seed(0)
    net = VLANet(cfg).eval()
    b = 3
    images = torch.rand(b, cfg.num_cameras, 3, *cfg.image_size)
    ids = torch.zeros(b, cfg.max_tokens, dtype=torch.long)
    ids[:, :3] = torch.tensor([2, 5, 6])
    state = torch.randn(b, 4)
    with torch.no_grad():
        logits = net(images, state, ids)
        # The cached-language path (used once per episode at inference) gives the same answer.
        cached = net(images, state, language=net.encode_instruction(ids[:1]))
    assert logits.shape == (b, cfg.chunk_size, cfg.action_dim, cfg.bins)
    torch.testing.assert_close(cached, logits)
    tokens = torch.randint(0, cfg.bins, (b, cfg.chunk_size, cfg.action_dim))
    valid = torch.ones(b, cfg.chunk_size, dtype=torch.bool)
    loss = chunk_loss(logits, tokens, valid)
    assert abs(float(loss) - np.log(cfg.bins)) < 1.0  # near-uniform at initialisation
    valid[:, 2:] = False  # padded steps do not count
    assert float(chunk_loss(logits, tokens, valid)) < float(loss)


def test_coord_channels_give_the_encoder_pixel_positions():
    cfg = ModelConfig(**{**TINY_MODEL.to_json(), "coord_channels": True})
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    torch.manual_seed(0)
    net = VLANet(cfg).eval()
    assert net.cameras[0].stem[0].in_channels == 5
    assert "cameras.0.coords" not in net.state_dict()  # derived, not stored
    images = torch.rand(2, cfg.num_cameras, 3, *cfg.image_size)
    ids = torch.zeros(2, cfg.max_tokens, dtype=torch.long)
    ids[:, 0] = BOS_ID
    state = torch.randn(2, cfg.state_dim)
    with torch.no_grad():
        logits = net(images, state, ids)
        net.cameras[0].coords.zero_()  # the positions reach the output
        blind = net(images, state, ids)
    assert logits.shape == (2, cfg.chunk_size, cfg.action_dim, cfg.bins)
    assert torch.isfinite(logits).all() and not torch.allclose(logits, blind)


def test_keypoints_find_where_a_feature_peaks_and_become_tokens():
    kp = SpatialSoftmax(channels=1, keypoints=1, size=(5, 7))
    with torch.no_grad():
        kp.maps.weight.fill_(1.0)
        kp.maps.bias.zero_()
        kp.log_temperature.fill_(-3.0)  # sharp
    x = torch.zeros(2, 1, 5, 7)
    x[0, 0, 0, 6] = 1.0  # top right
    x[1, 0, 2, 3] = 1.0  # centre
    points = kp(x)
    torch.testing.assert_close(points, torch.tensor([[[1.0, -1.0]], [[0.0, 0.0]]]), atol=1e-3,
                               rtol=0)
    cfg = ModelConfig(**{**TINY_MODEL.to_json(), "keypoints": 8, "keypoint_tokens": 2})
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    net = VLANet(cfg).eval()
    images = torch.rand(2, cfg.num_cameras, 3, *cfg.image_size)
    tokens = net.cameras[0](images[:, 0], torch.zeros(2, cfg.width))
    assert tokens.shape == (2, cfg.grid ** 2 + 2, cfg.width)
    ids = torch.zeros(2, cfg.max_tokens, dtype=torch.long)
    ids[:, 0] = BOS_ID
    with torch.no_grad():
        logits = net(images, torch.randn(2, cfg.state_dim), ids)
    assert logits.shape == (2, cfg.chunk_size, cfg.action_dim, cfg.bins)


def test_state_noise_blurs_only_the_training_state():
    table = SampleTable(state=np.zeros((4, 3), np.float32),
                        tokens=np.zeros((4, 2, 1), np.int64), valid=np.ones((4, 2), bool),
                        episode=np.zeros(4, np.int64),
                        instruction_ids=np.zeros((1, 5), np.int64),
                        instruction_first=np.zeros(1, np.int64),
                        instruction_count=np.ones(1, np.int64))
    images = np.zeros((4, 1, 3, 8, 8), np.uint8)
    rows = np.arange(4)
    aug = Augmentation(shift=0, brightness=0.0, contrast=0.0, state_noise=0.5)
    noisy = gather(images, table, rows, np.random.default_rng(0), aug)["state"]
    assert 0.2 < float(noisy.std()) < 0.8
    again = gather(images, table, rows, np.random.default_rng(0), aug)["state"]
    torch.testing.assert_close(again, noisy)  # reproducible from the batch's stream
    assert float(gather(images, table, rows, None, aug)["state"].abs().max()) == 0.0


def test_batch_order_gives_every_shard_its_share_reproducibly():
    order = ShardedBatchOrder([50, 41], global_batch=8, seed=3)
    assert order.per_shard == 4 and order.steps_per_epoch == 10
    first = [order.rows(0, s, 0).tolist() for s in range(order.steps_per_epoch)]
    flat = [r for rows in first for r in rows]
    assert len(set(flat)) == len(flat) and max(flat) < 50  # no repeats within an epoch
    assert ShardedBatchOrder([50, 41], 8, 3).rows(0, 2, 0).tolist() == first[2]
    assert order.rows(1, 2, 0).tolist() != first[2]  # a new epoch reshuffles
    with pytest.raises(ValueError, match="multiple"):
        ShardedBatchOrder([50, 41], 7, 0)


def test_augmentation_shifts_and_jitters_but_keeps_shape_and_range():
    x = torch.rand(4, 2, 3, 32, 32)
    y = augment(x.clone(), np.random.default_rng(0), Augmentation(shift=3, brightness=0.1, contrast=0.2))
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(x, y)
    same = augment(x.clone(), np.random.default_rng(0), Augmentation(shift=3, brightness=0.1, contrast=0.2))
    torch.testing.assert_close(same, y)


def test_scan_leaves_out_failures_and_episodes_with_non_finite_values(tmp_path):
    from tests.policies.micro_dataset import write_micro_dataset
    from vla_studio.data.episode_writer import set_success
    from vla_studio.policies.vla.episodes import scan_datasets

    root = write_micro_dataset(tmp_path / "ds", episodes=4, steps=6, nan_state_in=1)
    files = sorted((root / "episodes").glob("*.h5"))
    set_success(files[2], 0)
    scan = scan_datasets([root])
    assert [e.path for e in scan.episodes] == [files[0], files[3]]
    assert dict(scan.skipped) == {files[1]: "non-finite action or state values",
                                  files[2]: "labelled a failure"}
    assert scan.cameras == ("front", "wrist") and scan.state_keys == ("ee_pos", "gripper")
    assert scan.state_shapes == ((3,), (1,)) and scan.control_rate_hz == 20.0
    assert len(scan_datasets([root], include_failures=True).episodes) == 3


def test_colour_swap_renames_the_instruction_after_the_colour_it_shows():
    texts = ["pick up the red cube", "pick up the green cube", "pick up the blue cube",
             "pick up the yellow cube"]
    tok = WordTokenizer.build(texts, max_tokens=8)
    ids = np.stack([tok.encode(t) for t in texts])
    swap = ColourSwap.build(tok, ids)
    assert swap.allowed[:3].all() and not swap.allowed[3].any()  # yellow has no primary image
    images = torch.zeros(24, 2, 3, 4, 4)
    images[:, :, 0] = 1.0  # a red scene, both cameras
    which = np.zeros(24, np.int64)  # "pick up the red cube"
    out, new_ids = swap.apply(images.clone(), torch.from_numpy(ids[which]), which,
                              np.random.default_rng(0), probability=1.0)
    names = {tok.vocab[i] for i in new_ids[:, 4].tolist()}
    assert names == {"red", "green", "blue"}  # (swapping green and blue leaves red red)
    for i in range(24):
        lit = int(out[i, 0, :, 0, 0].argmax())  # the channel the red content moved to
        assert tok.vocab[int(new_ids[i, 4])] == ("red", "green", "blue")[lit]
        torch.testing.assert_close(out[i, 1], out[i, 0])  # cameras of a sample swap together
    kept, same = swap.apply(images.clone(), torch.from_numpy(ids[[3] * 24]), np.full(24, 3),
                            np.random.default_rng(0), probability=1.0)
    torch.testing.assert_close(kept, images)
    assert same.tolist() == ids[[3] * 24].tolist()


def test_grasp_goal_is_where_the_gripper_next_closes():
    actions = np.zeros((6, 7))
    actions[:, -1] = [1, 1, 0, 0, 1, 1]  # open, open, close, closed, open, open
    tcp = np.arange(18, dtype=float).reshape(6, 3) * 0.01
    goal, valid = grasp_goals(actions, tcp, closed_below=0.5)
    assert valid.tolist() == [True, True, False, False, False, False]  # no close after step 3
    np.testing.assert_allclose(goal[0] * GOAL_SCALE_M, tcp[2] - tcp[0], atol=1e-6)
    np.testing.assert_allclose(goal[1] * GOAL_SCALE_M, tcp[2] - tcp[1], atol=1e-6)
    # With orientations: the turn still to make, wrapped (3.0 rad -> -3.0 rad is 0.28 rad).
    yaw = np.array([3.0, 0.5, -3.0, 0.0, 0.0, 0.0])
    quat = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
    goal4, _ = grasp_goals(actions, tcp, 0.5, quat)
    np.testing.assert_allclose(goal4[:2, 3], [2 * np.pi - 6.0, -3.5 + 2 * np.pi], atol=1e-5)
    np.testing.assert_allclose(goal4[:, :3], goal, atol=1e-6)


def test_keypoints_alone_with_a_goal_head():
    cfg = ModelConfig(**{**TINY_MODEL.to_json(), "keypoints": 8, "grid_tokens": False,
                         "goal_head": True})
    net = VLANet(cfg).eval()
    assert len(net.cameras[0].stages) == 1  # the deeper stages would train nothing
    images = torch.rand(2, cfg.num_cameras, 3, *cfg.image_size)
    ids = torch.zeros(2, cfg.max_tokens, dtype=torch.long)
    ids[:, 0] = BOS_ID
    state = torch.randn(2, cfg.state_dim)
    with torch.no_grad():
        logits, goal = net(images, state, ids, with_goal=True)
        torch.testing.assert_close(net(images, state, ids), logits)
    assert torch.isfinite(goal).all() and goal.shape == (2, 3) and logits.shape[1:] == (cfg.chunk_size, cfg.action_dim, cfg.bins)
    total, n = goal_loss_sum(goal, torch.zeros(2, 3), torch.tensor([True, False]))
    assert float(n) == 1 and float(total) > 0
    with pytest.raises(ValueError, match="keypoints"):
        ModelConfig(grid_tokens=False)
