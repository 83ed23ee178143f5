"""``vla-studio record --workers N``: several recording processes filling one dataset.

```
 parent: tasks for episodes 0..E-1 (the task list's order or sampling, decided once, here)
         seeds SEED+0 .. SEED+E-1 (SEED + i // R with --layout-repeats R); contiguous
         blocks, one per worker (whole groups of R episodes)
   |-- worker 1: vla-studio record --episodes k1 --seed SEED    --task-file block1.json ...
   |-- worker 2: vla-studio record --episodes k2 --seed SEED+k1 --task-file block2.json ...
   '-- ... each its own station (simulator, cameras) and recorder, into the same folder
 parent: relays their lines, reaps them, refreshes the index, merges the instruction history
```
Why it is safe to share the folder: episode files are named by time and a random id (no two
processes pick the same name), each file is locked by the process writing it (recovery at a
worker's start leaves a live sibling's files alone), and ``index.sqlite`` is a cache updated
under SQLite's own locking and refreshed from the files at the end. The instruction history
(a small JSON file each process rewrites) is rebuilt by the parent once the workers are done.

The parent never starts a simulation itself; Ctrl-C interrupts every worker (each saves its
open episode) and every worker process is waited for, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TERMINATE_GRACE_S = 30.0


def plan_blocks(episodes: int, workers: int, repeats: int = 1) -> list[tuple[int, int]]:
    """``(first episode, count)`` per worker: contiguous blocks as even as possible, each
    starting at a multiple of ``repeats`` (the episodes sharing a seed stay in one block);
    workers left without episodes get no block."""
    groups = -(-episodes // repeats)
    base, extra = divmod(groups, workers)
    blocks, first = [], 0
    for w in range(workers):
        count = min((base + (1 if w < extra else 0)) * repeats, episodes - first)
        if count > 0:
            blocks.append((first, count))
        first += count
    return blocks


def worker_command(args: argparse.Namespace, first: int, count: int, seed: int,
                   task_file: Path) -> list[str]:
    """The command line of one worker (the parent's options, its own block)."""
    cmd = [sys.executable, "-m", "vla_studio", "--log-level", "WARNING"]
    if getattr(args, "station", None):
        cmd += ["--station", str(args.station)]
    repeats = getattr(args, "layout_repeats", 1)
    cmd += ["record", "--episodes", str(count), "--seed", str(seed + first // repeats),
            "--layout-repeats", str(repeats),
            "--task-file", str(task_file), "--dataset", str(args.dataset_root),
            "--max-seconds", repr(args.max_seconds), "--settle", repr(args.settle),
            "--notes", args.notes, "--json"]
    for flag, value in (("--teleop", args.teleop), ("--operator", args.operator),
                        ("--scene-id", args.scene_id)):
        if value is not None:
            cmd += [flag, value]
    if args.lockstep:
        cmd.append("--lockstep")
    return cmd


def record_with_workers(args: argparse.Namespace, profile, dataset, sampler) -> int:
    """Record ``args.episodes`` episodes with ``args.workers`` processes (see the module)."""
    from vla_studio.data.dataset_index import DatasetIndex
    from vla_studio.data.labels import InstructionHistory
    from vla_studio.data.recovery import recover_dataset

    recover_dataset(dataset)  # once, before any worker writes (each also checks at its start)
    history = InstructionHistory(dataset.history_path)
    history.recent()  # read now: the workers rewrite the file; rebuilt from this at the end
    seed = args.seed if args.seed is not None else int(getattr(profile.robot.config, "seed", 0))
    tasks = []
    for _ in range(args.episodes):
        task = sampler.next()
        sampler.mark_done(task.task)
        tasks.append(task)
    args.dataset_root = dataset.root
    started = time.monotonic()
    repeats = args.layout_repeats
    blocks = plan_blocks(args.episodes, args.workers, repeats)
    with tempfile.TemporaryDirectory(prefix="vla-record-workers-") as tmp:
        commands = []
        for w, (first, count) in enumerate(blocks):
            path = Path(tmp) / f"tasks-{w + 1}.json"
            path.write_text(json.dumps({"mode": "sequence", "tasks": [
                {"instruction": t.instruction, "paraphrases": list(t.paraphrases),
                 "task": t.task} for t in tasks[first:first + count]]}), encoding="utf-8")
            commands.append(worker_command(args, first, count, seed, path))
        print(f"recording {args.episodes} episode(s) with {len(blocks)} worker processes into "
              f"{dataset.root} (seeds {seed}..{seed + (args.episodes - 1) // repeats})",
              flush=True)
        codes, summaries = _run_workers(commands)
    episodes = []
    for w, summary in enumerate(summaries):
        for ep in (summary or {}).get("episodes", []):
            ep = dict(ep, worker=w + 1, episode=blocks[w][0] + int(ep.get("episode", 0)))
            episodes.append(ep)
            if ep.get("state") == "saved" and ep.get("instruction"):
                history.add(ep["instruction"])
    episodes.sort(key=lambda e: e["episode"])
    total = len(DatasetIndex(dataset).refresh())
    elapsed = time.monotonic() - started
    print(f"recorded {len(episodes)} episode(s) with {args.workers} workers into {dataset.root} "
          f"in {elapsed:.1f} s; it now holds {total}")
    if args.json:
        print(json.dumps({"dataset": str(dataset.root), "clock": "sim" if args.lockstep else "host",
                          "workers": args.workers, "elapsed_s": round(elapsed, 2),
                          "episodes": episodes}))
    if any(c == 130 for c in codes):
        return 130
    return max(codes) if codes else 0


def _run_workers(commands: list[list[str]]) -> tuple[list[int], list[dict | None]]:
    """Start every worker, relay their output prefixed ``[wN]``, and reap them all.

    Returns each worker's exit status and the JSON summary it printed last (None if none)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs: list[subprocess.Popen[str]] = []
    summaries: list[dict | None] = [None] * len(commands)
    try:
        for cmd in commands:
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, env=env, start_new_session=True))
        sel = selectors.DefaultSelector()
        for w, p in enumerate(procs):
            assert p.stdout is not None
            sel.register(p.stdout, selectors.EVENT_READ, w)
        open_pipes = len(procs)
        while open_pipes:
            for key, _ in sel.select(timeout=1.0):
                w = key.data
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if not line:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                if line.startswith("{"):
                    try:
                        summaries[w] = json.loads(line)
                        continue
                    except json.JSONDecodeError:
                        pass
                print(f"[w{w + 1}] {line}", end="", flush=True)
        sel.close()
        return [p.wait() for p in procs], summaries
    except KeyboardInterrupt:
        for p in procs:  # each worker saves its open episode on SIGINT
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        _reap(procs)
        return [130 for _ in procs], summaries
    except Exception:
        for p in procs:  # the parent failed: the workers must not run on unattended
            if p.poll() is None:
                p.terminate()
        raise
    finally:
        _reap(procs)


def _reap(procs: list[subprocess.Popen]) -> None:
    """Wait for every worker; terminate, then kill, those that do not end in time."""
    deadline = time.monotonic() + TERMINATE_GRACE_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p.stdout is not None:
            p.stdout.close()
