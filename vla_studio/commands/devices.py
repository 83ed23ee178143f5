"""List installed robot, camera, teleop, observer and policy kinds, and the hardware attached now.

Kinds come from VLA Studio itself and from plugins (entry-point groups vla_studio.robots,
vla_studio.cameras, vla_studio.teleops, vla_studio.observers, vla_studio.policies). Detection
asks each kind for the devices it can see (OpenCV indices, RealSense serials, gamepads,
SpaceMice) and never hangs: a probe that takes longer than --timeout seconds is reported as such.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json

NAME = "devices"
HELP = "list installed device/policy kinds and detected hardware"
MAX_TIMEOUT_S = 600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-detect", action="store_true", help="only list kinds; do not probe")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help=f"seconds per detection probe (more than 0, at most {MAX_TIMEOUT_S:g})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from vla_studio.commands import check_number
    from vla_studio.devices.registry import REGISTRIES
    from vla_studio.policies.registry import POLICIES

    check_number("--timeout", args.timeout, 0.0, MAX_TIMEOUT_S, low_open=True, unit="s")

    report: dict[str, list[dict]] = {}
    detected: list[dict] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="detect")
    futures = {}
    for group, registry in [*REGISTRIES.items(), ("policies", POLICIES)]:
        rows = []
        for name, info in sorted(registry.infos().items()):
            row = {"type": name, "origin": info.origin, "target": info.target, "status": "ok"}
            try:
                cls = registry.load(name)
                doc = (cls.__doc__ or "").strip().splitlines()
                row["summary"] = doc[0] if doc else ""
                if not args.no_detect and hasattr(cls, "detect"):
                    futures[pool.submit(cls.detect)] = (group, name)
            except LookupError as exc:
                row["status"] = f"unavailable: {exc}"
            rows.append(row)
        report[group] = rows
    for fut, (group, name) in futures.items():
        try:
            for dev in fut.result(timeout=args.timeout):
                detected.append({"group": group, "type": dev.kind, "id": dev.id,
                                 "description": dev.description, **dict(dev.details)})
        except concurrent.futures.TimeoutError:
            detected.append({"group": group, "type": name, "id": "",
                             "description": f"detection timed out after {args.timeout:g} s"})
        except Exception as exc:  # a broken driver must not break the listing
            detected.append({"group": group, "type": name, "id": "",
                             "description": f"detection failed: {exc}"})
    pool.shutdown(wait=False, cancel_futures=True)

    if args.json:
        print(json.dumps({"kinds": report, "detected": detected}))
        return 0
    for group, rows in report.items():
        print(f"{group}:")
        if not rows:
            print("  (none installed)")
        for r in rows:
            extra = r.get("summary", "") if r["status"] == "ok" else r["status"]
            print(f"  {r['type']:<12} {r['origin']:<32} {extra}")
    print("detected hardware:")
    if args.no_detect:
        print("  (not probed: --no-detect)")
    elif not detected:
        print("  none found (no cameras, gamepads or SpaceMice attached?)")
    for d in detected:
        print(f"  {d['type']:<12} {d['id']:<24} {d['description']}")
    return 0
