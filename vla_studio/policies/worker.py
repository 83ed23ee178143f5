"""The local policy process: ``python -m vla_studio.policies.worker --source SRC --unix PATH``.

Loads the policy and serves it on a Unix socket with :class:`PolicyServer`, so the app talks to a
local model exactly as to a remote one. Model code then has its own interpreter (no GIL shared
with the control loop) and a crash in it (a segfault in a native kernel) ends this process only.

Talking to the parent:

* stdout carries one JSON line: ``{"ready": true}`` or ``{"error": "<one line>"}``; after it the
  process's stdout is pointed at stderr, so a chatty model cannot fill the pipe and block.
* stdin stays open for the process's life; when it closes (the parent exited or was killed) the
  process exits at once, so a model is never left running without its app.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading

EXIT_LOAD_FAILED = 3


def _watch_parent() -> None:
    """Exit when stdin closes: the parent is gone (or asked us to stop)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def _say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="what load_policy() loads")
    parser.add_argument("--unix", required=True, help="the Unix socket to serve on")
    parser.add_argument("--trusted", action="store_true", help="allow .pt2 programs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--kinds", default="{}", help="JSON {name: module:Class} to register")
    parser.add_argument("--options", default="{}", help="JSON config options for a plugin")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority")
    args = parser.parse_args(argv)
    if args.nice > 0 and hasattr(os, "nice"):
        # First, before torch is imported: loading and inference then yield the CPU to the
        # app's control loop and GUI (nice 0) on a machine with few cores.
        os.nice(args.nice)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s policy-process %(name)s: %(message)s")
    threading.Thread(target=_watch_parent, name="parent-watch", daemon=True).start()
    # Before torch is imported anywhere: one thread unless told otherwise (PLATFORM.md: two
    # OpenMP threads under CPU contention ran 20x slower).
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from vla_studio.policies.errors import PolicyError, one_line

    try:
        from vla_studio.policies.loaders import load_policy, policy_id
        from vla_studio.policies.registry import POLICIES
        from vla_studio.policies.server import PolicyServer

        for name, target in json.loads(args.kinds).items():
            POLICIES.register(name, target)
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
        policy = load_policy(args.source, trusted=args.trusted, options=json.loads(args.options))
        server = PolicyServer(policy, unix_path=args.unix, policy_id=policy_id(args.source))
        server.start()
    except PolicyError as exc:
        _say({"error": str(exc)})
        return EXIT_LOAD_FAILED
    except Exception as exc:  # anything else still reaches the parent as one line
        logging.getLogger(__name__).exception("policy process failed to start")
        _say({"error": f"the policy process failed to start ({one_line(exc)})"})
        return EXIT_LOAD_FAILED
    _say({"ready": True, "pid": os.getpid()})
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    threading.Event().wait()  # serve until the parent closes stdin or kills us
    return 0


if __name__ == "__main__":
    sys.exit(main())
