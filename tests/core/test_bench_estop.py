"""bench estop measures the stop with a driver that blocks (figures, not timing targets)."""

from __future__ import annotations

import argparse

from vla_studio.bench import estop


def test_bench_estop_reports_stops_delivered_to_a_blocked_driver():
    parser = argparse.ArgumentParser()
    estop.add_arguments(parser)
    args = parser.parse_args(["--trials", "4", "--block-every", "2", "--no-gui"])
    result = estop.run(args)
    assert result["trials"] == 4 and result["missed"] == 0
    assert result["blocked_driver_trials"] == 2
    # a number, not NaN: the stop reached the robot while its send_action was blocked
    assert result["stop_latency_blocked_driver_max_ms"] >= 0
    assert result["gui_load"] == "none: --no-gui"
    for key in ("control_period_ms", "stop_latency_p50_ms", "stop_latency_p99_ms",
                "stop_latency_max_ms", "loop_overruns", "host_noise_p99_ms", "host_noise_max_ms"):
        assert key in result
