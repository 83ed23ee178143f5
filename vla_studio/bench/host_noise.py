"""How much the machine itself stalls while a benchmark runs.

On a shared machine or a virtual machine, a thread that sleeps until a deadline is sometimes
woken milliseconds late for reasons no program can control (other tenants, the hypervisor). A
timing benchmark cannot tell such a stall from its own delays, so the timing benchmarks run this
probe beside them: a separate Python process (no shared GIL) that only sleeps to a deadline every
period and records how late it wakes. When a benchmark's worst case matches the probe's, the
machine stalled, not VLA Studio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_PROBE = r"""
import json, sys, threading, time
period = float(sys.argv[1])
late = []
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
deadline = time.perf_counter() + period
while not done.is_set():
    time.sleep(max(0.0, deadline - time.perf_counter()))
    late.append(time.perf_counter() - deadline)
    deadline += period
    if deadline < time.perf_counter():  # stalled past a whole period: restart the grid
        deadline = time.perf_counter() + period
late.sort()
n = len(late)
print(json.dumps({"samples": n, "p99_ms": 1e3 * late[min(n - 1, int(0.99 * n))] if n else None,
                  "max_ms": 1e3 * late[-1] if n else None}))
"""


class HostNoiseProbe:
    """Runs the probe process for the duration of a ``with`` block.

    Args:
        period_s: how often the probe wakes (use the benchmark's control period).

    After the block, :attr:`figures` holds ``host_noise_p99_ms`` and ``host_noise_max_ms``
    (None when the probe could not run).
    """

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.figures: dict[str, Any] = {"host_noise_p99_ms": None, "host_noise_max_ms": None}
        self.samples = 0  # wake-ups the probe measured
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "HostNoiseProbe":
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _PROBE, str(self.period_s)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True)
        except OSError as exc:  # the figures stay None; the benchmark itself still runs
            print(f"host noise probe not started: {exc}", file=sys.stderr)
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            out, _ = proc.communicate("", timeout=10.0)
            data = json.loads(out.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as err:
            proc.kill()
            proc.wait()
            print(f"host noise probe gave no figures: {err}", file=sys.stderr)
            return
        self.samples = int(data.get("samples") or 0)
        for key in ("p99_ms", "max_ms"):
            value = data.get(key)
            self.figures[f"host_noise_{key}"] = None if value is None else round(float(value), 4)
