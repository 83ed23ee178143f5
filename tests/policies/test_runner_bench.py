"""`vla-studio bench policy --json`: the figures it promises, on a short run (speed is not
asserted here: benchmarks carry targets, tests carry behaviour)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"latency_p50_ms", "latency_p99_ms", "achieved_hz", "queue_underruns", "loop_overruns",
        "remote_latency_p50_ms", "remote_latency_p99_ms"}


def test_bench_policy_prints_every_figure_as_one_json_object():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "vla_studio", "bench", "policy", "--json",
                           "--seconds", "2", "--width", "8", "--chunk", "8"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert KEYS <= set(figures)
    assert figures["chunks"] > 0 and figures["remote_chunks"] > 0
    assert figures["errors"] == 0 and figures["remote_errors"] == 0
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    assert 0 < figures["remote_latency_p50_ms"] <= figures["remote_latency_p99_ms"]
    assert figures["achieved_hz"] > 0 and figures["policy_params"] > 0
    assert "Traceback" not in proc.stderr


def test_bench_policy_feeds_a_policy_the_state_it_reads_beyond_the_counting_robots():
    """The untrained reference VLA reads ee_quat, which the bench's counting robot lacks: the
    bench fills it in (identity) so the policy infers instead of waiting for its state."""
    import argparse

    from vla_studio.bench import policy as bench_policy

    parser = argparse.ArgumentParser()
    bench_policy.add_arguments(parser)
    figures = bench_policy.run(parser.parse_args(["--policy", "untrained", "--seconds", "2",
                                                  "--no-remote"]))
    assert figures["chunks"] > 0 and figures["errors"] == 0, figures
    assert figures["latency_p50_ms"] > 0
