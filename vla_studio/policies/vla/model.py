"""The reference VLA network: FiLM-conditioned CNN per camera, word embeddings, a fusion
transformer and a discrete action head.

```
 instruction --WordTokenizer--> ids [L] --embed + 1 encoder layer--> lang tokens [L, W]
                                                      |  masked mean
                                                      v
                                                 sentence [W] ---FiLM (gamma, beta)---+
 camera c image [3, h, w] --conv stem--> stage 1 --FiLM--> stage 2 --FiLM--> stage 3 --FiLM--+
                 (one encoder per camera)   -> pooled to g x g -> tokens [g*g, W] + pos + cam emb
 state [S] --normalised--> Linear --> state token [1, W]
 H learned action queries [H, W]

 [lang | state | cam 1 ... cam C | queries] --fusion transformer (pre-LN, depth x)--> queries out
 queries out [H, W] --LayerNorm + Linear--> logits [H, D, bins] --softmax--> bin, probability
```
The language tokens are computed once per instruction (:meth:`VLANet.encode_instruction`), so an
episode's inference only runs the vision encoders and the fusion transformer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`VLANet` (stored in ``config.json``; defaults are the reference).

    Attributes:
        num_cameras: image encoders (one per camera).
        image_size: ``(height, width)`` input images are resized to.
        state_dim: length of the concatenated, normalised state vector.
        action_dim: D, action dimensions.
        chunk_size: H, future actions predicted per observation.
        bins: discrete bins per action dimension.
        vocab_size: tokenizer vocabulary size.
        max_tokens: instruction length in tokens.
        width: transformer width (token size).
        depth: fusion transformer layers.
        heads: attention heads.
        mlp_ratio: hidden size of the transformer MLPs relative to ``width``.
        channels: CNN channels of the stem and the three stages.
        stem_stride: downsampling of the stem (4: a patchify stem, much cheaper to train).
        grid: image tokens per camera are a ``grid x grid`` pooling of the last feature map.
        dropout: dropout in the transformer (0 keeps training bit-reproducible across ranks).
        coord_channels: add two channels holding each pixel's x and y (CoordConv) to every
            camera's input, so where a cube is in the image is as easy to read as its colour.
            False in checkpoints written before it existed.
        keypoints: K > 0 adds a spatial-softmax keypoint branch to every camera encoder (as
            in Levine et al. 2016 and robomimic): K learned heat maps over the FiLM-conditioned
            stage-1 features (``h/8 x w/8``), each reduced to its expected ``(x, y)``, so the
            instructed cube's position reaches the transformer with sub-cell precision instead
            of through the coarse ``grid`` pooling. The 2K coordinates become
            ``keypoint_tokens`` tokens. 0 (off) in checkpoints written before it existed.
        keypoint_tokens: tokens the K keypoints of a camera are projected to.
        grid_tokens: whether a camera also gives its ``grid x grid`` pooled feature tokens
            (False needs keypoints: the image then reaches the transformer only as where its
            keypoints are, a bottleneck that generalises from few demonstrations).
        goal_head: one more query token whose output predicts where the gripper will next
            close, relative to the TCP (an auxiliary training target read from the
            demonstrations: the TCP position at the next closing command). It makes finding
            the instructed object the network's explicit job; the actions never depend on
            the prediction. False in checkpoints written before it existed.
        goal_yaw: the goal head also predicts the turn (radians) from the gripper's heading
            now to its heading when it closes (the grasp's alignment with the object).
    """

    num_cameras: int = 2
    image_size: tuple[int, int] = (96, 96)
    state_dim: int = 8
    action_dim: int = 7
    chunk_size: int = 10
    bins: int = 256
    vocab_size: int = 32
    max_tokens: int = 12
    width: int = 128
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    channels: tuple[int, int, int, int] = (32, 48, 96, 128)
    stem_stride: int = 4
    grid: int = 3
    dropout: float = 0.0
    coord_channels: bool = False
    keypoints: int = 0
    keypoint_tokens: int = 4
    grid_tokens: bool = True
    goal_head: bool = False
    goal_yaw: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        object.__setattr__(self, "channels", tuple(int(v) for v in self.channels))
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ValueError(f"image_size must be (height, width) >= 16, got {self.image_size}")
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise ValueError(f"channels must be 4 positive numbers, got {self.channels}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        for name in ("num_cameras", "action_dim", "chunk_size", "vocab_size", "max_tokens",
                     "depth", "grid"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.stem_stride not in (2, 4):
            raise ValueError(f"stem_stride must be 2 or 4, got {self.stem_stride}")
        if self.keypoints < 0 or self.keypoint_tokens < 1:
            raise ValueError("keypoints must be >= 0 and keypoint_tokens >= 1")
        if not self.grid_tokens and not self.keypoints:
            raise ValueError("without grid tokens the cameras need keypoints")
        if self.bins < 2 or self.state_dim < 0:
            raise ValueError("bins must be >= 2 and state_dim >= 0")

    def to_json(self) -> dict:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(sorted(unknown))}")
        return cls(**dict(data))


class FiLM(nn.Module):
    """Feature-wise affine modulation of a feature map by the sentence embedding (RT-1)."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        # Starts as the identity: an untrained policy's vision features are not scrambled.
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (1.0 + gamma) + beta


def _conv(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    groups = math.gcd(8, cout)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.GroupNorm(groups, cout), nn.GELU())


class SpatialSoftmax(nn.Module):
    """Feature map ``[B, C, h, w]`` -> K keypoints ``[B, K, 2]``: the expected ``(x, y)`` (in
    -1..1) of the softmax over each of K learned 1x1-conv heat maps."""

    def __init__(self, channels: int, keypoints: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.maps = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(1))
        h, w = size
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w),
                                indexing="ij")
        self.register_buffer("grid_xy", torch.stack([xs.flatten(), ys.flatten()], dim=1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heat = self.maps(x).flatten(2) * torch.exp(-self.log_temperature)  # [B, K, h*w]
        if heat.shape[-1] != self.grid_xy.shape[0]:
            raise ValueError(f"keypoint map of {heat.shape[-1]} cells, expected "
                             f"{self.grid_xy.shape[0]}")
        return torch.softmax(heat, dim=-1) @ self.grid_xy  # [B, K, 2]


class ImageEncoder(nn.Module):
    """A small FiLM-conditioned CNN: image ``[B, 3, h, w]`` (0..1) -> tokens ``[B, g*g, W]``
    (plus ``keypoint_tokens`` more with the keypoint branch)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c0, c1, c2, c3 = cfg.channels
        cin = 5 if cfg.coord_channels else 3
        if cfg.stem_stride == 4:  # non-overlapping 4x4 patches: a quarter of the activations
            stem = nn.Conv2d(cin, c0, 4, 4, 0, bias=False)
        else:
            stem = nn.Conv2d(cin, c0, 5, 2, 2, bias=False)
        self.stem = nn.Sequential(stem, nn.GroupNorm(math.gcd(8, c0), c0), nn.GELU())
        stages = [nn.Sequential(_conv(c0, c1, 3, 2), _conv(c1, c1, 3, 1)),
                  nn.Sequential(_conv(c1, c2, 3, 2), _conv(c2, c2, 3, 1)),
                  nn.Sequential(_conv(c2, c3, 3, 2), _conv(c3, c3, 3, 1))]
        # Keypoints alone read stage 1: the deeper stages would train nothing.
        n = 3 if cfg.grid_tokens else 1
        self.stages = nn.ModuleList(stages[:n])
        self.films = nn.ModuleList([FiLM(cfg.width, c) for c in (c1, c2, c3)[:n]])
        self.grid_tokens = cfg.grid_tokens
        if cfg.grid_tokens:
            self.pool = nn.AdaptiveAvgPool2d(cfg.grid)
            self.proj = nn.Linear(c3, cfg.width)
            self.pos = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid, cfg.width))
            nn.init.normal_(self.pos, std=0.02)
        # ImageNet-like centring; the images are rendered or camera RGB in 0..1.
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", torch.tensor([4.0, 4.0, 4.0]).view(1, 3, 1, 1), persistent=False)
        coords = None
        if cfg.coord_channels:  # x, y of every pixel in -1..1 (not augmented: where it is seen)
            h, w = cfg.image_size
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w),
                                    indexing="ij")
            coords = torch.stack([xs, ys]).unsqueeze(0)
        self.register_buffer("coords", coords, persistent=False)
        self.keypoints: SpatialSoftmax | None = None
        if cfg.keypoints:
            h, w = cfg.image_size
            first = cfg.stem_stride * 2  # the stride of the stage-1 map
            size = (-(-h // first), -(-w // first))
            self.keypoints = SpatialSoftmax(c1, cfg.keypoints, size)
            self.kp_tokens = cfg.keypoint_tokens
            self.kp_proj = nn.Linear(2 * cfg.keypoints, cfg.keypoint_tokens * cfg.width)
            self.kp_pos = nn.Parameter(torch.zeros(1, cfg.keypoint_tokens, cfg.width))
            nn.init.normal_(self.kp_pos, std=0.02)

    def forward(self, image: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) * self.inv_std
        if self.coords is not None:
            x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)
        x = self.stem(x)
        points = None
        for i, (stage, film) in enumerate(zip(self.stages, self.films)):
            x = film(stage(x), sentence)
            if i == 0 and self.keypoints is not None:
                points = self.keypoints(x)  # where the instruction-modulated features peak
        parts = []
        if self.grid_tokens:
            x = self.pool(x).flatten(2).transpose(1, 2)  # [B, g*g, c3]
            parts.append(self.proj(x) + self.pos)
        if points is not None:
            b = points.shape[0]
            parts.append(self.kp_proj(points.flatten(1)).view(b, self.kp_tokens, -1) + self.kp_pos)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


class LanguageEncoder(nn.Module):
    """Token ids ``[B, L]`` -> tokens ``[B, L, W]``, padding mask, sentence vector ``[B, W]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, cfg.max_tokens, cfg.width))
        nn.init.normal_(self.pos, std=0.02)
        self.layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, int(cfg.width * cfg.mlp_ratio),
                                                dropout=cfg.dropout, activation="gelu",
                                                batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pad = ids == 0
        x = self.layer(self.embed(ids) + self.pos[:, : ids.shape[1]], src_key_padding_mask=pad)
        x = self.norm(x)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        sentence = (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return x, pad, sentence


class VLANet(nn.Module):
    """The whole network; see the module docstring for the data flow."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.language = LanguageEncoder(cfg)
        self.cameras = nn.ModuleList([ImageEncoder(cfg) for _ in range(cfg.num_cameras)])
        self.camera_embed = nn.Parameter(torch.zeros(cfg.num_cameras, 1, w))
        self.state_proj = nn.Linear(max(cfg.state_dim, 1), w)
        self.queries = nn.Parameter(torch.zeros(1, cfg.chunk_size, w))
        self.type_embed = nn.Parameter(torch.zeros(4, w))  # language, state, image, query
        for p in (self.camera_embed, self.queries, self.type_embed):
            nn.init.normal_(p, std=0.02)
        layer = nn.TransformerEncoderLayer(w, cfg.heads, int(w * cfg.mlp_ratio), dropout=cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.fusion = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.head_norm = nn.LayerNorm(w)
        self.head = nn.Linear(w, cfg.action_dim * cfg.bins)
        if cfg.goal_head:
            self.goal_query = nn.Parameter(torch.zeros(1, 1, w))
            nn.init.normal_(self.goal_query, std=0.02)
            self.goal_out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, 4 if cfg.goal_yaw else 3))

    def encode_instruction(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Language tokens, their padding mask and the sentence vector (cacheable per episode)."""
        return self.language(ids)

    def forward(self, images: torch.Tensor, state: torch.Tensor, ids: torch.Tensor | None = None,
                language: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                with_goal: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Action logits ``[B, H, D, bins]`` (and with ``with_goal`` the grasp-goal prediction
        ``[B, 3]`` in units of ``GOAL_SCALE_M``, ``[B, 4]`` with the turn in radians; needs
        ``goal_head``).

        Args:
            images: ``[B, C, 3, h, w]`` float in 0..1, cameras in spec order.
            state: ``[B, S]`` normalised state.
            ids: ``[B, L]`` instruction token ids (or ``language`` from :meth:`encode_instruction`).
            language: precomputed ``(tokens, pad, sentence)``; batch 1 broadcasts.
        """
        cfg = self.cfg
        b = images.shape[0]
        if language is None:
            if ids is None:
                raise ValueError("give the instruction as ids or precomputed language")
            language = self.encode_instruction(ids)
        lang, pad, sentence = language
        if lang.shape[0] != b:
            lang, pad, sentence = (lang.expand(b, -1, -1), pad.expand(b, -1),
                                   sentence.expand(b, -1))
        if cfg.state_dim == 0:
            state = images.new_zeros(b, 1)
        t = self.type_embed
        parts = [lang + t[0], (self.state_proj(state) + t[1]).unsqueeze(1)]
        for i, encoder in enumerate(self.cameras):
            parts.append(encoder(images[:, i], sentence) + self.camera_embed[i] + t[2])
        if cfg.goal_head:
            parts.append((self.goal_query + t[3]).expand(b, -1, -1))
        parts.append((self.queries + t[3]).expand(b, -1, -1))
        tokens = torch.cat(parts, dim=1)
        n_other = tokens.shape[1] - pad.shape[1]
        mask = torch.cat([pad, pad.new_zeros(b, n_other)], dim=1)
        fused = self.fusion(tokens, src_key_padding_mask=mask)
        out = fused[:, -cfg.chunk_size:]
        logits = self.head(self.head_norm(out)).view(b, cfg.chunk_size, cfg.action_dim, cfg.bins)
        if not with_goal:
            return logits
        if not cfg.goal_head:
            raise ValueError("this network has no goal head")
        return logits, self.goal_out(fused[:, -cfg.chunk_size - 1])


def chunk_loss(logits: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the target bins, summed over the valid (non-padded) chunk steps and
    divided by all ``B * H`` steps.

    The fixed denominator (rather than the number of valid steps) makes the mean of per-rank
    losses under DDP exactly the loss of the whole global batch, so data-parallel training
    follows the single-process curve.

    Args:
        logits: ``[B, H, D, bins]``.
        tokens: ``[B, H, D]`` target bins.
        valid: ``[B, H]`` bool, False where the chunk ran past the episode's end.
    """
    total, _ = chunk_loss_sum(logits, tokens, valid)
    return total / valid.numel()


def chunk_loss_sum(logits: torch.Tensor, tokens: torch.Tensor,
                   valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of per-step cross-entropy over valid steps, number of valid steps)``."""
    ce = F.cross_entropy(logits.flatten(0, 2), tokens.flatten(), reduction="none")
    ce = ce.view(tokens.shape).mean(-1)  # [B, H]: mean over the action dimensions
    w = valid.to(ce.dtype)
    return (ce * w).sum(), w.sum()


def goal_loss_sum(pred: torch.Tensor, goal: torch.Tensor,
                  valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of the smooth-L1 grasp-goal error over valid rows, valid rows)``; the error of a
    row is summed over x, y, z (units of ``GOAL_SCALE_M``, smooth below a tenth of one)."""
    err = F.smooth_l1_loss(pred, goal, reduction="none", beta=0.1).sum(-1)
    w = valid.to(err.dtype)
    return (err * w).sum(), w.sum()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
