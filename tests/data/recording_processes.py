"""Driving real recording processes (tests/data/recording_child.py) from crash tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

CHILD = Path(__file__).with_name("recording_child.py")


def start_child(dataset: Path, *args: str, stderr_path: Path | None = None) -> subprocess.Popen:
    """Start a recording process on ``dataset`` (stderr to a file: a full pipe would block it)."""
    err = open(stderr_path, "w") if stderr_path is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, str(CHILD), str(dataset), *args],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    finally:
        if stderr_path is not None:
            err.close()


def read_until(proc: subprocess.Popen, wanted: Callable[[str], bool], timeout_s: float = 60.0,
               seen: list[str] | None = None) -> str:
    """Read the process's stdout until a line ``wanted`` accepts; returns it. Every line read is
    appended to ``seen``. The process is killed and an AssertionError raised when it ends or
    the time is up first (it prints a line every 0.1 s, so the deadline is checked often)."""
    deadline = time.monotonic() + timeout_s
    for line in proc.stdout:
        if seen is not None:
            seen.append(line)
        if wanted(line):
            return line
        if time.monotonic() > deadline:
            break
    proc.kill()
    proc.wait(10)
    raise AssertionError(f"the recording process never printed the line waited for "
                         f"(exit code {proc.returncode})")


def kill(proc: subprocess.Popen) -> float:
    """SIGKILL the process; returns the host monotonic time of the kill (the clock the child's
    step times use)."""
    t = time.monotonic()
    proc.kill()
    proc.wait(10)
    return t


def committed(line: str, at_least: int = 1) -> bool:
    """Whether ``line`` reports a journal commit of at least ``at_least`` steps."""
    return line.startswith("committed ") and int(line.split()[1]) >= at_least
