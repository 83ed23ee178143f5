"""Record episodes without the window: unattended with the simulated expert, or with a device.

Each episode resets the scene (a simulator samples a new layout from the seed), starts the
session and records until the robot has judged the task done for --settle seconds, until
--max-seconds, or until the operator ends it with a device button (record stop / success /
failure). Episodes are saved into the dataset folder with their instruction, outcome and full
metadata; interrupted episodes from an earlier crash are recovered first. Ctrl-C saves the open
episode and stops.

With --lockstep (simulated stations only, the scripted expert driving) physics, cameras and the
control loop advance together on the simulated clock, as fast as the machine computes them: the
same loop, safety path, recorder and episode files, stamped with simulated time and marked
clock = "sim". --workers N records in N separate processes into the one dataset (episode i
keeps seed SEED+i and its task from the task list, whichever process records it).
--layout-repeats R gives R consecutive episodes the same seed (episode i: SEED + i // R): with
R = the number of tasks a task list cycles, every scene layout is demonstrated once per task,
so a policy cannot tell the task from the layout and must read the instruction.

Examples:
  vla-studio record --station resources/stations/sim_tabletop.toml --teleop scripted \\
      --task "pick up the red cube" --episodes 20 --seed 0
  vla-studio record --teleop scripted --task-file pick3.txt --episodes 200 --seed 1000 \\
      --lockstep --workers 2 --dataset data/pick
  vla-studio record --station my_cell.toml --teleop gamepad --task-file tasks.toml --episodes 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time

NAME = "record"
HELP = "record episodes headless (simulated expert or a teleop device)"
POLL_S = 0.02
RESUME_RETRY_S = 0.5
# Documented ranges of the numeric options (checked before anything starts).
MAX_EPISODES = 100_000
MAX_SEED = 2**32 - 1  # scene seeds are 32-bit (the simulator's and NumPy's generators)
MAX_EPISODE_S = 24 * 3600.0
MAX_SETTLE_S = 3600.0
MAX_WORKERS = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--station", metavar="FILE", default=argparse.SUPPRESS,
                        help="station profile (TOML); default: the simulated tabletop")
    parser.add_argument("--teleop", metavar="NAME", default=None,
                        help="teleop device of the profile, by name or type (default: the first)")
    parser.add_argument("--task", metavar="TEXT", default=None, help="the language instruction")
    parser.add_argument("--paraphrase", metavar="TEXT", action="append", default=[],
                        help="another phrasing of --task (repeatable)")
    parser.add_argument("--task-file", metavar="FILE", default=None,
                        help="tasks to cycle or sample (.txt, .toml or .json)")
    parser.add_argument("--episodes", type=int, default=1,
                        help=f"how many episodes to record (1 to {MAX_EPISODES})")
    parser.add_argument("--dataset", metavar="DIR", default=None,
                        help="dataset folder (default: the profile's [recording] dataset_dir)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"scene seed of the first episode (episode i uses SEED+i; 0 to "
                             f"{MAX_SEED})")
    parser.add_argument("--layout-repeats", type=int, default=1, metavar="R",
                        help="R consecutive episodes share a scene seed (SEED + i // R), e.g. "
                             "one layout per task of a cycled task list (default 1)")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="longest episode; it is saved (as a failure if the robot can tell); "
                             f"more than 0, at most {MAX_EPISODE_S:g}")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds the robot's success verdict must hold before the "
                             f"episode is saved (recorded too); 0 to {MAX_SETTLE_S:g}")
    parser.add_argument("--operator", default=None, help="operator name stored with episodes")
    parser.add_argument("--notes", default="", help="notes stored with every episode")
    parser.add_argument("--scene-id", default=None, help="scene id stored with episodes")
    parser.add_argument("--lockstep", action="store_true",
                        help="simulated stations: step physics, cameras and the loop together "
                             "on simulated time, as fast as they compute (scripted expert only)")
    parser.add_argument("--workers", type=int, default=1,
                        help=f"record in this many processes into the one dataset (1 to "
                             f"{MAX_WORKERS})")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary as the last line of stdout")


def run(args: argparse.Namespace) -> int:
    from vla_studio.commands import UsageError, station_profile
    from vla_studio.data.dataset import Dataset
    from vla_studio.data.dataset_index import DatasetIndex
    from vla_studio.data.labels import EpisodeLabels, LabelError
    from vla_studio.data.recorder import Recorder, RecorderError
    from vla_studio.data.tasks import TaskSampler, load_task_file, single_task

    if not args.task and not args.task_file:
        print("vla-studio record: error: give the instruction with --task \"...\" or a task list "
              "with --task-file FILE", file=sys.stderr)
        return 2
    try:
        _check_numbers(args)
    except UsageError as exc:
        print(f"vla-studio record: error: {exc}", file=sys.stderr)
        return 2
    profile = station_profile(args)
    dataset = Dataset(args.dataset or profile.dataset_dir)
    problem = _dataset_problem(dataset)
    if problem:
        print(f"vla-studio record: error: {problem}", file=sys.stderr)
        return 2
    task_file = load_task_file(args.task_file) if args.task_file else \
        single_task(args.task, tuple(args.paraphrase))
    done: dict[str, int] = {}
    if task_file.mode == "balanced" and dataset.episodes_dir.is_dir():
        for summary in DatasetIndex(dataset).refresh():
            done[summary.task] = done.get(summary.task, 0) + 1
    sampler = TaskSampler(task_file, done)
    rec = profile.recording
    labels = EpisodeLabels(operator=args.operator if args.operator is not None else rec.operator,
                           notes=args.notes,
                           scene_id=args.scene_id if args.scene_id is not None else rec.station_id)

    teleop = _pick_teleop(profile, args.teleop)
    problem = _expert_cannot_do(profile, teleop, task_file) or \
        (_lockstep_problem(profile, teleop) if args.lockstep else "")
    if problem:
        print(f"vla-studio record: error: {problem}", file=sys.stderr)
        return 2
    if args.workers > 1:
        from vla_studio.commands.record_workers import record_with_workers

        return record_with_workers(args, profile, dataset, sampler)
    started = time.monotonic()
    station = _make_station(profile, args.lockstep)
    results: list[dict] = []
    ids: list[tuple[str, int | None, str]] = []
    recorder = Recorder(station, dataset, tasks=sampler, labels=labels)
    recorder.save_on_success_s = args.settle
    try:
        station.start()
        if teleop is not None:
            station.use_teleop(teleop)
        recorder.connect()
        print(f"dataset {dataset.root}: {recorder.preflight().message}")
        for cam in station.cameras.values():
            if args.lockstep:  # rendered by the station's first tick; nothing to wait for
                continue
            if cam.wait_for_frame(timeout_s=10.0) is None:
                print(f"warning: camera '{cam.name}' has not delivered a frame yet",
                      file=sys.stderr)
        for i in range(args.episodes):
            seed = None if args.seed is None else args.seed + i // args.layout_repeats
            try:
                episode_id = recorder.start(seed=seed)
            except (RecorderError, LabelError) as exc:
                print(f"vla-studio record: error: {exc}", file=sys.stderr)
                return 1
            instruction = recorder.episode(episode_id).labels.instruction
            why = _run_episode(station, recorder, args.max_seconds)
            ids.append((episode_id, seed, why))
            info = recorder.episode(episode_id)
            print(f"episode {i + 1}/{args.episodes}: {instruction!r} ended by {why}, "
                  f"success={_word(info.success)}, {info.duration_s:.1f} s")
            if info.error:
                print(f"vla-studio record: error: {info.error}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        if recorder.is_connected and recorder.status().episode is not None:
            recorder.stop()
        print("vla-studio record: interrupted; the open episode is saved", file=sys.stderr)
        return 130
    finally:
        if recorder.is_connected:
            recorder.wait_idle(60.0)
            for n, (episode_id, seed, why) in enumerate(ids, 1):
                info = recorder.episode(episode_id)
                results.append({"episode": n, "id": episode_id, "instruction": info.labels.instruction,
                                "seed": seed, "ended_by": why, "success": info.success,
                                "steps": info.steps, "state": info.state.value,
                                "path": str(info.path) if info.path else ""})
            recorder.disconnect()
        station.close()
    total = len(DatasetIndex(dataset).refresh())
    elapsed = time.monotonic() - started
    print(f"recorded {len(results)} episode(s) into {dataset.root} in {elapsed:.1f} s; it now "
          f"holds {total}")
    if args.json:
        print(json.dumps({"dataset": str(dataset.root), "clock": station.clock.kind,
                          "elapsed_s": round(elapsed, 2), "episodes": results}))
    return 0


def _make_station(profile, lockstep: bool):
    if lockstep:
        from vla_studio.sim.lockstep import LockstepStation

        return LockstepStation.from_profile(profile)
    from vla_studio.station import Station

    return Station.from_profile(profile)


def _lockstep_problem(profile, teleop: str | None) -> str:
    """Why ``--lockstep`` cannot record with ``teleop`` on ``profile`` ('' when it can)."""
    from vla_studio.sim.lockstep import LOCKSTEP_TELEOPS, lockstep_problem

    problem = lockstep_problem(profile)
    if problem:
        return f"{problem}; record without --lockstep"
    spec = next((s for s in profile.teleops if s.name == teleop), None)
    if spec is None or spec.type not in LOCKSTEP_TELEOPS:
        return ("--lockstep runs the simulation faster than real time, which only the scripted "
                "expert can follow: use --teleop scripted (or record in real time without "
                "--lockstep)")
    return ""


def _check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option finite and inside its documented range (raises UsageError)."""
    from vla_studio.commands import UsageError, check_number

    check_number("--episodes", args.episodes, 1, MAX_EPISODES)
    check_number("--seed", args.seed, 0, MAX_SEED)
    check_number("--layout-repeats", args.layout_repeats, 1, MAX_EPISODES)
    seeds = (args.episodes - 1) // args.layout_repeats + 1
    if args.seed is not None and args.seed + seeds - 1 > MAX_SEED:
        raise UsageError(f"--seed {args.seed} is not allowed with --episodes {args.episodes}: "
                         f"the last episode's seed would be {args.seed + seeds - 1}; "
                         f"give a seed from 0 to {MAX_SEED - seeds + 1}")
    check_number("--max-seconds", args.max_seconds, 0.0, MAX_EPISODE_S, low_open=True, unit="s")
    check_number("--settle", args.settle, 0.0, MAX_SETTLE_S, unit="s")
    check_number("--workers", args.workers, 1, MAX_WORKERS)
    if args.workers > args.episodes:
        raise UsageError(f"--workers {args.workers} is more than the {args.episodes} episode(s) "
                         "to record; use at most one worker per episode")


def _dataset_problem(dataset) -> str:
    """Why episodes cannot be saved into ``dataset`` ('' when they can); creates its folders."""
    from vla_studio.data.dataset import DatasetError

    try:
        dataset.ensure()
    except DatasetError as exc:
        return str(exc)
    if not dataset.is_writable():
        return (f"cannot write to {dataset.episodes_dir}: check the folder's permissions, or "
                "choose a folder you can write to (--dataset DIR or the profile's [recording] "
                "dataset_dir)")
    return ""


def _pick_teleop(profile, wanted: str | None) -> str | None:
    """The station's teleop device name for ``wanted`` (a name or a type)."""
    from vla_studio.devices.base import DeviceError

    if not profile.teleops:
        if wanted:
            raise DeviceError(f"{profile.path}: the profile has no teleop devices, so --teleop "
                              f"{wanted} cannot be used; add a [[teleops]] table")
        return None
    if wanted is None:
        return profile.teleops[0].name
    for spec in profile.teleops:
        if wanted in (spec.name, spec.type):
            return spec.name
    raise DeviceError(f"{profile.path}: no teleop device named or typed {wanted!r}; the profile "
                      f"has: {', '.join(f'{s.name} ({s.type})' for s in profile.teleops)}")


def _expert_cannot_do(profile, teleop: str | None, task_file) -> str:
    """Why the scripted expert could not perform some task of ``task_file`` ('' when it can do
    them all, or when the teleop is not the expert): unattended, such an episode would only
    record the arm standing still until --max-seconds."""
    spec = next((s for s in profile.teleops if s.name == teleop), None)
    if spec is None or spec.type != "scripted":
        return ""
    from vla_studio.sim.tasks import UnknownInstruction, parse_instruction

    for task in task_file.tasks:
        try:
            parse_instruction(task.instruction)
        except UnknownInstruction as exc:
            return f"the scripted expert cannot perform this task: {exc}"
    return ""


def _run_episode(station, recorder, max_seconds: float) -> str:
    """Wait for the episode's end; returns what ended it. The recorder saves the episode itself
    once the robot has judged the task accomplished for ``recorder.save_on_success_s``."""
    from vla_studio.core.session import RunState
    from vla_studio.data.recorder import RecorderError
    from vla_studio.data.recording import RecorderState

    clock = station.clock  # lock-step: sleeping below is what runs the simulation
    t0 = clock.now()
    next_resume = t0
    while True:
        now = clock.now()
        if recorder.poll_task():
            return "success"
        status = recorder.status()
        if status.episode is None:
            return "recorder"  # a device button, or the recorder stopped it (disk, failure)
        if status.state == RecorderState.PAUSED and now >= next_resume:
            next_resume = now + RESUME_RETRY_S  # unattended: continue once the camera is back
            try:
                recorder.resume()
            except RecorderError:
                pass
        if now - t0 >= max_seconds:
            recorder.stop()
            return "time limit"
        if station.session.state == RunState.ESTOPPED:
            recorder.stop()
            return "e-stop"
        clock.sleep(POLL_S)


def _word(success: bool | None) -> str:
    return "unknown" if success is None else ("yes" if success else "no")
