"""Replay recorded episodes in the main window's Replay view, or check them in the simulator.

FILE is an episode file; DATASET a dataset folder, with EPISODE a file name or the start of an
episode id (default: the newest episode). The window opens on the station profile (--station,
default: the simulated tabletop) with its Episodes list on that dataset, so N and P walk it.

--sim-check opens no window: it re-executes the episode (every episode of DATASET without
EPISODE) in the simulator from its recorded scene seed with its recorded filtered actions, and
prints how far the re-executed end effector strays from the recorded one (a quick check that the
actions reproduce the demonstrations; sim episodes only).

Examples:
  vla-studio replay ~/vla-studio/datasets/sim
  vla-studio replay ~/vla-studio/datasets/sim 20261202-165253_dfbf5d72
  vla-studio replay ~/vla-studio/datasets/sim/episodes/20261202-165253_dfbf5d72.h5
  vla-studio replay ~/vla-studio/datasets/sim --sim-check --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from vla_studio.commands import UsageError

NAME = "replay"
HELP = "replay and annotate episodes in the window (or --sim-check them in the simulator)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="FILE|DATASET",
                        help="an episode file, or a dataset folder")
    parser.add_argument("episode", nargs="?", default=None, metavar="EPISODE",
                        help="with a dataset: the episode (file name or start of its id; "
                             "default: the newest)")
    parser.add_argument("--sim-check", action="store_true",
                        help="no window: re-execute in the simulator and print the divergence")
    parser.add_argument("--json", action="store_true",
                        help="with --sim-check: one JSON object per episode, then a summary")
    parser.add_argument("--reset-layout", action="store_true",
                        help="forget the saved window layout")


def resolve(path: Path, episode: str | None) -> tuple[Path | None, list[Path]]:
    """``(dataset folder or None, episode files)`` for the command's arguments: one episode
    for a file or a named episode, every saved episode of a dataset (newest first) otherwise.

    Raises:
        UsageError: nothing to replay there.
    """
    from vla_studio.commands.dataset import _Refused, _resolve
    from vla_studio.data.dataset import Dataset
    from vla_studio.data.dataset_index import DatasetIndex

    path = path.expanduser()
    if path.is_file():
        if episode is not None:
            raise UsageError(f"{path} is an episode file: give EPISODE only with a dataset folder")
        folder = path.parent
        dataset = folder.parent if folder.name in ("episodes", "trash") else None
        return dataset, [path]
    if not path.is_dir():
        raise UsageError(f"{path} does not exist: give an episode file (.h5) or a dataset folder")
    dataset = Dataset(path)
    if not dataset.episodes_dir.is_dir():
        raise UsageError(f"{path} is not a dataset folder (it has no episodes/ folder)")
    if episode is not None:
        try:
            summary = _resolve(dataset, episode)
        except _Refused as exc:
            raise UsageError(str(exc)) from None
        return path, [dataset.root / summary.file]
    rows = [s for s in DatasetIndex(dataset).refresh() if not s.trashed]
    if not rows:
        raise UsageError(f"{path} holds no saved episodes yet; record some first")
    rows.sort(key=lambda s: s.created, reverse=True)
    return path, [dataset.root / s.file for s in rows]


def run(args: argparse.Namespace) -> int:
    dataset, episodes = resolve(args.path, args.episode)
    if args.sim_check:
        return _sim_check(episodes, args.json)
    from vla_studio.commands import station_profile

    profile = station_profile(args)
    if dataset is not None:  # the Episodes list (and N / P) on the dataset being replayed
        profile = dataclasses.replace(profile, recording=dataclasses.replace(
            profile.recording, dataset_dir=str(dataset)))
    from vla_studio.ui.app import run_app  # Qt is imported only for the window

    return run_app(profile, reset_layout=args.reset_layout, replay=episodes[0])


def _sim_check(episodes: list[Path], as_json: bool) -> int:
    import logging

    from vla_studio.sim.reexecute import ReexecutionError, reexecute

    logging.getLogger("vla_studio.devices.robots.sim").setLevel(logging.WARNING)  # per episode
    results, failed = [], 0
    for path in sorted(episodes):
        try:
            r = reexecute(path)
        except ReexecutionError as exc:
            failed += 1
            print(f"{path.name}: cannot re-execute: {exc}", file=sys.stderr)
            continue
        row = {"file": path.name, "steps": r.steps, "seed": r.seed,
               "mean_mm": round(r.mean_mm, 4), "max_mm": round(r.max_mm, 4),
               "final_mm": round(r.final_mm, 4), "success_step": r.success_step}
        results.append(row)
        if as_json:
            print(json.dumps(row))
        else:
            moment = f", task done at step {r.success_step}" if r.success_step is not None else ""
            print(f"{path.name}: {r.steps} steps, divergence mean {r.mean_mm:.3f} mm, max "
                  f"{r.max_mm:.3f} mm, final {r.final_mm:.3f} mm{moment}")
    if not results:
        return 2 if failed else 0
    means = sorted(row["mean_mm"] for row in results)
    maxima = sorted(row["max_mm"] for row in results)
    summary = {"episodes": len(results), "not_reexecuted": failed,
               "median_mean_mm": means[len(means) // 2], "median_max_mm": maxima[len(maxima) // 2],
               "worst_max_mm": maxima[-1]}
    print(json.dumps(summary) if as_json else
          f"{len(results)} episode(s): median divergence {summary['median_mean_mm']:.3f} mm "
          f"(median of the maxima {summary['median_max_mm']:.3f} mm, worst "
          f"{summary['worst_max_mm']:.3f} mm)")
    return 0
