"""`vla-studio`: the command line.

Each subcommand lives in its own module under :mod:`vla_studio.commands` and exposes ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Errors a user can fix (a bad
profile or option, a missing device, an unknown kind, an unusable dataset folder) are printed
as one clear line (exit status 2), never a traceback. Anything else is a bug: one line names it
and where its traceback was written (``errors.log`` in the state folder); ``--log-level DEBUG``
prints the traceback too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import os
import sys
import traceback
from pathlib import Path

from vla_studio import __version__
from vla_studio.commands import UsageError
from vla_studio.core.config import ConfigError
from vla_studio.core.log_queue import flush_logs, install_log_queue
from vla_studio.core.registry import RegistryError
from vla_studio.devices.base import DeviceError

log = logging.getLogger("vla_studio")
# Errors a user can act on, from modules only some commands import: (module, class). They are
# only looked up in modules already loaded (an error of a module never imported cannot occur).
USER_ERRORS = (("vla_studio.data.dataset", "DatasetError"),
               ("vla_studio.data.recorder", "RecorderError"),
               ("vla_studio.data.labels", "LabelError"),
               ("vla_studio.data.episode_file", "EpisodeFileError"),
               ("vla_studio.data.annotations", "AnnotationError"))
ERROR_LOG_MAX_BYTES = 1 << 20

# Subcommand modules, in the order `--help` lists them.
COMMANDS = (
    "gui",
    "devices",
    "profile",
    "bench",
    "record",
    "dataset",
    "cameras",
    "export",
    "replay",
    "train",
    "eval",
    "dagger",
    "demo_to_policy",
    "serve",
)

DESCRIPTION = """\
VLA Studio: drive a robot with a gamepad, SpaceMouse or keyboard while watching live cameras,
record language-labelled demonstrations (stored compactly as video once saved), replay and
annotate them (subtasks, trims, outcomes), export them to RLDS or LeRobot, train a
vision-language-action policy on them and run it closed-loop under supervision (locally or
behind an openpi-protocol server).

With no subcommand, the main window opens on the station profile given by --station (default:
the built-in simulated tabletop, which needs no hardware).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vla-studio", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vla-studio {__version__}")
    parser.add_argument("--station", metavar="FILE", default=None,
                        help="station profile (TOML); default: the simulated tabletop")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging verbosity")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"vla_studio.commands.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The simulator renders headless through EGL unless told otherwise; this must be decided
    # before anything imports mujoco (a GLFW default needs a display and can hang without one).
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    debug = "DEBUG" in (sys.argv[1:] if argv is None else argv)  # before parsing can fail
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        debug = args.log_level == "DEBUG"
        logging.basicConfig(level=getattr(logging, args.log_level),
                            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's import chatter
        install_log_queue()  # no log call may block the control loop (or any thread) on I/O
        module = getattr(args, "_module", None) or importlib.import_module("vla_studio.commands.gui")
        return int(module.run(args) or 0)
    except (ConfigError, RegistryError, DeviceError, UsageError) as exc:
        print(f"vla-studio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vla-studio: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            print(f"vla-studio: error: {exc}", file=sys.stderr)
            return 2
        return _unexpected(exc, debug)


def _user_errors() -> tuple[type[BaseException], ...]:
    found = []
    for module_name, class_name in USER_ERRORS:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def _unexpected(exc: BaseException, debug: bool) -> int:
    """The last resort: one line for the user, the traceback in the error log (and on stderr
    with --log-level DEBUG). Returns the exit status."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    where = _write_error_log(exc)
    details = f"details in the log: {where}" if where else "details in the log"
    if debug:
        log.debug("unexpected error", exc_info=exc)
        flush_logs()  # the traceback first, then the one line below it
    else:
        details += "; --log-level DEBUG prints them here"
    print(f"vla-studio: error: unexpected {type(exc).__name__}"
          + (f": {text}" if text else "") + f" ({details})", file=sys.stderr)
    return 1


def error_log_path() -> Path:
    """Where unexpected errors are logged: ``$XDG_STATE_HOME/vla-studio/errors.log`` (default
    ``~/.local/state/vla-studio/errors.log``)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "vla-studio" / "errors.log"


def _write_error_log(exc: BaseException) -> Path | None:
    path = error_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > ERROR_LOG_MAX_BYTES:
            path.replace(path.with_suffix(".log.1"))  # keep one older log, never grow forever
        stamp = dt.datetime.now().isoformat(timespec="seconds")
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"--- {stamp} vla-studio {__version__}: {' '.join(sys.argv)}\n")
            f.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path


if __name__ == "__main__":
    sys.exit(main())
