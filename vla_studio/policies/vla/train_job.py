"""A training run in a child process, followed without blocking anyone (the GUI's Train dialog).

```
 caller (GUI thread, a timer)            "train-job-output" thread        child process
 TrainJob.start() --Popen-------------------------------------------->  vla-studio train
 TrainJob.poll() <--queue of reports--  reads stdout: {"progress":..}     --progress-json --json
                                        and the final {"run_dir":...}     (its own torch
 TrainJob.cancel() --SIGINT, then SIGTERM, SIGKILL ------------------>   threads, no GIL
 TrainJob.close()  --reap, join the reader                                 shared with Qt)
```
The child is a fresh interpreter (``python -m vla_studio train``), so training never competes
with the window for the GIL, a crash in it cannot take the window down, and cancelling is a
signal: the checkpoint of the last finished epoch stays in ``RUN/last`` (resumable). stderr
(the progress line, warnings, a one-line error) is kept for the caller to show.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
STDERR_LINES_KEPT = 50


@dataclass(frozen=True)
class TrainRequest:
    """What to train (the dialog's form): the command-line options of ``vla-studio train``."""

    datasets: tuple[str, ...]
    out: str
    epochs: int = 10
    chunk: int = 10
    batch_size: int = 64
    seed: int = 0
    threads: int = 0
    max_minutes: float = 0.0
    extra: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        args = ["train", "--out", self.out, "--epochs", str(self.epochs), "--chunk",
                str(self.chunk), "--batch-size", str(self.batch_size), "--seed", str(self.seed),
                "--threads", str(self.threads), "--progress-json", "--json"]
        for d in self.datasets:
            args += ["--dataset", d]
        if self.max_minutes > 0:
            args += ["--max-minutes", str(self.max_minutes)]
        return args + list(self.extra)


@dataclass
class TrainState:
    """What the job knows so far (the caller's copy, updated by :meth:`TrainJob.poll`)."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    step: int = 0
    total_steps: int = 0
    message: str = ""
    samples_per_s: float = 0.0
    result: dict | None = None


class TrainJob:
    """One ``vla-studio train`` child process (see the module docstring).

    Args:
        request: what to train.
        python: the interpreter (default: this one).
    """

    def __init__(self, request: TrainRequest, python: str = sys.executable) -> None:
        self.request, self.python = request, python
        self.state = TrainState()
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._reports: queue.Queue[dict] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self.cancelled = False
        self._escalations = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    @property
    def best(self) -> Path:
        """Where the policy to load will be (``RUN/best``)."""
        return Path(self.request.out).expanduser() / "best"

    def start(self) -> None:
        """Launch the child and the threads that read its output."""
        if self._proc is not None:
            raise RuntimeError("this training job was started already")
        cmd = [self.python, "-m", "vla_studio", *self.request.argv()]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env,
                                      start_new_session=True)
        log.info("training started (pid %d): %s", self._proc.pid, " ".join(cmd[3:]))
        for name, stream, handler in (("train-job-output", self._proc.stdout, self._on_stdout),
                                      ("train-job-errors", self._proc.stderr, self._on_stderr)):
            thread = threading.Thread(target=self._read, args=(stream, handler), name=name,
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def poll(self) -> TrainState:
        """Take the reports that arrived (never waits) and return the updated state."""
        st = self.state
        while True:
            try:
                record = self._reports.get_nowait()
            except queue.Empty:
                return st
            if "run_dir" in record:
                st.result = record
                continue
            p = record["progress"]
            if p["phase"] == "load":
                st.message = p.get("message") or ""
            elif p["phase"] == "train":
                st.step, st.total_steps = int(p["step"]), int(p["total_steps"])
                st.samples_per_s = float(p.get("samples_per_s") or 0.0)
                if p.get("loss") is not None:
                    st.steps.append(st.step)
                    st.losses.append(float(p["loss"]))
                st.message = f"epoch {p['epoch']}/{p['epochs']}"
            elif p["phase"] == "epoch":
                st.epochs.append({"epoch": p["epoch"], "step": p["step"], **p.get("metrics", {})})

    def interrupt(self) -> None:
        """Ask the child to stop, without waiting (SIGINT: the trainer stops at once; the last
        finished epoch stays in RUN/last). :meth:`escalate` follows up if it lingers."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self.cancelled = True
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass

    def escalate(self) -> None:
        """The child outlived an interrupt: SIGTERM, or SIGKILL if that was tried already."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._escalations += 1
        try:
            proc.send_signal(signal.SIGTERM if self._escalations == 1 else signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cancel(self, grace_s: float = 10.0) -> None:
        """Stop the child and wait: SIGINT, then SIGTERM and SIGKILL if it does not end."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self.interrupt()
        for wait in (grace_s, 5.0, 10.0):
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                self.escalate()

    def close(self) -> None:
        """Cancel a running child, reap it and join the reader threads (always safe)."""
        self.cancel()
        proc = self._proc
        if proc is not None:
            proc.wait()
        for thread in self._threads:
            thread.join(timeout=5.0)

    def error_text(self) -> str:
        """The child's last words on stderr (its one-line error, when it failed)."""
        lines = [ln for ln in self.stderr if ln.strip()]
        errors = [ln for ln in lines if "error:" in ln]
        return (errors or lines or [""])[-1]

    # ----- reader threads ------------------------------------------------------------------
    @staticmethod
    def _read(stream, handler) -> None:
        for line in stream:
            handler(line.rstrip("\n"))
        stream.close()

    def _on_stdout(self, line: str) -> None:
        if not line.startswith("{"):
            return
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return
        if isinstance(record, dict) and ("progress" in record or "run_dir" in record):
            self._reports.put(record)

    def _on_stderr(self, line: str) -> None:
        self.stderr.append(line)

