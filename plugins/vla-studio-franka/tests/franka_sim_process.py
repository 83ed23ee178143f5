"""franky-sim as a child process of the tests: started, talked to and always reaped."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

SERVER = Path(__file__).with_name("franka_sim_server.py")


class FrankaSimProcess:
    """``franka_sim_server.py`` in a child process on a free loopback address.

    Attributes:
        hostname: the address its robot (1337) and gripper (1338) servers listen on.
    """

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.hostname = ""
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._reader: threading.Thread | None = None
        self._log = None

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the simulator and wait until it listens."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "w", encoding="utf-8")
        self._proc = subprocess.Popen([sys.executable, str(SERVER)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, text=True,
                                      env=env)
        self._reader = threading.Thread(target=self._read, name="franky-sim-stdout", daemon=True)
        self._reader.start()
        line = self._next(timeout_s)
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"franky-sim did not start: {line!r} (see {self.log_path})")
        self.hostname = line.split()[1]

    def command(self, *words: str, timeout_s: float = 10.0) -> None:
        """Send one command (``reflex cartesian_reflex``, ``wrench ...``) and wait for its ok."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(" ".join(words) + "\n")
        self._proc.stdin.flush()
        line = self._next(timeout_s)
        if not line.startswith("ok "):
            raise RuntimeError(f"franky-sim answered {line!r} to {words}")

    def stop(self) -> None:
        """Ask it to quit (EOF on stdin), then reap it, killing it if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10.0)
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        if self._log is not None:
            self._log.close()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line.strip())
        self._lines.put("<exited>")

    def _next(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return "<timeout>"
