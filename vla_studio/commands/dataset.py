"""List, label, trash and restore the episodes of a dataset folder from the terminal.

The dataset is --dataset DIR, else the station profile's [recording] dataset_dir (--station,
default: the simulated tabletop). EPISODE is a file path, a file name (".h5" optional) or the
start of an episode id (at least 6 characters). Labels are written to the episode's annotations
file (<episode>.annotations.json) beside it: the recording itself is never changed, readers and
exports use the labels, and `undo` reverts the last edit.
`trash` moves episodes to the dataset's trash folder; `restore` brings them back. `verify`
recomputes every checksum of the episodes (per frame and per step chunk), checks their structure
and decodes a sample of frames; `list` and `show` flag an episode found damaged.

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
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

NAME = "dataset"
HELP = "list, verify, label, trash and restore recorded episodes"
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
    for name, what in (("trash", "move episodes to the trash (restorable)"),
                       ("restore", "move trashed episodes back")):
        p = sub.add_parser(name, parents=[common], help=what)
        p.add_argument("episodes", metavar="EPISODE", nargs="+")


def run(args: argparse.Namespace) -> int:
    from vla_studio.data.dataset import Dataset

    if args.dataset is not None:
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
                "trash": _trash, "restore": _restore}[args.action](dataset, args)
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
