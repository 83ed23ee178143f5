"""Workarounds for defects of the Qt binding, applied once when :mod:`vla_studio.ui` is imported.

PySide6 6.12 returns ``None``, ``True`` and ``False`` from C++ calls without taking a reference
(the bindings are built for the stable ABI and assume CPython 3.12's immortal singletons). On
CPython 3.11 every ``widget.update()``, ``painter.setPen(...)`` or ``isVisible()`` then lowers the
singleton's reference count by one, and after a few thousand calls the interpreter aborts with
"Fatal Python error: none_dealloc: deallocating None" (or ``bool_dealloc``): the main window
died within a minute. From 3.12 these objects are immortal and the defect is harmless.

The fix does what 3.12 does: it gives the three singletons a reference count so large that no
amount of missing references can bring it to zero. They are statically allocated and never
freed, so the count has no other meaning.
"""

from __future__ import annotations

import ctypes
import sys

_IMMORTAL_REFCOUNT = 1 << 60


def make_singletons_immortal() -> bool:
    """Raise the reference counts of None, True and False out of reach (CPython < 3.12 only).

    Returns whether anything was changed.
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every object in a release build of CPython.
        refcount = ctypes.c_ssize_t.from_address(id(obj))
        if refcount.value < _IMMORTAL_REFCOUNT // 2:
            refcount.value += _IMMORTAL_REFCOUNT
    return True
