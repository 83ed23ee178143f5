"""Running a command so that file permissions apply to it, also when the tests run as root."""

from __future__ import annotations

import os
import shutil


def permission_bound() -> list[str]:
    """A command prefix under which permission bits bind the child process.

    Root ignores read-only files and folders (CAP_DAC_OVERRIDE), so a test of "cannot write
    here" run as root would prove nothing. As root the child runs under ``setpriv`` without
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (it stays uid 0 and owns the test's files, so only
    the permission bits decide); as any other user no prefix is needed.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("tests run as root need setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
