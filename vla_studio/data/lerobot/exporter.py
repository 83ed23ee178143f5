"""Export a dataset folder as a LeRobotDataset v3 that LeRobot's own loader opens unchanged.

```
 OUT/                                  (written in a hidden folder beside it, renamed at the end)
   meta/info.json                      codebase_version v3.0, fps, features, paths, totals
   meta/stats.json                     per-feature statistics over the dataset
   meta/tasks.parquet                  one row per task (the episode's instruction)
   meta/episodes/chunk-000/file-000.parquet   per episode: length, tasks, where its rows and
                                       video frames are, its statistics, our provenance
   data/chunk-000/file-000.parquet     per frame: observation.state, action, timestamp,
                                       frame_index, episode_index, index, task_index,
                                       next.reward, next.done, action_source
   videos/observation.images.<cam>/chunk-000/file-NNN.mp4   every episode's frames in order
```
Frames are read through the episode's frame source, so JPEG and video storage export alike;
each step shows the frame it recorded (a step without a new frame repeats the previous one).
Annotations are honoured as in the RLDS export: trims, edited instructions, the outcome and
quality filters. ``observation.state`` concatenates the state keys in name order (their element
names are in ``info.json``); depth is not exported (LeRobot's videos are 8-bit colour).
"""

from __future__ import annotations

import collections
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vla_studio import __version__
from vla_studio.data.episode_file import SOURCE_LABELS, EpisodeReader
from vla_studio.data.lerobot import stats as lstats
from vla_studio.data.lerobot.tables import write_data, write_episodes, write_info, write_tasks
from vla_studio.data.lerobot.video import VIDEO_PATH, CameraVideo
from vla_studio.data.rlds.destination import Staging, check_destination
from vla_studio.data.rlds.episode_source import EpisodeSkipped, EpisodeSummary, summarize
from vla_studio.data.rlds.errors import ExportError
from vla_studio.data.rlds.exporter import find_episode_files
from vla_studio.data.rlds.selection import OUTCOMES, check_filters, nothing_left_message, select
from vla_studio.data.video_codec import VideoCodecError

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass
class LeRobotOptions:
    """What to export and how.

    Attributes:
        repo_id: the dataset's name on the Hub (``user/name``), stored in the metadata and used
            as ``LeRobotDataset(repo_id, root=OUT)``.
        fps: frames per second of the export (default: the recording's control rate); a lower
            rate keeps, for each frame, the latest step at or before its time.
        success_only, outcomes, min_quality: leave episodes out by their labels (as RLDS).
        codec, crf, gop: the videos (LeRobot's defaults: AV1, 30, 2).
        overwrite: replace OUT.
    """

    repo_id: str
    fps: int | None = None
    success_only: bool = False
    outcomes: tuple[str, ...] | None = None
    min_quality: int | None = None
    codec: str = "av1"
    crf: int = 30
    gop: int = 2
    overwrite: bool = False

    @property
    def kept_outcomes(self) -> tuple[str, ...]:
        if self.outcomes is not None:
            return self.outcomes
        return ("success",) if self.success_only else OUTCOMES

    def validate(self) -> None:
        if not REPO_ID_RE.match(self.repo_id or ""):
            raise ExportError(f"--repo-id {self.repo_id!r} is not a dataset name: give "
                              "user/name (letters, digits, '.', '_', '-')")
        if self.fps is not None and not 1 <= int(self.fps) <= 1000:
            raise ExportError(f"--fps {self.fps} must be a whole number from 1 to 1000")
        if self.codec not in ("av1", "h264"):
            raise ExportError(f"codec {self.codec!r} must be av1 or h264")
        check_filters(self.outcomes, self.min_quality)


@dataclass(frozen=True)
class LeRobotProgress:
    """``phase`` is ``scanning``, ``writing`` or ``done``; ``done``/``total`` episodes."""

    phase: str
    done: int
    total: int
    current: str = ""


@dataclass
class LeRobotReport:
    """What an export wrote."""

    root: Path
    repo_id: str
    episodes: int = 0
    frames: int = 0
    tasks: int = 0
    fps: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    storages: dict[str, int] = field(default_factory=dict)  # episodes per source storage


@dataclass(frozen=True)
class _Schema:
    cameras: tuple[tuple[str, int, int], ...]  # (name, width, height)
    state: tuple[tuple[str, tuple[int, ...]], ...]
    action_dim: int
    rate_hz: float

    def describe(self) -> str:
        cams = ", ".join(f"{n} {w}x{h}" for n, w, h in self.cameras)
        return f"cameras {cams or 'none'}; state {dict(self.state)}; action {self.action_dim}"


class LeRobotExporter:
    """Writes ``dataset`` as a LeRobotDataset v3 at ``out`` (see the module docstring).

    Args:
        dataset: the dataset folder (holds ``episodes/*.h5``).
        out: the LeRobot dataset folder to create (LeRobot's ``root``).
        options: what to export.
        progress: called with a :class:`LeRobotProgress` now and then.
        should_cancel: polled between frames; True stops (nothing is left at ``out``).
    """

    def __init__(self, dataset: Path, out: Path, options: LeRobotOptions, *,
                 progress: Callable[[LeRobotProgress], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> None:
        self.dataset, self.out, self.options = Path(dataset), Path(out), options
        self._progress = progress or (lambda p: None)
        self._should_cancel = should_cancel or (lambda: False)

    def run(self) -> LeRobotReport:
        """Scan, select and write.

        Raises:
            ExportError: bad options, nothing to export, the destination exists (without
                ``overwrite``), or a write failure (the destination is then untouched).
        """
        t0 = time.monotonic()
        self.options.validate()
        check_destination(self.out, self.out, self.options.overwrite)
        staging = Staging(self.out, self.out)
        tmp = staging.create()
        try:
            report = self._export(tmp)
            staging.commit()
        except BaseException as exc:
            staging.discard()
            if isinstance(exc, OSError):
                raise ExportError(f"writing the export failed: {exc}; nothing was written to "
                                  f"{self.out} (check free disk space and permissions)") from exc
            if isinstance(exc, VideoCodecError):
                raise ExportError(str(exc)) from exc
            raise
        report.root = self.out
        report.seconds = time.monotonic() - t0
        self._progress(LeRobotProgress("done", report.episodes, report.episodes))
        return report

    # ----- planning --------------------------------------------------------------------------
    def _scan(self) -> tuple[list[EpisodeSummary], list[tuple[Path, str]], dict[str, int]]:
        files = find_episode_files(self.dataset)
        summaries, skipped = [], []
        storages: collections.Counter[str] = collections.Counter()
        for i, path in enumerate(files):
            try:
                with EpisodeReader(path) as reader:
                    summaries.append(summarize(path, reader))
                    storages[reader.storage] += 1
            except EpisodeSkipped as exc:
                skipped.append((path, str(exc)))
            except Exception as exc:  # noqa: BLE001 - a damaged file must not stop the export
                skipped.append((path, f"cannot be read ({str(exc).splitlines()[0][:160]})"))
            self._progress(LeRobotProgress("scanning", i + 1, len(files), path.name))
        return summaries, skipped, dict(storages)

    @staticmethod
    def _schema_of(s: EpisodeSummary) -> _Schema:
        cams = tuple((n, c.width, c.height) for n, c in s.cameras.items() if c.image_format)
        rate = float(s.attrs.get("control_rate_hz", 0.0) or 0.0)
        return _Schema(cams, tuple(sorted((k, tuple(v)) for k, v in s.state_shapes.items())),
                       s.action_dim, rate)

    def _export(self, root: Path) -> LeRobotReport:
        opts = self.options
        report = LeRobotReport(root, opts.repo_id)
        summaries, report.skipped, storages = self._scan()
        if not summaries:
            raise ExportError(f"no episode of {self.dataset} can be exported: " + "; ".join(
                f"{p.name}: {why}" for p, why in report.skipped[:3]) if report.skipped else
                f"{self.dataset} has no episodes")
        kept, report.left_out, _ = select(summaries, opts.kept_outcomes, opts.min_quality)
        if not kept:
            raise ExportError("no episode passes the filters: " + nothing_left_message(
                report.left_out, opts.kept_outcomes, opts.min_quality, opts.success_only))
        schemas = collections.Counter(self._schema_of(s) for s in kept)
        schema = schemas.most_common(1)[0][0]
        episodes = []
        for s in kept:
            if self._schema_of(s) != schema:
                report.skipped.append((s.path, f"recorded with another layout than the "
                                               f"others ({self._schema_of(s).describe()}; the "
                                               f"export has {schema.describe()})"))
            else:
                episodes.append(s)
        fps = int(opts.fps or round(schema.rate_hz) or 30)
        if schema.rate_hz and fps > schema.rate_hz * 1.01:
            raise ExportError(f"--fps {fps} is above the recording's rate "
                              f"({schema.rate_hz:g} Hz); give at most {math.floor(schema.rate_hz)}")
        report.fps = fps
        report.storages = storages
        self._write(root, episodes, schema, fps, report)
        report.bytes_written = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        return report

    # ----- writing ---------------------------------------------------------------------------
    def _write(self, root: Path, episodes: list[EpisodeSummary], schema: _Schema, fps: int,
               report: LeRobotReport) -> None:
        opts = self.options
        keys = {name: f"observation.images.{name}" for name, _, _ in schema.cameras}
        videos = {name: CameraVideo(root, keys[name], fps, codec=opts.codec, crf=opts.crf,
                                    gop=opts.gop) for name in keys}
        tasks: dict[str, int] = {}
        columns: dict[str, list] = collections.defaultdict(list)
        rows: list[dict[str, Any]] = []
        per_episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        index = 0
        try:
            for k, summary in enumerate(episodes):
                self._progress(LeRobotProgress("writing", k, len(episodes), summary.path.name))
                task = (summary.instructions or (str(summary.attrs.get("task", "")),))[0]
                task_index = tasks.get(task, len(tasks))
                try:
                    episode, data = self._episode(summary, schema, fps, videos, keys,
                                                  len(rows), index, task_index)
                except EpisodeSkipped as exc:  # found before any of its frames was written
                    report.skipped.append((summary.path, str(exc)))
                    continue
                tasks.setdefault(task, task_index)
                for name, values in data.items():
                    columns[name].extend(values)
                n = len(data["index"])
                episode.update({"episode_index": len(rows), "tasks": [task], "length": n,
                                "data/chunk_index": 0, "data/file_index": 0,
                                "dataset_from_index": index, "dataset_to_index": index + n})
                rows.append(episode)
                per_episode_stats.append(episode.pop("_stats"))
                index += n
        finally:
            for video in videos.values():
                video.close()
        features = _features(schema, keys, videos, episodes[0].attrs.get("action_names"))
        dataset_stats = lstats.aggregate(per_episode_stats)
        write_data(root, columns, features)
        write_episodes(root, rows, per_episode_stats)
        write_tasks(root, tasks)
        (root / "meta").mkdir(parents=True, exist_ok=True)
        (root / "meta" / "stats.json").write_text(
            json.dumps(lstats.to_json(dataset_stats), indent=4), encoding="utf-8")
        if not rows:
            raise ExportError("no episode could be exported: " + "; ".join(
                f"{p.name}: {why}" for p, why in report.skipped[-3:]))
        robot = str(episodes[0].attrs.get("robot_type", "") or "") or None
        write_info(root, {
            "codebase_version": CODEBASE_VERSION, "robot_type": robot,
            "total_episodes": len(rows), "total_frames": index, "total_tasks": len(tasks),
            "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
            "fps": fps, "splits": {"train": f"0:{len(rows)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": VIDEO_PATH if keys else None, "features": features})
        report.episodes, report.frames, report.tasks = len(rows), index, len(tasks)

    def _episode(self, summary: EpisodeSummary, schema: _Schema, fps: int,
                 videos: dict[str, CameraVideo], keys: dict[str, str], k: int, first: int,
                 task_index: int) -> tuple[dict[str, Any], dict[str, list]]:
        start, end = summary.trim
        with EpisodeReader(summary.path) as reader:
            ticks = np.asarray(reader.step("timestamp")[start:end], np.float64)
            action = np.asarray(reader.step("action")[start:end], np.float32)
            state_all = reader.state()
            source = np.asarray(reader.step("action_source")[start:end], np.int64) \
                if reader.has_step("action_source") else np.ones(end - start, np.int64)
            frames = reader.frames()
        try:
            chosen = resample(ticks, schema.rate_hz, fps)
            n = len(chosen)
            parts = [np.asarray(state_all[key][start:end], np.float32).reshape(end - start, -1)
                     for key, _ in schema.state]
            state = np.concatenate(parts, axis=1)[chosen] if parts else np.zeros((n, 0),
                                                                                np.float32)
            for what, values in (("state", state), ("action", action[chosen])):
                bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
                if bad.size:
                    raise EpisodeSkipped(f"its {what} is NaN or infinite at step "
                                         f"{start + int(chosen[bad[0]])}; trim the episode "
                                         "before that step or discard it")
            episode: dict[str, Any] = {}
            stats: dict[str, dict[str, np.ndarray]] = {}
            for name in keys:
                episode.update(self._camera(frames, name, [start + int(i) for i in chosen],
                                            videos[name], keys[name], stats))
        finally:
            frames.close()
        reward = np.zeros(n, np.float32)
        if summary.success is True:
            reward[-1] = 1.0
        done = np.zeros(n, bool)
        done[-1] = True
        j = np.arange(n)
        data = {"observation.state": state.tolist(), "action": action[chosen].tolist(),
                "timestamp": (j / fps).astype(np.float32).tolist(), "frame_index": j.tolist(),
                "episode_index": [k] * n, "index": (first + j).tolist(),
                "task_index": [task_index] * n, "next.reward": reward.tolist(),
                "next.done": done.tolist(), "action_source": source[chosen].tolist()}
        for key in ("observation.state", "action", "timestamp", "frame_index", "episode_index",
                    "index", "task_index", "next.reward", "next.done", "action_source"):
            values = np.asarray(data[key])
            stats[key] = lstats.array_stats(values.astype(np.float64) if values.dtype == bool
                                            else values)
        success = {True: 1, False: 0, None: -1}[summary.success]
        episode.update({"vla_studio/episode_id": summary.episode_id,
                        "vla_studio/file": summary.path.name, "vla_studio/success": success,
                        "vla_studio/trim_start": int(start), "_stats": stats})
        return episode, data

    def _camera(self, frames, name: str, steps: list[int], video: CameraVideo, key: str,
                stats: dict) -> dict[str, Any]:
        """Append one camera's frames of the episode to its video; its episode columns.

        Each exported frame shows the latest frame stored at or before its step (a step
        without a new frame repeats the previous one; steps before the camera's first frame
        show that first frame). Frames are decoded in order, each once.
        """
        ids = frames.frame_ids(name)
        stored = np.flatnonzero(ids >= 0)
        if not stored.size:
            raise ExportError(f"camera '{name}' has no frame in {steps and 'an'} episode "
                              "chosen for export")
        at = np.searchsorted(stored, np.asarray(steps), side="right") - 1
        shown = stored[np.clip(at, 0, None)]
        file_index, from_ts = video.begin_episode()
        picks = set(lstats.sample_indices(len(shown)))
        sampled: list[np.ndarray] = []
        iterator = frames.iter_color(name, sorted(set(shown.tolist())))
        current_step, current = -1, None
        try:
            for j, step in enumerate(shown.tolist()):
                if self._should_cancel():
                    raise ExportError("the export was cancelled; nothing was written")
                while current_step != step:
                    current_step, current = next(iterator)
                if current is None:
                    raise ExportError(f"camera '{name}' frame of step {step} does not decode")
                video.add(current)
                if j in picks:
                    side = max(1, int(round(max(current.shape[:2]) /
                                            lstats.IMAGE_SAMPLE_SIDE)))
                    sampled.append(current[::side, ::side].copy())
        finally:
            iterator.close()
        stats[key] = lstats.image_stats(sampled)
        return {f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": file_index,
                f"videos/{key}/from_timestamp": from_ts,
                f"videos/{key}/to_timestamp": video.end_episode()}


def resample(ticks: np.ndarray, rate_hz: float, fps: int) -> np.ndarray:
    """Indices of the steps that make up an ``fps`` export of steps ticking at ``ticks``:
    every step at the recorded rate; at a lower rate, for frame ``j`` the latest step at or
    before ``j / fps`` (half a recorded period of slack)."""
    n = len(ticks)
    if n == 0:
        return np.zeros(0, np.int64)
    if not rate_hz or abs(fps - rate_hz) <= 0.01 * rate_hz:
        return np.arange(n, dtype=np.int64)
    rel = ticks - ticks[0]
    count = int(math.floor((rel[-1] + 0.5 / rate_hz) * fps)) + 1
    targets = np.arange(count) / fps + 0.5 / rate_hz
    return np.clip(np.searchsorted(rel, targets, side="right") - 1, 0, n - 1).astype(np.int64)


def _features(schema: _Schema, keys: dict[str, str], videos: dict[str, CameraVideo],
              action_names: Any) -> dict[str, dict[str, Any]]:
    features: dict[str, dict[str, Any]] = {}
    for name, width, height in schema.cameras:
        features[keys[name]] = {"dtype": "video", "shape": [height, width, 3],
                                "names": ["height", "width", "channels"],
                                "info": videos[name].info()}
    names: list[str] = []
    for key, shape in schema.state:
        size = int(np.prod(shape)) if shape else 1
        names += [key] if size == 1 else [f"{key}_{i}" for i in range(size)]
    features["observation.state"] = {"dtype": "float32", "shape": [len(names)], "names": names}
    action = [str(a) for a in action_names] if isinstance(action_names, list) and \
        len(action_names) == schema.action_dim else None
    features["action"] = {"dtype": "float32", "shape": [schema.action_dim], "names": action}
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"),
                       ("episode_index", "int64"), ("index", "int64"), ("task_index", "int64"),
                       ("next.reward", "float32"), ("next.done", "bool"),
                       ("action_source", "int64")):
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    features["action_source"]["names"] = list(SOURCE_LABELS)
    features["action_source"]["info"] = {"vla_studio.version": __version__}
    return features
