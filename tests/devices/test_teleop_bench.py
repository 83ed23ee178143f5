"""`vla-studio bench teleop` runs the real gamepad path end to end and reports its figures
(speed targets are the benchmark's job, not this test's)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from vla_studio.bench import teleop


def test_bench_times_every_push_through_the_virtual_gamepad():
    parser = argparse.ArgumentParser()
    teleop.add_arguments(parser)
    args = parser.parse_args(["--trials", "5"])
    result = teleop.run(args)
    assert result["missed"] == 0 and result["trials"] == 5
    assert result["control_period_ms"] == 50.0  # the dry-run profile's 20 Hz
    assert 0.0 < result["latency_p50_ms"] <= result["latency_p99_ms"] <= result["latency_max_ms"]


def test_bench_command_prints_the_json_keys_on_the_last_line():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "vla_studio", "bench", "teleop", "--json",
                          "--trials", "3"], capture_output=True, text=True, check=True, cwd=root,
                         timeout=120).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert {"control_period_ms", "latency_p50_ms", "latency_p99_ms"} <= set(figures)
