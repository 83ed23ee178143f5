"""A transcode in a process of its own, to be killed or crashed.

Usage: python transcode_child.py EPISODE [--crash-at PHASE] [--fsize BYTES] [--reserve BYTES]

Prints ``started`` once the transcode begins, then the result as JSON. ``--crash-at`` ends the
process with ``os._exit(9)`` (no cleanup, as a kill does) at a phase: ``write`` (halfway
through the frames), ``before_rename`` (verified, about to replace the episode) or
``after_rename`` (replaced, the folder not yet fsynced). ``--fsize`` limits the size of files
the process writes (writes past it fail with EFBIG, as on a full disk).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

from vla_studio.data import transcode
from vla_studio.data.video_codec import VideoSettings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("episode")
    parser.add_argument("--crash-at", default="")
    parser.add_argument("--fsize", type=int, default=0)
    parser.add_argument("--reserve", type=int, default=0,
                        help="free bytes to keep (negative: skip the free-space check)")
    args = parser.parse_args()
    if args.fsize:
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    crash = args.crash_at
    real_replace = os.replace

    def replace(src, dst):
        if crash == "before_rename":
            os._exit(9)
        real_replace(src, dst)
        if crash == "after_rename":
            os._exit(9)

    transcode.os.replace = replace  # only the transcoder's module sees it

    def progress(done: int, total: int) -> None:
        if crash == "write" and done >= total // 2:
            os._exit(9)

    print("started", flush=True)
    result = transcode.transcode_episode(args.episode, VideoSettings(), progress=progress,
                                         reserve_bytes=args.reserve)
    print(json.dumps(result.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
