"""Export a dataset folder of episode files as an RLDS (TFDS) dataset directory.

Data flow::

    episodes/*.h5 --scan (attributes only)--> summaries --make_plan--> schema + splits
         |                                                                  |
         +--> worker threads: read, fill gaps, pass through or re-encode frames,
              build the tf.train.Example, checksum  --(in order)--> shard writers (temp dir)
                                                                            |
              features.json, dataset_info.json, metadata.json --> rename to OUT/<name>/<version>

Nothing appears at the destination until everything is written: the export is built in a
temporary folder beside it and renamed at the end (the shard count is only known then). A
damaged or still-recording episode is skipped with its reason; it never stops the export.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from vla_studio.data.episode_file import EPISODE_SUFFIX, RECORDING_SUFFIX, EpisodeReader
from vla_studio.data.rlds.episode_encoder import EncodedEpisode, encode_episode
from vla_studio.data.rlds.episode_source import (EpisodeOpener, EpisodeSkipped, EpisodeSummary,
                                                 summarize)
from vla_studio.data.rlds.destination import Staging, check_destination
from vla_studio.data.rlds.features import SplitInfo, dataset_info_json, shard_file_name
from vla_studio.data.rlds.metadata import metadata_json
from vla_studio.data.rlds.plan import (ExportError, ExportOptions, ExportPlan, PlannedEpisode,
                                       make_plan)
from vla_studio.data.rlds.selection import applied_edits
from vla_studio.data.rlds.tfrecord import TFRecordWriter
from vla_studio.data.segments import within

log = logging.getLogger(__name__)


class ExportCancelled(Exception):
    """The export was cancelled; nothing was left at the destination."""


@dataclass(frozen=True)
class ExportProgress:
    """Where the export is, for a progress bar.

    Attributes:
        phase: ``"scanning"`` (reading attributes), ``"writing"`` or ``"done"``.
        done: episodes handled in this phase.
        total: episodes in this phase.
        current: file name of the episode just handled.
        bytes_written: shard bytes written so far.
        skipped: episodes skipped so far.
    """

    phase: str
    done: int
    total: int
    current: str = ""
    bytes_written: int = 0
    skipped: int = 0


@dataclass
class ExportReport:
    """What an export wrote and skipped."""

    dataset_dir: Path
    episodes: dict[str, int]
    shards: dict[str, int]
    steps: int
    bytes_written: int
    seconds: float
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    filtered_unsuccessful: int = 0
    left_out: dict[str, int] = field(default_factory=dict)  # by the outcome/quality filters
    filled_frames: dict[str, int] = field(default_factory=dict)
    reencoded_frames: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def total_episodes(self) -> int:
        return sum(self.episodes.values())


def find_episode_files(dataset: Path) -> list[Path]:
    """Episode files of a dataset folder (``<dataset>/episodes/*.h5``), sorted by name.

    Files still being recorded (``*.h5.recording``) are listed too, so the export can report
    them as skipped.

    Raises:
        ExportError: the folder does not exist or holds no episode files.
    """
    dataset = Path(dataset)
    if dataset.exists() and not dataset.is_dir():
        raise ExportError(f"{dataset} is a file, not a dataset folder (give the folder you "
                          "record into)")
    if not dataset.is_dir():
        raise ExportError(f"dataset folder {dataset} does not exist")
    folder = dataset / "episodes"
    try:
        if not folder.is_dir():
            if any(dataset.glob(f"*{EPISODE_SUFFIX}")):
                folder = dataset  # the episodes folder itself was given
            else:
                raise ExportError(f"{dataset} is not a dataset folder: it has no episodes/ "
                                  "folder (give the folder you record into)")
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.name.endswith((EPISODE_SUFFIX, RECORDING_SUFFIX)))
    except OSError as exc:
        raise ExportError(f"cannot read the dataset folder {folder}: "
                          f"{exc.strerror or exc}") from None
    if not files:
        raise ExportError(f"{folder} holds no episode files (*.h5); record some episodes first")
    return files




class _SplitShards:
    """The shards of one split, written as numbered parts and renamed once the count is known."""

    def __init__(self, folder: Path, name: str, split: str, shard_bytes: int) -> None:
        self.folder, self.name, self.split, self.shard_bytes = folder, name, split, shard_bytes
        self.parts: list[TFRecordWriter] = []
        self.lengths: list[int] = []
        self.num_bytes = 0

    def write(self, episode: EncodedEpisode) -> int:
        current = self.parts[-1] if self.parts else None
        if current is None or current.bytes_written >= self.shard_bytes:
            if current is not None:
                current.close()
            current = TFRecordWriter(self.folder / f".{self.split}-part{len(self.parts):05d}")
            current.open()
            self.parts.append(current)
            self.lengths.append(0)
        written = current.write(episode.parts, episode.framing)
        self.lengths[-1] += 1
        self.num_bytes += written
        return written

    def finish(self) -> SplitInfo:
        for i, part in enumerate(self.parts):
            part.close()
            part.path.rename(self.folder / shard_file_name(self.name, self.split, i,
                                                           len(self.parts)))
        return SplitInfo(self.split, tuple(self.lengths), self.num_bytes)

    def close(self) -> None:
        for part in self.parts:
            part.close()


class RldsExporter:
    """Exports one dataset folder to ``<out>/<name>/<version>/``.

    Args:
        dataset: the dataset folder (holding ``episodes/*.h5``).
        out: the TFDS data dir to write into (``tfds.builder(name, data_dir=out)``).
        options: export options.
        open_episode: opens an episode file as a context manager with the
            :class:`~vla_studio.data.rlds.episode_source.EpisodeSource` API; default: the
            application's ``EpisodeReader``.
        progress: called after each episode (from the thread running :meth:`run`).
        should_cancel: polled between episodes; True stops the export and removes its files.
    """

    def __init__(self, dataset: Path, out: Path, options: ExportOptions, *,
                 open_episode: EpisodeOpener | None = None,
                 progress: Callable[[ExportProgress], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> None:
        self.dataset, self.out, self.options = Path(dataset), Path(out), options
        self._open_episode = open_episode
        self._progress = progress or (lambda p: None)
        self._should_cancel = should_cancel or (lambda: False)

    @property
    def destination(self) -> Path:
        return self.out / self.options.name / self.options.version

    def run(self) -> ExportReport:
        """Scan, plan and write the export.

        Returns:
            The report (episodes per split, skipped episodes with reasons, warnings).

        Raises:
            ExportError: bad options, no episodes, nothing exportable, destination exists, or a
                write failure (the destination is then untouched).
            ExportCancelled: ``should_cancel`` returned True.
        """
        t0 = time.monotonic()
        self.options.validate()
        check_destination(self.out, self.destination, self.options.overwrite)
        # The staging folder is made before the scan, so an unwritable destination fails at
        # once rather than after minutes of reading episodes.
        staging = Staging(self.out, self.destination)
        tmp = staging.create()
        try:
            plan = self.plan()
            report = self._write(plan, tmp)
            staging.commit()
        except BaseException as exc:
            staging.discard()
            if isinstance(exc, OSError):
                raise ExportError(f"writing the export failed: {exc}; nothing was written to "
                                  f"{self.destination} (check free disk space and permissions)") \
                    from exc
            raise
        report.seconds = time.monotonic() - t0
        self._progress(ExportProgress("done", report.total_episodes, report.total_episodes,
                                      bytes_written=report.bytes_written,
                                      skipped=len(report.skipped)))
        log.info("exported %d episodes (%d steps, %.1f MB) to %s in %.1f s",
                 report.total_episodes, report.steps, report.bytes_written / 1e6,
                 report.dataset_dir, report.seconds)
        return report

    def plan(self) -> ExportPlan:
        """Scan the episode files and decide schema and splits; writes nothing.

        Raises:
            ExportError: bad options, no episode files, or nothing exportable.
            ExportCancelled: ``should_cancel`` returned True.
        """
        self.options.validate()
        files = find_episode_files(self.dataset)
        summaries, skipped = self._scan(files)
        plan = make_plan(summaries, skipped, self.options, depth_shape=self._depth_shape)
        for message in plan.warnings:
            log.warning("%s", message)
        return plan

    def _depth_shape(self, summary: EpisodeSummary, camera: str) -> tuple[int, int]:
        """``(H, W)`` of one episode's depth stream (read once per camera, during planning)."""
        with self.open_episode(summary.path) as reader:
            depth = reader.depth(camera)
        if depth is None or depth.ndim != 3:
            raise EpisodeSkipped(f"camera '{camera}' has no readable depth stream")
        return int(depth.shape[1]), int(depth.shape[2])

    @property
    def open_episode(self) -> EpisodeOpener:
        """The episode opener in use (the application's reader unless one was given)."""
        if self._open_episode is None:
            self._open_episode = EpisodeReader
        return self._open_episode

    # ----- phases ----------------------------------------------------------------------------
    def _scan(self, files: list[Path]) -> tuple[list[EpisodeSummary], list[tuple[Path, str]]]:
        summaries: list[EpisodeSummary] = []
        skipped: list[tuple[Path, str]] = []
        for i, path in enumerate(files):
            self._check_cancel()
            if path.name.endswith(RECORDING_SUFFIX):
                self._skip(skipped, path, "still being recorded (or interrupted and not yet "
                                          "recovered: start VLA Studio once to recover it)")
                self._progress(ExportProgress("scanning", i + 1, len(files), path.name,
                                              skipped=len(skipped)))
                continue
            try:
                with self.open_episode(path) as reader:
                    summaries.append(summarize(path, reader))
            except EpisodeSkipped as exc:
                self._skip(skipped, path, str(exc))
            except Exception as exc:  # h5py/OS errors: a damaged file must not stop the export
                self._skip(skipped, path, _unreadable(path, exc))
            self._progress(ExportProgress("scanning", i + 1, len(files), path.name,
                                          skipped=len(skipped)))
        return summaries, skipped

    def _write(self, plan: ExportPlan, tmp: Path) -> ExportReport:
        opts = self.options
        shard_bytes = int(opts.shard_mb * 1e6)
        splits = {s: _SplitShards(tmp, opts.name, s, shard_bytes) for s in plan.splits}
        skipped = list(plan.skipped)
        written: list[dict[str, Any]] = []
        filled: collections.Counter[str] = collections.Counter()
        reencoded = steps = total_bytes = 0
        total = len(plan.episodes)
        results = self._encoded_in_order(plan)
        try:
            for done, (planned, episode, reason) in enumerate(results, 1):
                if episode is None:
                    self._skip(skipped, planned.summary.path, reason)
                else:
                    total_bytes += splits[planned.split].write(episode)
                    steps += episode.steps
                    filled.update(episode.filled_frames)
                    reencoded += episode.reencoded_frames
                    written.append(_episode_entry(episode, splits[planned.split].lengths,
                                                  opts.subtasks))
                self._progress(ExportProgress("writing", done, total, planned.summary.path.name,
                                              total_bytes, len(skipped)))
        finally:
            results.close()  # stops and joins the worker threads, whatever happened
            for shards in splits.values():
                shards.close()
        if not written:
            raise ExportError("nothing was exported: every episode was skipped ("
                              + "; ".join(f"{p.name}: {r}" for p, r in skipped[:3]) + ")")
        infos = [splits[s].finish() for s in plan.splits if splits[s].lengths]
        schema = plan.schema()
        _write_json(tmp / "features.json", schema.features_json())
        _write_json(tmp / "dataset_info.json", dataset_info_json(
            opts.name, opts.version, _description(plan), infos))
        _write_json(tmp / "metadata.json",
                    metadata_json(plan, self.dataset, written, skipped, dict(filled)))
        return ExportReport(
            dataset_dir=self.destination,
            episodes={i.name: sum(i.shard_lengths) for i in infos},
            shards={i.name: len(i.shard_lengths) for i in infos},
            steps=steps, bytes_written=total_bytes, seconds=0.0, skipped=skipped,
            filtered_unsuccessful=plan.filtered_unsuccessful, left_out=dict(plan.left_out),
            filled_frames=dict(filled),
            reencoded_frames=reencoded, warnings=list(plan.warnings))

    def _encoded_in_order(self, plan: ExportPlan
                          ) -> Iterator[tuple[PlannedEpisode, EncodedEpisode | None, str]]:
        """Encode episodes on worker threads; yield ``(episode, encoded or None, skip reason)``
        in plan order, with at most a few episodes in memory at once."""
        workers = self.options.workers or _auto_workers(plan)
        pending: collections.deque = collections.deque()
        episodes = iter(plan.episodes)
        with concurrent.futures.ThreadPoolExecutor(workers, "rlds-export") as pool:
            try:
                while True:
                    while len(pending) <= workers:
                        planned = next(episodes, None)
                        if planned is None:
                            break
                        pending.append((planned, pool.submit(self._encode, plan, planned)))
                    if not pending:
                        return
                    planned, future = pending.popleft()
                    self._check_cancel()
                    encoded, reason = None, ""
                    try:
                        encoded = future.result()
                    except ExportCancelled:
                        raise
                    except EpisodeSkipped as exc:
                        reason = str(exc)
                    except Exception as exc:  # a damaged file must not stop the export
                        reason = _unreadable(planned.summary.path, exc)
                    yield planned, encoded, reason
            finally:
                for _, future in pending:  # cancelled or failed: drop what has not started
                    future.cancel()

    def _encode(self, plan: ExportPlan, planned: PlannedEpisode) -> EncodedEpisode:
        if self._should_cancel():
            raise ExportCancelled()
        with self.open_episode(planned.summary.path) as reader:
            return encode_episode(plan, planned, reader)

    def _check_cancel(self) -> None:
        if self._should_cancel():
            raise ExportCancelled("export cancelled")

    @staticmethod
    def _skip(skipped: list[tuple[Path, str]], path: Path, reason: str) -> None:
        skipped.append((path, reason))
        log.warning("skipping %s: %s", path.name, reason)


def _auto_workers(plan: ExportPlan) -> int:
    """One worker when frames pass through: reading, serializing and checksumming are mostly
    Python and numpy calls that hold the GIL in turns, so a second worker only adds contention
    (measured). Image conversion runs in OpenCV without the GIL: one worker per core."""
    if plan.options.image_size is None and not plan.depths:
        return 1
    return min(4, os.cpu_count() or 1)


def _unreadable(path: Path, exc: Exception) -> str:
    message = str(exc).removeprefix(f"{path}: ") or type(exc).__name__
    return f"cannot be read ({message}); the file is damaged or not an episode file"


def _episode_entry(episode: EncodedEpisode, lengths: list[int], subtasks: bool
                   ) -> dict[str, Any]:
    s = episode.planned.summary
    segments = within(s.segments, *s.trim) if subtasks else None
    return {"episode_id": s.episode_id, "file": str(s.path), "split": episode.planned.split,
            "shard": len(lengths) - 1, "index_in_shard": lengths[-1] - 1,
            "steps": episode.steps, "trim": list(s.trim), "success": s.success,
            "instructions": list(s.instructions), "filled_frames": episode.filled_frames,
            "edits": applied_edits(s, segments)}


def _description(plan: ExportPlan) -> str:
    cams = ", ".join(f"{c.exported_name} {c.width}x{c.height} {c.encoding}"
                     + (f" (recorded as {c.camera})" if c.exported_name != c.camera else "")
                     for c in plan.cameras)
    return (f"Demonstrations recorded with VLA Studio. Cameras: {cams or 'none'}; action size "
            f"{plan.action_dim}; state size {plan.state.size}. See metadata.json.")


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n", encoding="utf-8")

