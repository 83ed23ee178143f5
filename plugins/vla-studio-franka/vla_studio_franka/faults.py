"""Telling franky's exceptions apart, and saying what happened in one line an operator can act on.

libfranka reports a robot-side error (a reflex: collision, joint limit, a communication-constraint
violation, ...) as a ``ControlException`` from the motion that it aborted, with the robot in
``Reflex`` mode and the reasons in ``RobotState.last_motion_errors`` / ``current_errors``. Our own
stop (the e-stop, a preempted motion) also ends a motion with a ``ControlException`` ("Move
command preempted"): that one is no fault and must not ask the operator to recover anything.
"""

from __future__ import annotations

import re

RECOVER_HINT = "clear the cause, then Robot > Recover robot, then reset the e-stop"
_PREEMPTED = re.compile(r"preempt", re.IGNORECASE)


def active_errors(errors: object) -> list[str]:
    """Names of the flags set in a franky ``Errors`` object (``[]`` for None)."""
    if errors is None:
        return []
    names = []
    for name in dir(type(errors)):
        if name.startswith("_"):
            continue
        try:
            value = getattr(errors, name)
        except Exception:  # a property that cannot be read is no error flag
            continue
        if value is True:
            names.append(name)
    return sorted(names)


def is_preemption(message: str, robot_has_errors: bool) -> bool:
    """Whether a ControlException only says that a motion was preempted by our own stop or a
    newer motion (no robot-side error is active)."""
    return not robot_has_errors and bool(_PREEMPTED.search(message))


def describe_fault(message: str, errors: list[str]) -> str:
    """One line for the operator: what stopped the robot and what to do.

    Args:
        message: the exception's text (libfranka's, e.g. "libfranka: Move command aborted:
            motion aborted by reflex! ["cartesian_reflex"]").
        errors: active error names from the robot state (may be empty).
    """
    first = " ".join(str(message).split())  # one line, whatever libfranka put in it
    first = first.removeprefix("libfranka: ")
    if len(first) > 160:
        first = first[:157] + "..."
    what = ", ".join(errors) if errors else (first or "unknown error")
    kind = "reflex" if errors or "reflex" in first.lower() else "control error"
    detail = f" ({first})" if errors and first and not all(e in first for e in errors) else ""
    return f"Franka {kind}: {what}{detail}; the robot stopped itself: {RECOVER_HINT}"
