"""`vla-studio bench sim` figures and the depth conversion of rendered cameras."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from vla_studio.bench import sim as sim_bench
from vla_studio.sim.render import depth_to_mm, intrinsics_for

ROOT = Path(__file__).resolve().parents[2]


def test_depth_is_millimetres_with_zero_for_no_return():
    metres = np.array([[0.25, 1.0005], [39.99, np.inf]], dtype=np.float32)
    mm = depth_to_mm(metres, far_m=40.0)
    assert mm.dtype == np.uint16
    assert mm.tolist() == [[250, 1000], [0, 0]]  # 1000.5 rounds to even; far plane = no data


def test_intrinsics_follow_the_vertical_field_of_view():
    k = intrinsics_for(90.0, 640, 480)
    assert k.fy == k.fx and abs(k.fy - 240.0) < 1e-9
    assert (k.cx, k.cy) == (319.5, 239.5)


def test_bench_sim_reports_the_issue_keys():
    parser = argparse.ArgumentParser()
    sim_bench.add_arguments(parser)
    args = parser.parse_args(["--episodes", "1", "--render-frames", "2", "--seed", "11",
                              "--loop-seconds", "0"])
    result = sim_bench.run(args)
    assert result["physics_steps_per_s"] > 0
    assert set(result["render_fps"]) == {"front_224x224", "front_640x480", "wrist_224x224",
                                         "wrist_640x480"}
    assert set(result["expert_success"]) == {"pick", "place_in_bowl", "stack", "push"}
    assert result["episodes_per_task"] == 1
    assert result["expert_success"] == {k: 1.0 for k in result["expert_success"]}
    json.dumps(result)


def test_bench_sim_command_prints_one_json_object_last():
    out = subprocess.run([sys.executable, "-m", "vla_studio", "bench", "sim", "--json",
                          "--episodes", "0", "--skip-render", "--loop-seconds", "2"],
                         cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert "physics_steps_per_s" in figures and "control_tick_ms" in figures
    loop = figures["loop_with_cameras"]
    assert loop["ticks"] > 0 and set(loop["camera_fps"]) == {"front", "wrist"}
