"""`vla-studio bench capture` runs the real window over synthetic and file-backed cameras and
reports the issue's keys (the speed targets are the benchmark's business, not this test's)."""

from __future__ import annotations

import argparse

import pytest

from vla_studio.bench import BENCHMARKS, capture

KEYS = {"cameras", "frames_expected", "frames_captured", "frames_dropped",
        "display_latency_p50_ms", "display_latency_p99_ms", "cpu_percent"}


@pytest.mark.parametrize("source", ["synthetic", "file"])
def test_bench_capture_reports_frames_latency_and_cpu(qapp, source):
    parser = argparse.ArgumentParser()
    capture.add_arguments(parser)
    args = parser.parse_args(["--cameras", "2", "--size", "96x72", "--fps", "30",
                              "--seconds", "1.0", "--warmup", "0.5", "--source", source,
                              "--depth"])
    result = capture.run(args)
    assert KEYS <= set(result)
    assert result["cameras"] == 2 and set(result["per_camera"]) == {"cam0", "cam1"}
    assert result["frames_captured"] > 0 and result["frames_displayed"] > 0
    assert result["frames_expected"] == sum(c["expected"] for c in result["per_camera"].values())
    assert 0.0 < result["display_latency_p50_ms"] <= result["display_latency_p99_ms"]
    assert result["cpu_percent"] > 0.0
    assert all(c["state"] == "streaming" for c in result["per_camera"].values())


def test_bench_capture_is_registered_and_rejects_a_bad_size():
    assert BENCHMARKS["capture"] == "vla_studio.bench.capture"
    parser = argparse.ArgumentParser()
    capture.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--size", "640by480"])
