"""The fake arm node (and its Zenoh router) as a child process of the tests, always reaped."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

FAKE_ARM = Path(__file__).with_name("ros2_fake_arm.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeArmProcess:
    """``ros2_fake_arm.py`` on a free loopback port; ``router`` is the endpoint to connect to."""

    def __init__(self, log_path: Path, pattern: bool = False, rate: float = 30.0) -> None:
        self.port = free_port()
        self.router = f"tcp/127.0.0.1:{self.port}"
        self.log_path, self.pattern, self.rate = log_path, pattern, rate
        self.estop_events: list[tuple[str, float]] = []
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._reader: threading.Thread | None = None
        self._log = None

    def start(self, timeout_s: float = 30.0) -> None:
        args = [sys.executable, str(FAKE_ARM), "--port", str(self.port), "--rate", str(self.rate)]
        if self.pattern:
            args.append("--pattern")
        self._log = open(self.log_path, "w", encoding="utf-8")
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, text=True,
                                      env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self._reader = threading.Thread(target=self._read, name="fake-arm-stdout", daemon=True)
        self._reader.start()
        line = self.next_line(timeout_s)
        if line != "ready":
            self.stop()
            raise RuntimeError(f"the fake arm did not start: {line!r} (see {self.log_path})")

    def command(self, word: str, timeout_s: float = 10.0) -> str:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(word + "\n")
        self._proc.stdin.flush()
        return self.next_line(timeout_s)

    def next_line(self, timeout_s: float) -> str:
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return "<timeout>"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # type: ignore[union-attr]
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
        for raw in self._proc.stdout:
            line = raw.strip()
            if line.startswith("estop "):  # unsolicited: kept apart from command answers
                self.estop_events.append((line.split()[1], time.monotonic()))
                continue
            self._lines.put(line)
