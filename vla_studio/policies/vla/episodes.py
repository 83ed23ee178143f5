"""Reading VLA Studio datasets for training: which episodes, their statistics, and their frames.

Two passes, so data-parallel ranks agree without talking to each other:

1. :func:`scan_datasets` opens every episode's metadata, actions and state (small, no images).
   Every rank runs it and gets the same list, split, statistics and vocabulary.
2. :func:`load_frames` decodes the JPEGs of *one rank's shard* of episodes into memory, resized
   to the model's input size (a few hundred MB for a few hundred demos), so the training loop
   never waits on the disk or a decoder.

Datasets are only read (through :class:`~vla_studio.data.episode_file.EpisodeReader`, which
merges the researcher's annotations: trims, instructions and success labels are honoured).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeFileError, EpisodeReader

log = logging.getLogger(__name__)

DEFAULT_STATE_KEYS = ("ee_pos", "ee_quat", "gripper")


class TrainingDataError(ValueError):
    """Datasets that cannot be trained on; the message says which and why."""


@dataclass(frozen=True)
class EpisodeMeta:
    """One usable episode, as every rank sees it.

    Attributes:
        path: the episode file.
        start: first step used (the trim start).
        end: one past the last step used.
        instructions: the instruction and its paraphrases, primary first.
        actions: ``[T, D]`` actions of the used steps.
        state: ``[T, S]`` concatenated state features of the used steps.
    """

    path: Path
    start: int
    end: int
    instructions: tuple[str, ...]
    actions: np.ndarray
    state: np.ndarray

    @property
    def num_steps(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class DatasetScan:
    """What :func:`scan_datasets` found.

    Attributes:
        episodes: usable episodes, sorted by path.
        cameras: camera names every episode has, in station order.
        state_keys: state features used, in the order they are concatenated.
        state_shapes: the shape of one sample of each of those features.
        action_kind: action space kind.
        action_names: action element names.
        control_rate_hz: the rate every episode was recorded at.
        skipped: ``(path, reason)`` of episodes left out.
    """

    episodes: tuple[EpisodeMeta, ...]
    cameras: tuple[str, ...]
    state_keys: tuple[str, ...]
    state_shapes: tuple[tuple[int, ...], ...]
    action_kind: str
    action_names: tuple[str, ...]
    control_rate_hz: float
    skipped: tuple[tuple[Path, str], ...]


def scan_datasets(dirs: Sequence[str | Path], *, cameras: Sequence[str] | None = None,
                  state_keys: Sequence[str] | None = None,
                  include_failures: bool = False) -> DatasetScan:
    """Every usable episode of ``dirs`` with its actions and state.

    ``state_keys`` None means those of :data:`DEFAULT_STATE_KEYS` the first episode recorded.

    Episodes labelled as failures are left out unless ``include_failures``; unlabelled ones are
    kept (an operator's demonstration is usually good). Episodes without every camera or state
    feature, or with fewer than two steps, are left out and listed in ``skipped``.

    Raises:
        TrainingDataError: no folder is a dataset, no usable episode, or episodes disagree on
            the action space or control rate.
    """
    files: list[Path] = []
    for d in dirs:
        ds = Dataset(d)
        if not ds.episodes_dir.is_dir():
            raise TrainingDataError(f"{ds.root}: not a VLA Studio dataset (no episodes/ folder); "
                                    f"record into it with `vla-studio record --dataset {d}`")
        found = ds.episode_files()
        if not found:
            log.warning("%s holds no saved episodes", ds.root)
        files.extend(found)
    if not files:
        raise TrainingDataError(f"no saved episodes in {', '.join(str(d) for d in dirs)}")
    files.sort()
    episodes: list[EpisodeMeta] = []
    skipped: list[tuple[Path, str]] = []
    common_cams: list[str] | None = list(cameras) if cameras else None
    kind = names = rate = None
    shapes: tuple[tuple[int, ...], ...] | None = None
    for path in files:
        try:
            with EpisodeReader(path) as ep:
                if state_keys is None:
                    recorded = ep.state()
                    state_keys = tuple(k for k in DEFAULT_STATE_KEYS if k in recorded)
                reason = _unusable(ep, state_keys, include_failures)
                if reason:
                    skipped.append((path, reason))
                    continue
                ep_kind = str(ep.attrs.get("action_space_kind", ""))
                ep_names = tuple(ep.attrs.get("action_names") or ())
                ep_rate = float(ep.attrs.get("control_rate_hz", 0.0))
                if kind is None:
                    kind, names, rate = ep_kind, ep_names, ep_rate
                elif (ep_kind, ep_names) != (kind, names):
                    raise TrainingDataError(f"{path}: action space {ep_kind} {list(ep_names)} "
                                            f"differs from {kind} {list(names or ())} of the "
                                            "episodes before it; train on one action space")
                elif abs(ep_rate - rate) > 1e-6:
                    raise TrainingDataError(f"{path}: recorded at {ep_rate:g} Hz, the episodes "
                                            f"before it at {rate:g} Hz; train on one rate")
                if common_cams is None:
                    common_cams = list(ep.cameras)
                elif not cameras:
                    common_cams = [c for c in common_cams if c in ep.cameras]
                elif missing := [c for c in cameras if c not in ep.cameras]:
                    skipped.append((path, f"no camera {', '.join(missing)}"))
                    continue
                start, end = ep.trim()
                state = ep.state()
                flat = np.concatenate([state[k][start:end].reshape(end - start, -1)
                                       for k in state_keys], axis=1) if state_keys else \
                    np.zeros((end - start, 0), np.float32)
                ep_shapes = tuple(tuple(int(v) for v in state[k].shape[1:]) for k in state_keys)
                if shapes is None:
                    shapes = ep_shapes
                elif ep_shapes != shapes:
                    skipped.append((path, f"state shapes {ep_shapes} differ from {shapes}"))
                    continue
                actions = ep.step("action")[start:end].astype(np.float32)
                if not (np.isfinite(actions).all() and np.isfinite(flat).all()):
                    # A NaN in one step would turn every loss after it into NaN.
                    skipped.append((path, "non-finite action or state values"))
                    continue
                episodes.append(EpisodeMeta(path, start, end, tuple(ep.instructions()), actions,
                                            flat.astype(np.float32)))
        except EpisodeFileError as exc:
            skipped.append((path, str(exc)))
    reasons: dict[str, int] = {}
    for path, reason in skipped:
        log.debug("left out %s: %s", path, reason)
        key = reason if len(reason) < 60 else reason[:57] + "..."
        reasons[key] = reasons.get(key, 0) + 1
    for reason, n in reasons.items():
        log.info("left out %d episode(s): %s", n, reason)
    if not episodes:
        why = "; ".join(f"{p.name}: {r}" for p, r in skipped[:3])
        raise TrainingDataError(f"no usable episode in {', '.join(str(d) for d in dirs)} ({why})")
    if not common_cams:
        raise TrainingDataError("the episodes share no colour camera; a VLA needs images")
    return DatasetScan(tuple(episodes), tuple(common_cams), tuple(state_keys or ()), shapes or (),
                       str(kind), tuple(names or ()), float(rate or 0.0), tuple(skipped))


def _unusable(ep: EpisodeReader, state_keys: Sequence[str], include_failures: bool) -> str:
    """Why an episode cannot be trained on ('' when it can)."""
    if not include_failures and ep.success() is False:
        return "labelled a failure"
    start, end = ep.trim()
    if end - start < 2:
        return f"only {end - start} step(s)"
    if not ep.instructions():
        return "no language instruction"
    missing = [k for k in state_keys if k not in ep.state()]
    if missing:
        return f"no state feature {', '.join(missing)}"
    if not ep.cameras:
        return "no colour camera"
    return ""


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation episodes: a seeded shuffle, at least one validation
    episode when there are two or more and ``val_fraction > 0``."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    return sorted(order[n_val:]), sorted(order[:n_val])


@dataclass
class FrameStore:
    """The decoded, resized colour frames of some episodes, held in memory.

    Attributes:
        images: ``[N, C, 3, h, w]`` uint8 RGB, cameras in model order, steps of every held
            episode one after the other.
        offsets: ``[E + 1]`` first row of each held episode (and the end).
    """

    images: np.ndarray
    offsets: np.ndarray


def load_frames(episodes: Sequence[EpisodeMeta], cameras: Sequence[str], size: tuple[int, int],
                threads: int = 0, progress: Callable[[int, int], None] | None = None) -> FrameStore:
    """Decode every used step's image of ``cameras`` for ``episodes``.

    A step without an image (a camera gap) repeats the camera's previous frame, as the control
    loop does: the policy always sees the latest frame.

    Args:
        size: ``(height, width)`` to resize to.
        threads: decoder threads (0: one per CPU); OpenCV releases the GIL while decoding.
        progress: called with ``(episodes done, episodes)``.
    """
    h, w = size
    counts = [e.num_steps for e in episodes]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    images = np.zeros((int(offsets[-1]), len(cameras), 3, h, w), np.uint8)

    def decode(k: int) -> None:
        ep_meta = episodes[k]
        # Through the one frame source: JPEG and video storage read the same way (in step
        # order, so a video camera decodes each frame once).
        with EpisodeReader(ep_meta.path) as ep:
            source = ep.frames()
        try:
            steps = list(range(min(ep_meta.end, source.num_steps)))
            for c, cam in enumerate(cameras):
                if cam not in source.cameras:
                    raise TrainingDataError(f"{ep_meta.path}: no camera {cam!r}")
                last = None
                stored = source.frame_ids(cam)
                frames = source.iter_color(cam, steps)
                try:
                    for i, rgb in frames:
                        if rgb is None and stored[i] >= 0:
                            raise TrainingDataError(f"{ep_meta.path}: step {i} of camera {cam} "
                                                    "is not a decodable image")
                        if rgb is not None:
                            last = resize_rgb(rgb, size)
                        if i >= ep_meta.start and last is not None:
                            images[offsets[k] + i - ep_meta.start, c] = last.transpose(2, 0, 1)
                except (ValueError, OSError) as exc:
                    raise TrainingDataError(f"{ep_meta.path}: camera {cam} frames cannot be "
                                            f"decoded ({exc})") from None
                finally:
                    frames.close()
        finally:
            source.close()

    workers = threads or os.cpu_count() or 1
    done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vla-decode") as pool:
        for _ in pool.map(decode, range(len(episodes))):
            done += 1
            if progress is not None:
                progress(done, len(episodes))
    return FrameStore(images, offsets)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` (``HxWx3`` uint8) resized to ``(height, width)`` exactly as in training (area
    interpolation: no aliasing of small cubes when shrinking)."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
