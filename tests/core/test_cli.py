"""The command line: help for every command, devices listing, profile checks, benchmarks' JSON."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time

import pytest

from vla_studio.cli import COMMANDS, build_parser
from vla_studio.paths import resource

DRY = str(resource("stations", "dry_run.toml"))
# What is typed: a module's NAME (demo_to_policy.py is `vla-studio demo-to-policy`).
TYPED = [importlib.import_module(f"vla_studio.commands.{m}").NAME for m in COMMANDS]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vla_studio", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_every_subcommand():
    proc = cli("--help")
    assert proc.returncode == 0
    for name in TYPED:
        assert name in proc.stdout


@pytest.mark.parametrize("name", TYPED)
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


BOOM = """
import sys
import vla_studio.commands.profile as command

def run(args):
    raise ZeroDivisionError("the flux capacitor divided by zero\\nsecond line")

command.run = run
from vla_studio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_log(tmp_path):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-c", BOOM, "profile", "check", DRY],
                          capture_output=True, text=True, timeout=60, env=env)
    log = tmp_path / "state" / "vla-studio" / "errors.log"
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "vla-studio: error: unexpected ZeroDivisionError: the flux capacitor divided by zero "
        f"(details in the log: {log}; --log-level DEBUG prints them here)"]
    assert "Traceback (most recent call last)" in log.read_text(encoding="utf-8")
    assert "ZeroDivisionError: the flux capacitor divided by zero\nsecond line" in \
        log.read_text(encoding="utf-8")
    debug = subprocess.run([sys.executable, "-c", BOOM, "--log-level", "DEBUG", "profile",
                            "check", DRY], capture_output=True, text=True, timeout=60, env=env)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().endswith(f"(details in the log: {log})")


@pytest.mark.parametrize("args, words", [
    (("devices", "--no-detect", "--timeout", "nan"), "--timeout nan is not allowed: a number "
                                                      "greater than 0 and at most 600 s"),
    (("devices", "--no-detect", "--timeout", "-1"), "--timeout -1.0 is not allowed"),
    (("cameras", "list", "--timeout", "inf"), "--timeout inf is not allowed"),
    (("cameras", "preview", "--seconds", "nan"), "--seconds nan is not allowed"),
    (("profile", "check", "/"), "is a folder, not a station profile"),
])
def test_unusable_option_values_are_refused_in_one_line(args, words):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stdout
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("vla-studio: error: ")
    assert words in proc.stderr and "Traceback" not in proc.stderr
