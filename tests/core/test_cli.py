"""The command line: help for every command, devices listing, profile checks, benchmarks' JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from vla_studio.cli import COMMANDS, build_parser
from vla_studio.paths import resource

DRY = str(resource("stations", "dry_run.toml"))


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vla_studio", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_every_subcommand():
    proc = cli("--help")
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: vla-studio" in out and len(out.splitlines()) > 3


def test_devices_lists_builtin_and_plugin_kinds_as_json():
    proc = cli("devices", "--json", "--timeout", "20")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    robots = {r["type"]: r for r in report["kinds"]["robots"]}
    cameras = {r["type"]: r for r in report["kinds"]["cameras"]}
    assert robots["null"]["origin"] == "built-in" and robots["null"]["status"] == "ok"
    assert cameras["test_pattern"]["origin"].startswith("plugin vla-studio-example")
    assert isinstance(report["detected"], list)


def test_profile_show_prints_the_station():
    proc = cli("profile", "show", DRY)
    assert proc.returncode == 0
    assert "Dry run" in proc.stdout and "camera:  front (synthetic)" in proc.stdout


def test_bench_control_prints_one_json_object_last():
    proc = cli("bench", "control", "--seconds", "0.5", "--rate", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("rate_hz", "achieved_hz", "jitter_p50_ms", "jitter_p99_ms", "overruns"):
        assert key in result
    assert result["rate_hz"] == 100 and result["achieved_hz"] > 0
    # the machine's own stalls over the same run, from the probe process
    assert 0 <= result["host_noise_p99_ms"] <= result["host_noise_max_ms"]


def test_bench_estop_prints_one_json_object_last():
    proc = cli("bench", "estop", "--trials", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("control_period_ms", "trials", "stop_latency_p50_ms", "stop_latency_p99_ms",
                "stop_latency_max_ms", "missed"):
        assert key in result
    assert result["trials"] == 5 and result["missed"] == 0
    assert 0 <= result["host_noise_p99_ms"] <= result["host_noise_max_ms"]


def test_the_host_noise_probe_measures_a_real_sleeper_process():
    from vla_studio.bench.host_noise import HostNoiseProbe

    with HostNoiseProbe(0.005) as probe:
        time.sleep(1.0)
    figures = probe.figures
    assert 20 <= probe.samples <= 210  # ~200 wake-ups, less the probe's start-up
    # each late by a non-negative amount; a stall only makes max larger
    assert figures["host_noise_p99_ms"] is not None
    assert 0 <= figures["host_noise_p99_ms"] <= figures["host_noise_max_ms"] < 500
