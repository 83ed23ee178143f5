"""Another process filling a disk and holding it full: it takes every byte freed, until killed.

Usage: python disk_filler.py FILE   (prints ``full`` once the disk is full)
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
    told = False
    while True:
        for size in (1 << 16, 1 << 12):
            try:
                os.write(fd, b"\0" * size)
                break
            except OSError:
                continue
        else:
            if not told:
                print("full", flush=True)
                told = True
            time.sleep(0.002)  # poll: grab whatever another process gives back


if __name__ == "__main__":
    sys.exit(main())
