"""Benchmarks (`vla-studio bench NAME --json`): speed and latency targets are checked here, never
in timed unit tests.

Each benchmark module exposes ``HELP``, ``add_arguments(parser)`` and ``run(args) -> dict``; the
command prints the dict as one JSON object on the last line of stdout.
"""

from __future__ import annotations

# name -> module; modules are imported only when their benchmark runs (or --help lists them).
BENCHMARKS = {
    "control": "vla_studio.bench.control",
    "estop": "vla_studio.bench.estop",
    "capture": "vla_studio.bench.capture",
    "sim": "vla_studio.bench.sim",
    "teleop": "vla_studio.bench.teleop",
    "export": "vla_studio.bench.export",
    "record": "vla_studio.bench.record",
    "vla": "vla_studio.bench.vla",
    "policy": "vla_studio.bench.policy",
    "robot": "vla_studio.bench.robot",
}
