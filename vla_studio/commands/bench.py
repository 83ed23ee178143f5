"""Run a benchmark and print its figures; the last line of stdout is one JSON object.

Examples:
  vla-studio bench control --json          # 100 Hz loop for 10 s: rate, jitter, overruns
  vla-studio bench estop --json            # 200 stops under load: stop latency p50/p99/max
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from vla_studio.bench import BENCHMARKS

NAME = "bench"
HELP = "run a benchmark (prints JSON figures)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--json", action="store_true",
                       help="print only the JSON object (progress goes to stderr)")
        module.add_arguments(p)
        p.set_defaults(_bench=module)


def run(args: argparse.Namespace) -> int:
    if args.log_level == "INFO":  # per-trial warnings (e-stops...) would drown the figures
        logging.getLogger("vla_studio").setLevel(logging.ERROR)
    result = args._bench.run(args)
    if not args.json:
        width = max(len(k) for k in result)
        for key, value in result.items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"{key:<{width}}  {shown}")
    print(json.dumps(result))
    sys.stdout.flush()
    return 0
