"""`vla-studio`: the command line.

Each subcommand lives in its own module under :mod:`vla_studio.commands` and exposes ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Errors a user can fix (a bad
profile, a missing device, an unknown kind) are printed as one clear line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from vla_studio import __version__
from vla_studio.core.config import ConfigError
from vla_studio.core.log_queue import install_log_queue
from vla_studio.core.registry import RegistryError
from vla_studio.devices.base import DeviceError

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
)

DESCRIPTION = """\
VLA Studio: drive a robot with a gamepad, SpaceMouse or keyboard while watching live cameras,
record language-labelled demonstrations, replay them, and supervise VLA policies.

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
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's import chatter
    install_log_queue()  # no log call may block the control loop (or any thread) on I/O
    module = getattr(args, "_module", None) or importlib.import_module("vla_studio.commands.gui")
    try:
        return int(module.run(args) or 0)
    except (ConfigError, RegistryError, DeviceError) as exc:
        print(f"vla-studio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vla-studio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
