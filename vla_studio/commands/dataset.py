"""List, label, trash and restore the episodes of a dataset folder from the terminal.

The dataset is --dataset DIR, else the station profile's [recording] dataset_dir (--station,
default: the simulated tabletop). EPISODE is a file path, a file name (".h5" optional) or the
start of an episode id (at least 6 characters). Labels are written to the episode's annotations
file (<episode>.annotations.json) beside it: the recording itself is never changed, readers and
exports use the labels, and `undo` reverts the last edit.
`trash` moves episodes to the dataset's trash folder; `restore` brings them back. `verify`
recomputes every checksum of the episodes (per frame and per step chunk), checks their structure
and decodes a sample of frames; `list` and `show` flag an episode found damaged.
`compact` transcodes the episodes' JPEG frames to video (AV1 by default, about 20x smaller;
depth stays lossless): each episode is replaced only once its video is written, read back and
checked frame by frame, so an interruption loses nothing and a second run carries on;
`--dry-run` transcodes a short sample and prints what a run would save.

Examples:
  vla-studio dataset list --outcome success
  vla-studio dataset list --dataset ~/vla-studio/datasets/sim --filter "red cube" --json
  vla-studio dataset show 20261121-125232_e2356baf
  vla-studio dataset verify --dataset ~/vla-studio/datasets/sim
  vla-studio dataset label 20261121-125232_e2356baf --failure --notes "dropped the cube"
  vla-studio dataset label 20261121-125232_e2356baf --instruction "pick the red block" --quality 4
  vla-studio dataset undo 20261121-125232_e2356baf
  vla-studio dataset trash 20261121-125232_e2356baf
  vla-studio dataset restore 20261121-125232_e2356baf
  vla-studio dataset compact ~/vla-studio/datasets/sim --dry-run
  vla-studio dataset compact ~/vla-studio/datasets/sim --codec h264
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

NAME = "dataset"
HELP = "list, verify, label, trash, restore and compact recorded episodes"
OUTCOMES = {"all": ..., "success": True, "failure": False, "unknown": None}
MIN_ID_PREFIX = 6


class _Refused(Exception):
    """A request that cannot be carried out; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", metavar="DIR", type=Path, default=None,
                        help="dataset folder (default: the profile's [recording] dataset_dir)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", parents=[common], help="a table of the episodes, newest last")
    p.add_argument("--filter", metavar="TEXT", default="",
                   help="words that must all occur in the instruction, operator, task, file, "
                        "scene, notes or flags")
    p.add_argument("--outcome", choices=tuple(OUTCOMES), default="all", help="by success label")
    p.add_argument("--trash", action="store_true", help="list the trashed episodes instead")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p = sub.add_parser("show", parents=[common], help="everything known about one episode")
    p.add_argument("episode", metavar="EPISODE")
    p = sub.add_parser("verify", parents=[common],
                       help="check every checksum, the structure and a sample of frames "
                            "(exit status 1 when an episode is damaged)")
    p.add_argument("episodes", metavar="EPISODE", nargs="*",
                   help="episodes to check (default: every episode, not the trash)")
    p.add_argument("--json", action="store_true", help="one JSON object per episode")
    p = sub.add_parser("label", parents=[common],
                       help="set success, quality, notes or instructions (an undoable edit)")
    p.add_argument("episodes", metavar="EPISODE", nargs="+")
    outcome = p.add_mutually_exclusive_group()
    outcome.add_argument("--success", dest="outcome", action="store_const", const=True,
                         default=..., help="the task was accomplished")
    outcome.add_argument("--failure", dest="outcome", action="store_const", const=False,
                         help="the task was not accomplished")
    outcome.add_argument("--unknown", dest="outcome", action="store_const", const=None,
                         help="the outcome is not known")
    p.add_argument("--quality", type=int, default=None, metavar="1-5",
                   help="rating of the demonstration")
    p.add_argument("--notes", default=None, help="free text")
    p.add_argument("--instruction", action="append", default=[], metavar="TEXT",
                   help="replace the instructions (repeat for paraphrases; the first is primary)")
    p = sub.add_parser("undo", parents=[common], help="revert the last label edit")
    p.add_argument("episodes", metavar="EPISODE", nargs="+")
    p = sub.add_parser("compact", parents=[common],
                       help="transcode the JPEG frames to video (about 20x smaller), resumable")
    p.add_argument("folder", metavar="DATASET", nargs="?", type=Path, default=None,
                   help="dataset folder (same as --dataset)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the expected saving (a short sample is encoded; nothing written)")
    p.add_argument("--codec", choices=("av1", "h264"), default=None,
                   help="video codec (default: the profile's [recording] video_codec)")
    p.add_argument("--crf", type=int, default=None,
                   help="quality, lower is better (default: the profile's video_crf)")
    for name, what in (("trash", "move episodes to the trash (restorable)"),
                       ("restore", "move trashed episodes back")):
        p = sub.add_parser(name, parents=[common], help=what)
        p.add_argument("episodes", metavar="EPISODE", nargs="+")


def run(args: argparse.Namespace) -> int:
    from vla_studio.data.dataset import Dataset

    if getattr(args, "folder", None) is not None:
        root = args.folder.expanduser()
    elif args.dataset is not None:
        root = args.dataset.expanduser()
    else:
        from vla_studio.commands import station_profile
        root = station_profile(args).dataset_dir
    dataset = Dataset(root)
    if not dataset.episodes_dir.is_dir():
        print(f"vla-studio dataset: error: {root} is not a dataset folder (it has no episodes/ "
              "folder); give one with --dataset DIR", file=sys.stderr)
        return 2
    try:
        return {"list": _list, "show": _show, "verify": _verify, "label": _label, "undo": _undo,
                "trash": _trash, "restore": _restore, "compact": _compact}[args.action](dataset,
                                                                                   args)
    except _Refused as exc:
        print(f"vla-studio dataset: error: {exc}", file=sys.stderr)
        return 2


# ----- actions -------------------------------------------------------------------------------
def _list(dataset, args: argparse.Namespace) -> int:
    from vla_studio.data.dataset_index import DatasetIndex

    wanted = OUTCOMES[args.outcome]
    rows = [s for s in DatasetIndex(dataset).refresh(include_trashed=args.trash)
            if s.trashed == args.trash and (wanted is ... or s.success is wanted)
            and s.matches(args.filter)]
    if args.json:
        for s in rows:
            print(json.dumps(asdict(s)))
        return 0
    if not rows:
        print("no episodes" + (" match" if args.filter or wanted is not ... else ""))
        return 0
    print(f"{'file':<31} {'date (UTC)':<16} {'dur':>6} {'steps':>6} {'outcome':<8} "
          f"{'source':<7} instruction")
    for s in rows:
        flags = f"  [{', '.join(s.flags)}]" if s.flags else ""
        damaged = f"  DAMAGED: {s.damaged}" if s.damaged else ""
        print(f"{s.name:<31} {s.created[:16].replace('T', ' '):<16} {s.duration_s:>5.1f}s "
              f"{s.num_steps:>6} {_outcome(s.success):<8} {s.source:<7} {s.instruction}{flags}"
              f"{damaged}")
    damaged = sum(1 for s in rows if s.damaged)
    print(f"{len(rows)} episode(s), {sum(s.duration_s for s in rows) / 60:.1f} min"
          + (f"; {damaged} damaged (`vla-studio dataset verify` checks every byte)" if damaged
             else ""))
    return 0


def _show(dataset, args: argparse.Namespace) -> int:
    from vla_studio.data.annotations import load_annotations

    summary = _resolve(dataset, args.episode, include_trashed=True)
    path = dataset.root / summary.file
    print(f"{path}")
    for key, value in asdict(summary).items():
        if key != "file" and value not in ("", (), None):
            print(f"  {key}: {value}")
    _show_frames(path)
    try:
        state = load_annotations(path)
        if state.problem:
            print(f"  labels file: {state.problem}")
        print(f"  label edits: {len(state.history)}"
              + (" (undo reverts the last)" if state.history else ""))
    except (OSError, KeyError, ValueError, RuntimeError):  # a damaged or truncated file
        print("  label edits: unknown (the episode file cannot be read)")
    if summary.damaged:
        print(f"vla-studio dataset: error: {summary.name} is damaged: {summary.damaged}; "
              "`vla-studio dataset verify` checks the whole dataset", file=sys.stderr)
        return 1
    return 0


def _show_frames(path: Path) -> None:
    """Each camera's storage, size and frames, read through the episode's frame source (the
    one every reader uses), with its first frame decoded."""
    import h5py

    from vla_studio.data.episode_file import IMAGE, EpisodeFileError
    from vla_studio.data.video_storage import open_frame_source

    try:
        source = open_frame_source(path)
    except (EpisodeFileError, OSError, KeyError, ValueError) as exc:
        print(f"  frames: cannot be read ({exc})")
        return
    try:
        with h5py.File(path, "r") as f:
            sizes = {cam: int(f[f"{IMAGE}/{cam}/data"].shape[0]) for cam in source.cameras}
        for cam in source.cameras:
            ids = source.frame_ids(cam)
            first = next((int(i) for i in range(len(ids)) if ids[i] >= 0), None)
            try:
                picture = source.read_color(cam, first) if first is not None else None
                decoded = "first frame decodes" if picture is not None else "no frame"
            except Exception as exc:  # noqa: BLE001 - report, never crash `show`
                decoded = f"first frame does not decode ({exc})"
            w, h = source.frame_size(cam)
            print(f"  camera {cam}: {source.storage(cam)}, {w}x{h}, "
                  f"{len(set(ids[ids >= 0].tolist()))} frames, {sizes[cam] / 1e6:.2f} MB; "
                  f"{decoded}")
        for cam in source.depth_cameras:
            w, h = source.frame_size(cam)
            print(f"  depth {cam}: uint16 {w}x{h} (lossless)")
    finally:
        source.close()


def _verify(dataset, args: argparse.Namespace) -> int:
    from vla_studio.data.dataset_index import DatasetIndex
    from vla_studio.data.integrity import STATUS_DAMAGED, STATUS_NO_CHECKSUMS, verify_episode

    if args.episodes:
        paths = [dataset.root / s.file for s in _resolve_all(dataset, args.episodes,
                                                             include_trashed=True)]
    else:
        paths = dataset.episode_files()
    index = DatasetIndex(dataset)
    counts = {"ok": 0, STATUS_DAMAGED: 0, STATUS_NO_CHECKSUMS: 0}
    for path in paths:
        result = verify_episode(path)
        counts[result.status] += 1
        index.mark_damaged(path, result.damaged)
        if args.json:
            print(json.dumps({"name": path.name, **result.as_dict()}))
        elif result.status == STATUS_DAMAGED:
            print(f"{path.name:<31} DAMAGED       {'; '.join(result.problems)}")
        elif result.status == STATUS_NO_CHECKSUMS:
            print(f"{path.name:<31} no checksums  recorded before checksums: structure and "
                  f"{result.frames_decoded} sample frames checked")
        else:
            print(f"{path.name:<31} ok            {result.steps} steps, {result.frames_checked} "
                  f"frames, {result.depth_frames_checked} depth frames checked; "
                  f"{result.frames_decoded} decoded")
    if not args.json:
        print(f"{len(paths)} episode(s): {counts['ok']} ok, {counts[STATUS_DAMAGED]} damaged, "
              f"{counts[STATUS_NO_CHECKSUMS]} without checksums")
    return 1 if counts[STATUS_DAMAGED] else 0


def _label(dataset, args: argparse.Namespace) -> int:
    from vla_studio.data.annotations import AnnotationError, write_annotations
    from vla_studio.data.dataset_index import DatasetIndex

    changes: dict = {}
    if args.outcome is not ...:
        changes["success"] = args.outcome
    if args.quality is not None:
        changes["quality"] = args.quality
    if args.notes is not None:
        changes["notes"] = args.notes
    if args.instruction:
        changes["instructions"] = args.instruction
    if not changes:
        raise _Refused("nothing to set: give --success/--failure/--unknown, --quality, --notes "
                       "or --instruction")
    index = DatasetIndex(dataset)
    for summary in _resolve_all(dataset, args.episodes):
        path = dataset.root / summary.file
        try:
            write_annotations(path, changes)
        except AnnotationError as exc:
            raise _Refused(f"{summary.name}: {exc}") from None
        except OSError as exc:
            raise _Refused(f"{summary.name}: cannot write its labels file beside it "
                           f"({exc.strerror or exc}); check the folder's permissions and free "
                           "space") from None
        updated = index.update(path)
        print(f"{summary.name}: " + ", ".join(_shown(k, v) for k, v in changes.items())
              + (f" -> {_outcome(updated.success)}" if updated is not None else ""))
    return 0


def _undo(dataset, args: argparse.Namespace) -> int:
    from vla_studio.data.annotations import AnnotationError, undo_annotation
    from vla_studio.data.dataset_index import DatasetIndex

    index = DatasetIndex(dataset)
    for summary in _resolve_all(dataset, args.episodes):
        path = dataset.root / summary.file
        try:
            undone = undo_annotation(path)
        except AnnotationError as exc:
            raise _Refused(f"{summary.name}: {exc}") from None
        except OSError as exc:
            raise _Refused(f"{summary.name}: cannot write its labels file beside it "
                           f"({exc.strerror or exc})") from None
        index.update(path)
        print(f"{summary.name}: " + ("last label edit reverted" if undone else "no edit to undo"))
    return 0


def _trash(dataset, args: argparse.Namespace) -> int:
    from vla_studio.data.dataset_index import DatasetIndex

    chosen = _resolve_all(dataset, args.episodes)
    for summary in chosen:
        if summary.trashed:
            raise _Refused(f"{summary.name} is already in the trash")
    try:
        for summary in chosen:
            dataset.trash(dataset.root / summary.file)
            print(f"{summary.name}: moved to the trash")
    except OSError as exc:
        raise _Refused(f"cannot move to the trash: {exc}") from None
    finally:
        DatasetIndex(dataset).refresh(include_trashed=True)
    return 0


def _restore(dataset, args: argparse.Namespace) -> int:
    from vla_studio.data.dataset import DatasetError
    from vla_studio.data.dataset_index import DatasetIndex

    chosen = _resolve_all(dataset, args.episodes, include_trashed=True)
    for summary in chosen:
        if not summary.trashed:
            raise _Refused(f"{summary.name} is not in the trash")
    try:
        for summary in chosen:
            dataset.restore(dataset.root / summary.file)
            print(f"{summary.name}: restored")
    except (OSError, DatasetError) as exc:
        raise _Refused(str(exc)) from None
    finally:
        DatasetIndex(dataset).refresh(include_trashed=True)
    return 0


# ----- helpers -------------------------------------------------------------------------------
def _compact(dataset, args: argparse.Namespace) -> int:
    from vla_studio.data.compaction import compact_dataset, estimate
    from vla_studio.data.transcode import OUTCOME_NO_SPACE
    from vla_studio.data.video_codec import VideoCodecError, VideoSettings, check_codec

    codec, crf = args.codec, args.crf
    if codec is None or crf is None:
        try:
            from vla_studio.commands import station_profile
            recording = station_profile(args).recording
        except Exception:  # noqa: BLE001 - no usable profile: the built-in defaults
            recording = None
        codec = codec or (recording.video_codec if recording else "av1")
        crf = crf if crf is not None else (recording.video_crf if recording else 38)
    try:
        settings = VideoSettings(codec=codec, crf=crf)
        check_codec(codec)
    except (ValueError, VideoCodecError) as exc:
        raise _Refused(str(exc)) from None
    if args.dry_run:
        est = estimate(dataset, settings)
        if not est.episodes:
            print(f"nothing to compact: {est.already_video} episode(s) already stored as video")
            return 0
        minutes = est.cpu_s_per_frame * 1.5 * est.frames / 60
        print(f"{est.episodes} episode(s) to compact ({codec}, crf {crf}): "
              f"{est.file_bytes / 1e6:.1f} MB now, about {est.expected_file_bytes / 1e6:.1f} MB "
              f"after (saves {est.saving_bytes / 1e6:.1f} MB, "
              f"{100 * est.saving_bytes / max(1, est.file_bytes):.0f}%)")
        print(f"  JPEG frames {est.jpeg_bytes / 1e6:.1f} MB -> video about "
              f"{est.expected_video_bytes / 1e6:.1f} MB (measured on {est.sample_frames} "
              f"frames); about {minutes:.1f} min of one core")
        if est.already_video:
            print(f"  {est.already_video} episode(s) already stored as video")
        return 0
    tty = sys.stderr.isatty()
    state = {"episode": "", "k": 0, "n": 0}

    def on_episode(k: int, n: int, path: Path) -> None:
        state.update(episode=path.name, k=k, n=n)

    def on_frames(done: int, total: int) -> None:
        if tty:
            width = 30
            fill = int(width * done / max(1, total))
            print(f"\r[{'#' * fill}{'.' * (width - fill)}] episode {state['k'] + 1}/{state['n']} "
                  f"{state['episode']} {done}/{total} frames", end="", file=sys.stderr,
                  flush=True)

    def on_result(result) -> None:
        if tty:
            print("\r" + " " * 100 + "\r", end="", file=sys.stderr)
        name = Path(result.path).name
        if result.outcome == "transcoded":
            print(f"{name:<31} {result.bytes_before / 1e6:7.1f} MB -> "
                  f"{result.bytes_after / 1e6:6.1f} MB  PSNR {result.psnr_db_mean:.1f} dB "
                  f"(min {result.psnr_db_min:.1f})  {result.wall_s:.1f} s")
        else:
            print(f"{name:<31} {result.outcome}: {result.message}")

    try:
        report = compact_dataset(dataset, settings, on_episode=on_episode, on_frames=on_frames,
                                 on_result=on_result)
    except KeyboardInterrupt:
        print("\ninterrupted: every episode is intact; run the same command again to carry on",
              file=sys.stderr)
        return 130
    if report.stale_removed:
        print(f"removed {report.stale_removed} unfinished file(s) of an interrupted run")
    done = len(report.transcoded)
    print(f"{done} episode(s) compacted, {report.saved_bytes / 1e6:.1f} MB saved in "
          f"{report.seconds:.1f} s" + (f"; {len(report.not_transcoded)} left as they were"
                                       if report.not_transcoded else ""))
    if any(r.outcome == OUTCOME_NO_SPACE for r in report.results):
        print("vla-studio dataset: error: the disk is too full to compact; free some space and "
              "run it again", file=sys.stderr)
        return 1
    return 0


def _resolve_all(dataset, names: list[str], include_trashed: bool = False) -> list:
    """Every named episode, or a refusal naming the first that is not found (nothing done)."""
    return [_resolve(dataset, n, include_trashed) for n in names]


def _resolve(dataset, name: str, include_trashed: bool = False):
    """The summary of the episode ``name`` (path, file name, stem or episode-id prefix)."""
    from vla_studio.data.dataset_index import DatasetIndex

    rows = DatasetIndex(dataset).refresh(include_trashed=True)
    path = Path(name).expanduser()
    if path.exists():
        resolved = path.resolve()
        found = [s for s in rows if (dataset.root / s.file).resolve() == resolved]
        if not found:
            raise _Refused(f"{name} is not an episode of the dataset {dataset.root}")
    else:
        found = [s for s in rows if name in (s.name, s.name.removesuffix(".h5"))]
        if not found and len(name) >= MIN_ID_PREFIX:
            found = [s for s in rows if s.episode_id.startswith(name)]
    if not include_trashed and any(s.trashed for s in found):
        live = [s for s in found if not s.trashed]
        if not live:
            raise _Refused(f"{name} is in the trash; `vla-studio dataset restore {name}` first")
        found = live
    if not found:
        raise _Refused(f"no episode {name!r} in {dataset.root}; `vla-studio dataset list` shows "
                       "them")
    if len(found) > 1:
        raise _Refused(f"{name!r} matches {len(found)} episodes ("
                       + ", ".join(s.name for s in found[:5]) + "); give the file name")
    return found[0]


def _outcome(success: bool | None) -> str:
    return {True: "success", False: "failure", None: "unknown"}[success]


def _shown(key: str, value) -> str:
    if key == "success":
        return f"outcome={_outcome(value)}"
    return f"{key}=" + (json.dumps(value) if not isinstance(value, str) else repr(value))
