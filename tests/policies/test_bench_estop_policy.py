"""bench estop --policy: the stops come while a real torch policy infers in the runner's child
process (figures, not timing targets)."""

from __future__ import annotations

import argparse

from vla_studio.bench import estop
from vla_studio.policies.small_conv import SmallConvConfig, write_small_conv


def test_bench_estop_with_a_real_policy_keeps_its_keys_and_stops_while_it_infers(tmp_path):
    ckpt = write_small_conv(tmp_path / "policy", SmallConvConfig(name="small_conv", width=8,
                                                                 chunk_size=6))
    parser = argparse.ArgumentParser()
    estop.add_arguments(parser)
    args = parser.parse_args(["--trials", "6", "--block-every", "3", "--no-gui",
                              "--policy", str(ckpt)])
    result = estop.run(args)
    assert result["trials"] == 6 and result["missed"] == 0
    for key in ("control_period_ms", "stop_latency_p50_ms", "stop_latency_p99_ms",
                "stop_latency_max_ms", "loop_overruns", "blocked_driver_trials",
                "stop_latency_blocked_driver_max_ms", "emergency_hold_latency_p99_ms",
                "gui_load", "host_noise_p99_ms", "host_noise_max_ms"):
        assert key in result
    assert result["policy"] == str(ckpt) and result["policy_chunks"] >= 4
    assert result["policy_latency_p50_ms"] > 0
    # the stops that were not into a blocked driver wait for a request with the model (a fast
    # model may answer in the few milliseconds before the stop: each is counted as it was)
    assert 1 <= result["stops_while_inferring"] <= result["trials"]
