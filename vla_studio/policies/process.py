"""Launch, watch, kill and always reap the local policy process (:mod:`vla_studio.policies.worker`).

The child is started with ``subprocess`` (a fresh interpreter, never ``fork`` of an app that runs
Qt and a dozen threads) and serves on a Unix socket inside a private temporary directory. The
parent holds the child's stdin open: closing it, or the parent dying, ends the child.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from vla_studio.policies.errors import PolicyLoadError
from vla_studio.policies.registry import POLICIES

log = logging.getLogger(__name__)
# The child runs a little below the app's priority: on a 2-core machine, importing torch and
# loading a checkpoint (seconds of CPU) starved the control loop into overruns and a robot call
# past its deadline; at nice 5 the loop and the GUI come first and inference still runs ahead of
# the simulator's render threads (nice 10).
CHILD_NICE = 5


def _child_pythonpath() -> str:
    """The parent's import path without the interpreter's own directories, so the child imports
    the same VLA Studio (a worktree, a test tree) as the parent."""
    skip = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    entries = [str(Path(p or os.getcwd()).resolve()) for p in sys.path]
    keep = [p for p in entries if Path(p).is_dir() and not p.startswith(skip)]
    return os.pathsep.join(dict.fromkeys(keep))


def describe_exit(code: int | None) -> str:
    """``"killed by SIGSEGV"``, ``"exited with code 3"`` or ``"running"``."""
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class PolicyProcess:
    """One child process serving one policy.

    Args:
        source: what the child passes to :func:`~vla_studio.policies.loaders.load_policy`.
        trusted: allow formats that run code on load.
        threads: torch threads in the child.
        options: plugin config options.
        load_timeout_s: how long loading may take before the child is killed.
        nice: how much lower the child's CPU priority is than the app's (see CHILD_NICE).
    """

    def __init__(self, source: str, *, trusted: bool = False, threads: int = 1,
                 options: Mapping[str, Any] | None = None, load_timeout_s: float = 120.0,
                 nice: int = CHILD_NICE) -> None:
        self.source, self.trusted, self.threads = source, trusted, threads
        self.nice = nice
        self.options = dict(options or {})
        self.load_timeout_s = load_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self.socket_path: str = ""
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        """Launch the child and wait until it serves; returns the socket path.

        Raises:
            PolicyLoadError: the child could not load the policy (its one-line reason), or did
                not become ready within ``load_timeout_s``.
        """
        self.stop()
        self._dir = tempfile.mkdtemp(prefix="vla-policy-")  # 0700: only this user connects
        self.socket_path = os.path.join(self._dir, "policy.sock")
        # Registrations made at run time (tests, embedding apps) are not visible to a fresh
        # interpreter: hand over every non-plugin kind; plugins it finds itself.
        kinds = {n: i.target for n, i in POLICIES.infos().items() if i.origin == "built-in"}
        cmd = [sys.executable, "-m", "vla_studio.policies.worker", "--source", self.source,
               "--unix", self.socket_path, "--threads", str(self.threads),
               "--kinds", json.dumps(kinds), "--options", json.dumps(self.options),
               "--log-level", logging.getLevelName(max(logging.WARNING, log.getEffectiveLevel())),
               "--nice", str(self.nice)]
        if self.trusted:
            cmd.append("--trusted")
        env = dict(os.environ, PYTHONPATH=_child_pythonpath(), OMP_NUM_THREADS=str(self.threads))
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                      close_fds=True)
        self.starts += 1
        line = self._read_line(self.load_timeout_s)
        try:
            message = json.loads(line) if line else {}
        except json.JSONDecodeError:
            message = {"error": f"the policy process wrote {line[:80]!r} instead of its status"}
        if message.get("ready"):
            log.info("policy process %d serving %s", self._proc.pid, self.source)
            return self.socket_path
        code = self._proc.poll()
        self.stop()
        if "error" in message:
            raise PolicyLoadError(str(message["error"]))
        if code is None:
            raise PolicyLoadError(f"{self.source}: the policy process did not become ready "
                                  f"within {self.load_timeout_s:.0f} s and was stopped")
        raise PolicyLoadError(f"{self.source}: the policy process {describe_exit(code)} while "
                              "loading (see the log)")

    def _read_line(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([out], [], [], min(remaining, 0.5))
            if not ready:
                if self._proc.poll() is not None:
                    break
                continue
            chunk = os.read(out.fileno(), 4096)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace").strip()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_description(self) -> str:
        return describe_exit(self._proc.poll()) if self._proc is not None else "not started"

    def kill(self) -> None:
        """SIGKILL the child (a hung model) and reap it; the socket directory stays until stop."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            log.warning("killing policy process %d", proc.pid)
            proc.kill()
            proc.wait(timeout=10.0)

    def stop(self, grace_s: float = 2.0) -> None:
        """Close stdin (the child exits), escalate to SIGTERM then SIGKILL, reap, clean up."""
        proc, self._proc = self._proc, None
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    if pipe is not None:
                        pipe.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10.0)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "PolicyProcess":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

