"""Full-disk scenarios on a private 10 MB tmpfs; run inside ``unshare -rm`` by test_disk_full.

Usage: python full_disk_driver.py SCENARIO MOUNTPOINT [CHILD ARGS...]

Scenarios (each prints one JSON object as its last line):
  held_full     record; once 20 steps are committed another process fills the disk and holds
                it at zero free space until the recording process has exited; then recover
                while the disk is still full, then again once it is freed
  killed_full   record, SIGKILL the recording after 20 committed steps, fill the disk to the
                last byte, recover while it is full
  start_full    record until another process holds the disk full (as held_full), then start
                ``vla-studio record`` on it while it is still full
Every recovery runs in its own process (an HDF5 failure must not end the driver).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PY = sys.executable
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
RECOVER = """
import json, sys
from vla_studio.data.dataset import Dataset
from vla_studio.data.episode_file import EpisodeReader
from vla_studio.data.recovery import recover_dataset
ds = Dataset(sys.argv[1])
out = {"results": [[r.outcome, r.num_steps, r.message] for r in recover_dataset(ds)],
       "episodes": [], "recording": [p.name for p in ds.recording_files()]}
for p in ds.episode_files():
    with EpisodeReader(p) as ep:
        out["episodes"].append({"name": p.name, "steps": ep.num_steps, "status": ep.attrs["status"],
                                "flags": ep.attrs["flags"], "is_last": bool(ep.step("is_last")[-1]),
                                "images": all(len(b) > 0 for b in ep.iter_image_bytes("front"))})
print(json.dumps(out))
"""


def child(dataset: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([PY, str(HERE / "recording_child.py"), str(dataset), "--min-free-mb",
                             "0", "--size", "640x480", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def filler(mnt: Path) -> subprocess.Popen:
    proc = subprocess.Popen([PY, str(HERE / "disk_filler.py"), str(mnt / "fill")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "full"
    return proc


def recover(dataset: Path) -> dict:
    proc = subprocess.run([PY, "-c", RECOVER, str(dataset)], capture_output=True, text=True,
                          env=ENV, timeout=120)
    if proc.returncode != 0:
        return {"crashed": proc.returncode, "stderr": proc.stderr[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def record_until_committed(dataset: Path, steps: int, *args: str) -> tuple[subprocess.Popen, list]:
    proc, lines = child(dataset, "--seconds", "60", *args), []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("committed ") and int(line.split()[1]) >= steps:
            return proc, lines
    raise RuntimeError(f"the recording ended early: {proc.stderr.read()[-3000:]}")


def held_full(mnt: Path, args: list[str]) -> dict:
    dataset = mnt / "ds"
    proc, lines = record_until_committed(dataset, 20, *args)
    committed = int(lines[-1].split()[1])
    hog = filler(mnt)
    out, err = proc.communicate(timeout=120)
    result = {"rc": proc.returncode, "stdout": "".join(lines) + out, "stderr": err[-3000:],
              "committed_before_full": committed, "while_full": recover(dataset)}
    hog.kill()
    hog.wait()
    os.unlink(mnt / "fill")
    result["after_freeing"] = recover(dataset)
    return result


def killed_full(mnt: Path, args: list[str]) -> dict:
    dataset = mnt / "ds"
    proc, lines = record_until_committed(dataset, 20, *args)
    proc.kill()
    proc.wait()
    hog = filler(mnt)
    result = {"committed_before_kill": int(lines[-1].split()[1]), "while_full": recover(dataset),
              "free_bytes": os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize}
    hog.kill()
    hog.wait()
    return result


def start_full(mnt: Path, args: list[str]) -> dict:
    dataset = mnt / "ds"
    proc, _ = record_until_committed(dataset, 20, *args)
    hog = filler(mnt)  # the disk fills during the episode and stays full
    proc.communicate(timeout=120)
    cmd = [PY, "-m", "vla_studio.cli", "record", "--station",
           str(ROOT / "resources/stations/dry_run.toml"), "--task", "push the block",
           "--max-seconds", "1", "--dataset", str(dataset)]
    started = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    hog.kill()
    hog.wait()
    return {"first_rc": proc.returncode, "rc": started.returncode, "stdout": started.stdout,
            "stderr": started.stderr}


def main() -> int:
    scenario, mnt, args = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mnt)])
    if mount.returncode != 0:
        return 97
    started = time.monotonic()
    result = {"held_full": held_full, "killed_full": killed_full,
              "start_full": start_full}[scenario](mnt, args)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
