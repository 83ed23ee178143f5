"""`vla-studio bench storage --json` prints the storage figures (a short, small run: the
figures in docs/data.md come from the full one)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_storage_reports_every_figure(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vla_studio", "--log-level", "WARNING", "bench",
                           "storage", "--seconds", "1", "--size", "160x120", "--cameras", "2",
                           "--seeks", "5", "--keep", str(tmp_path), "--json"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("jpeg_mb_per_min", "video_mb_per_min", "psnr_db", "transcode_cpu_s_per_min",
                "transcode_realtime_factor", "record_cpu_s_per_min", "seek_p99_ms",
                "rlds_export_steps_per_s_video", "lerobot_export_steps_per_s_video"):
        assert figures[key] > 0, key
    assert figures["video_mb_per_min"] < figures["jpeg_mb_per_min"]
    assert figures["psnr_db"] > 25 and figures["cameras"] == 2
