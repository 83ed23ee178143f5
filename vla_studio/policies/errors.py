"""Errors of loading, checking and talking to policies, each one line a user can act on.

Everything a user can cause (a wrong path, a truncated checkpoint, a policy built for another
station, a refused API key) raises a :class:`PolicyError` subclass whose message names the problem
and the fix; the command line and the window print it as it is, never a traceback.
"""

from __future__ import annotations


class PolicyError(RuntimeError):
    """Base class of policy errors; ``str(exc)`` is the one line shown to the user."""


class PolicyLoadError(PolicyError, ValueError):
    """A checkpoint, program or plugin that cannot be loaded (missing, corrupt, untrusted)."""


class PolicySpecMismatch(PolicyLoadError):
    """A policy whose spec does not fit the station; nothing moved.

    Attributes:
        problems: one sentence per mismatch (camera, state feature, action space, rate).
    """

    def __init__(self, policy: str, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{policy} does not fit this station: " + "; ".join(self.problems))


class PolicyConnectionError(PolicyError):
    """The policy server cannot be reached, or the connection broke."""


class PolicyAuthError(PolicyConnectionError):
    """The policy server refused the API key (or asked for one)."""


class PolicyProtocolError(PolicyError):
    """A message that does not follow the protocol (malformed, too large, wrong shapes)."""


def one_line(exc: BaseException) -> str:
    """``"<ExceptionType>: <first line of its message>"``, for wrapping a library's error.

    A first line that only introduces the next (``"Error(s) in loading state_dict:"``) keeps the
    line after it, which says what is wrong.
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return f"{type(exc).__name__}: {text[:300]}"
