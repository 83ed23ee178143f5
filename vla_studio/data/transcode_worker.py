"""The transcoder's worker process: ``python -m vla_studio.data.transcode_worker EPISODE ...``.

Runs at the lowest CPU and I/O priority (``SCHED_IDLE`` where Linux has it, else nice 19; idle
I/O class), writes and verifies ``<EPISODE>.compacting`` and prints one JSON line: the
:class:`~vla_studio.data.transcode.TranscodeResult`. With ``--no-commit`` (what the background
compactor uses) it stops at a verified temporary file and the parent commits it, so a worker
stopped with SIGSTOP never holds the episode folder's lock. Killing it at any moment is safe.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def lower_priority() -> None:
    """Run only when the CPU and the disk have nothing else to do (this thread and the
    threads it starts later: codec threads inherit it)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass
    try:
        import psutil

        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
    except Exception:  # noqa: BLE001 - best effort: not every platform or kernel has it
        pass


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a frozen worker must not outlive
    the application that froze it)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla_studio.data.transcode_worker")
    parser.add_argument("episode")
    parser.add_argument("--codec", default="av1")
    parser.add_argument("--crf", type=int, default=None)
    parser.add_argument("--preset", default="")
    parser.add_argument("--gop-s", type=float, default=None)
    parser.add_argument("--min-psnr", type=float, default=None)
    parser.add_argument("--reserve-mb", type=float, default=None)
    parser.add_argument("--no-commit", action="store_true")
    parser.add_argument("--normal-priority", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    die_with_parent()
    if not args.normal_priority:
        lower_priority()
    from vla_studio.data.transcode import MIN_FREE_AFTER_BYTES, transcode_episode
    from vla_studio.data.video_codec import VideoSettings

    defaults = VideoSettings()
    settings = VideoSettings(
        codec=args.codec, crf=defaults.crf if args.crf is None else args.crf,
        preset=args.preset, gop_s=defaults.gop_s if args.gop_s is None else args.gop_s,
        min_psnr_db=defaults.min_psnr_db if args.min_psnr is None else args.min_psnr)
    reserve = MIN_FREE_AFTER_BYTES if args.reserve_mb is None else int(args.reserve_mb * 1e6)

    def progress(done: int, total: int) -> None:
        print(json.dumps({"progress": [done, total]}), flush=True)

    result = transcode_episode(args.episode, settings, commit=not args.no_commit,
                               progress=progress, reserve_bytes=reserve)
    print(json.dumps({"result": result.as_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
