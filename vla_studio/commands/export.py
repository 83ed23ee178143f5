"""Export a dataset folder to a training format: RLDS (tensorflow_datasets, Octo, OpenVLA) or
a LeRobotDataset v3 (LeRobot).

rlds: writes a TFDS dataset directory OUT/NAME/VERSION that tensorflow_datasets, Octo and OpenVLA
load unchanged (tfds.builder(NAME, data_dir=OUT)). Camera frames are copied as recorded (no
re-encoding) unless --image-size asks for another size. Episodes still being recorded or damaged
are skipped with the reason; the export is built in a temporary folder and appears only when
complete.

Open X-Embodiment names (what Octo/OpenVLA dataset configs expect): --camera-map renames the
cameras and exports only those it names; --state-keys picks the state keys concatenated, in
that order, into observation/state (their element names are in features.json and
metadata.json).

Annotations (made in the replay view or with `vla-studio dataset label`) are honoured: trims,
edited instructions and outcomes. --outcomes and --min-quality leave episodes out by their
labels; --subtasks writes the subtask segments as a per-step language_subtask (plus
subtask_index and is_subtask_first). metadata.json lists, per episode, which edits were applied.

Examples:
  vla-studio export rlds ~/vla_datasets/pick_cube exports --name pick_cube
  vla-studio export rlds ~/vla_datasets/pick_cube exports --name pick_cube_224 \\
      --image-size 224 --success-only --val-fraction 0.05
  vla-studio export rlds ~/vla_datasets/pick_cube exports --name pick_cube_oxe \\
      --camera-map front=image,wrist=wrist_image --state-keys ee_pos,ee_quat,gripper
  vla-studio export rlds ~/vla_datasets/pick_cube exports --name pick_cube_reviewed \\
      --outcomes success,unknown --min-quality 3 --subtasks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "export"
HELP = "export a dataset (RLDS for tensorflow_datasets / Octo / OpenVLA, or LeRobot)"

LEROBOT_DOC = """Write a LeRobotDataset v3 folder OUT that LeRobot loads unchanged:
LeRobotDataset(REPO_ID, root=OUT). One video per camera (AV1 like LeRobot's own, or H.264),
parquet frames (observation.state, action, timestamp, next.reward, next.done, action_source),
meta/info.json, tasks (each episode's instruction), episodes and statistics. Frames come from
the episodes' JPEGs or their video storage alike. Annotations are honoured as in the RLDS export:
trims, edited instructions, --success-only / --outcomes / --min-quality. Depth is not exported.

Examples:
  vla-studio export lerobot ~/vla_datasets/pick_cube lerobot/pick_cube --repo-id me/pick_cube
  vla-studio export lerobot ~/vla_datasets/pick_cube lerobot/pick_cube_10hz \\
      --repo-id me/pick_cube_10hz --fps 10 --success-only
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = sub.add_parser("rlds", help="TFDS/RLDS dataset directory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path, help="dataset folder (holds episodes/*.h5)")
    p.add_argument("out", type=Path, help="TFDS data dir to write into (created if missing)")
    p.add_argument("--name", required=True,
                   help="dataset name: lowercase snake_case starting with a letter")
    p.add_argument("--version", default="1.0.0", help="dataset version X.Y.Z (default 1.0.0)")
    p.add_argument("--image-size", metavar="N|WxH", default=None,
                   help="resize colour frames, e.g. 224 or 320x240 (default: keep and copy "
                        "the recorded frames)")
    p.add_argument("--success-only", action="store_true",
                   help="export only episodes marked successful (same as --outcomes success)")
    p.add_argument("--outcomes", metavar="OUTCOME,...", default=None,
                   help="export only episodes with these outcomes: success, failure, unknown "
                        "(default: all)")
    p.add_argument("--min-quality", type=int, default=None, metavar="1-5",
                   help="leave out episodes rated below this quality (unrated episodes stay)")
    p.add_argument("--subtasks", action="store_true",
                   help="write subtask segments: per-step language_subtask, subtask_index, "
                        "is_subtask_first")
    dagger = p.add_mutually_exclusive_group()
    dagger.add_argument("--dagger", dest="dagger", action="store_true", default=None,
                        help="write the DAgger step labels (intervention, pre_intervention, "
                             "policy_action, confidence; default: when policy runs are "
                             "exported)")
    dagger.add_argument("--no-dagger", dest="dagger", action="store_false",
                        help="never write the DAgger step labels")
    p.add_argument("--pre-intervention-s", type=float, default=1.0, metavar="S",
                   help="steps the policy drove this long before a takeover are labelled "
                        "pre_intervention (default 1)")
    p.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                   help="share of episodes in a 'val' split, e.g. 0.05 (default 0: none)")
    p.add_argument("--depth", action="store_true", help="also export depth (16-bit PNG)")
    p.add_argument("--jpeg-quality", type=int, default=95,
                   help="quality of re-encoded frames (default 95)")
    p.add_argument("--shard-mb", type=float, default=128.0,
                   help="target shard size in MB (default 128)")
    p.add_argument("--workers", type=int, default=0,
                   help="episodes encoded in parallel (default: 1 when frames are copied, "
                        "one per core when they are resized)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing export with the same name and version")
    p.add_argument("--camera-map", metavar="CAM=NAME,...", default=None,
                   help="export these cameras under these names, in this order, e.g. "
                        "front=image,wrist=wrist_image (default: every camera, recorded names)")
    p.add_argument("--state-keys", metavar="KEY,...", default=None,
                   help="state keys concatenated into observation/state, in this order, e.g. "
                        "ee_pos,ee_quat,gripper (default: every key, sorted by name)")


    p = sub.add_parser("lerobot", help="LeRobotDataset v3 folder (LeRobot's loader)",
                       description=LEROBOT_DOC,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path, help="dataset folder (holds episodes/*.h5)")
    p.add_argument("out", type=Path, help="the LeRobot dataset folder to create")
    p.add_argument("--repo-id", required=True, metavar="NAME",
                   help="the dataset's name, user/name (LeRobotDataset(NAME, root=OUT))")
    p.add_argument("--fps", type=int, default=None,
                   help="frames per second (default: the recording's control rate)")
    p.add_argument("--success-only", action="store_true",
                   help="export only episodes marked successful")
    p.add_argument("--outcomes", metavar="OUTCOME,...", default=None,
                   help="export only episodes with these outcomes: success, failure, unknown")
    p.add_argument("--min-quality", type=int, default=None, metavar="1-5",
                   help="leave out episodes rated below this quality (unrated episodes stay)")
    p.add_argument("--codec", choices=("av1", "h264"), default="av1",
                   help="video codec (default av1, LeRobot's)")
    p.add_argument("--crf", type=int, default=30, help="video quality (default 30, LeRobot's)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def run(args: argparse.Namespace) -> int:
    if args.format == "lerobot":
        return _lerobot(args)
    from vla_studio.data.rlds import (ExportError, ExportOptions, ExportProgress, RldsExporter,
                                      parse_camera_map, parse_image_size, parse_state_keys)
    from vla_studio.data.rlds.selection import describe_left_out, parse_outcomes

    tty = sys.stderr.isatty()

    def show(p: ExportProgress) -> None:
        if p.phase == "done":
            if tty:
                print(file=sys.stderr)
            return
        line = f"{p.phase} {p.done}/{p.total} episodes"
        if p.phase == "writing":
            line += f", {p.bytes_written / 1e6:.1f} MB"
        if p.skipped:
            line += f", {p.skipped} skipped"
        if tty:
            print(f"\r{line:<70}", end="", file=sys.stderr, flush=True)
        elif p.done == p.total:
            print(line, file=sys.stderr)

    try:
        options = ExportOptions(
            name=args.name, version=args.version,
            image_size=parse_image_size(args.image_size) if args.image_size else None,
            success_only=args.success_only, val_fraction=args.val_fraction,
            include_depth=args.depth, jpeg_quality=args.jpeg_quality, shard_mb=args.shard_mb,
            workers=args.workers, overwrite=args.overwrite,
            camera_map=parse_camera_map(args.camera_map) if args.camera_map is not None else None,
            state_keys=parse_state_keys(args.state_keys) if args.state_keys is not None else None,
            outcomes=parse_outcomes(args.outcomes) if args.outcomes is not None else None,
            min_quality=args.min_quality, subtasks=args.subtasks, dagger=args.dagger,
            pre_intervention_s=args.pre_intervention_s)
        report = RldsExporter(args.dataset, args.out, options, progress=show).run()
    except ExportError as exc:
        print(f"vla-studio: error: {exc}", file=sys.stderr)
        return 2

    splits = ", ".join(f"{n} {s} ({report.shards[s]} shard{'s' if report.shards[s] > 1 else ''})"
                       for s, n in report.episodes.items())
    print(f"exported {splits}: {report.steps} steps, {report.bytes_written / 1e6:.1f} MB "
          f"in {report.seconds:.1f} s")
    print(f"  {report.dataset_dir}")
    filled = sum(report.filled_frames.values())
    if filled:
        per_cam = ", ".join(f"{c} {n}" for c, n in report.filled_frames.items() if n)
        print(f"  {filled} step(s) had no new camera frame and repeat the previous one ({per_cam})")
    for reason, count in report.left_out.items():
        print(f"  {count} episode(s) left out: {describe_left_out(reason)}")
    if report.skipped:
        print(f"  {len(report.skipped)} episode(s) skipped:")
        for path, reason in report.skipped:
            print(f"    {path.name}: {reason}")
    for message in report.warnings:
        print(f"  warning: {message}")
    print(f"  load it: tfds.builder({options.name!r}, data_dir={str(args.out)!r})")
    return 0


def _lerobot(args: argparse.Namespace) -> int:
    from vla_studio.data.lerobot import LeRobotExporter, LeRobotOptions, LeRobotProgress
    from vla_studio.data.rlds import ExportError
    from vla_studio.data.rlds.selection import describe_left_out, parse_outcomes

    tty = sys.stderr.isatty()

    def show(p: LeRobotProgress) -> None:
        if tty and p.phase != "done":
            print(f"\r{p.phase} {p.done}/{p.total} episodes {p.current:<34}", end="",
                  file=sys.stderr, flush=True)
        elif tty:
            print(file=sys.stderr)

    try:
        options = LeRobotOptions(
            repo_id=args.repo_id, fps=args.fps, success_only=args.success_only,
            outcomes=parse_outcomes(args.outcomes) if args.outcomes is not None else None,
            min_quality=args.min_quality, codec=args.codec, crf=args.crf,
            overwrite=args.overwrite)
        report = LeRobotExporter(args.dataset, args.out, options, progress=show).run()
    except ExportError as exc:
        print(f"vla-studio: error: {exc}", file=sys.stderr)
        return 2
    storages = ", ".join(f"{n} {s}" for s, n in sorted(report.storages.items()))
    print(f"exported {report.episodes} episodes, {report.frames} frames at {report.fps} fps, "
          f"{report.tasks} task(s): {report.bytes_written / 1e6:.1f} MB in {report.seconds:.1f} s"
          f" (read from {storages})")
    print(f"  {report.root}")
    for reason, count in report.left_out.items():
        print(f"  {count} episode(s) left out: {describe_left_out(reason)}")
    if report.skipped:
        print(f"  {len(report.skipped)} episode(s) skipped:")
        for path, reason in report.skipped:
            print(f"    {path.name}: {reason}")
    print(f"  load it: LeRobotDataset({options.repo_id!r}, root={str(report.root)!r})")
    return 0
