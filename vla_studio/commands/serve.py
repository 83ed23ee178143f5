"""Serve a policy over openpi's websocket + msgpack-numpy protocol.

Any openpi client (`openpi_client.WebsocketClientPolicy`) or VLA Studio's remote loader can then
run it: the metadata sent on connect lists every observation key it reads (`observation_spec`),
the instruction key (`prompt`) and the action shape. Loopback only unless --host says otherwise;
another address needs --api-key (or --insecure on a network you control). The key may also come
from the environment variable VLA_STUDIO_API_KEY, which keeps it out of the process list.

Examples:
  vla-studio serve --policy ~/policies/pick_cube            # ws://127.0.0.1:8000
  vla-studio serve --policy plugin:circle --port 9000
  vla-studio serve --policy untrained                       # a fresh reference VLA (try it)
  VLA_STUDIO_API_KEY=... vla-studio serve --policy ckpt/ --host 0.0.0.0
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

NAME = "serve"
HELP = "serve a policy to openpi-protocol clients (websocket + msgpack)"
API_KEY_ENV = "VLA_STUDIO_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, metavar="SOURCE",
                        help="checkpoint folder, .pt/.pt2 file, plugin:NAME, or untrained (a "
                             "freshly initialised reference VLA for the default station)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    parser.add_argument("--api-key", default=None, metavar="KEY",
                        help=f"require 'Authorization: Api-Key KEY' (or set {API_KEY_ENV})")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --host without an API key")
    parser.add_argument("--trusted", action="store_true",
                        help="allow .pt2 programs (trusted files only: they can run code)")
    parser.add_argument("--max-message-mb", type=float, default=None, metavar="MB",
                        help="largest observation accepted (default: 4x the policy's, >= 16)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for inference")


def run(args: argparse.Namespace) -> int:
    from vla_studio.policies.errors import PolicyError
    from vla_studio.policies.loaders import load_policy, policy_id
    from vla_studio.policies.server import PolicyServer, check_bind

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not 0 <= args.port <= 65535:
        print(f"vla-studio: error: --port {args.port} is not a TCP port (0-65535)", file=sys.stderr)
        return 2
    if args.max_message_mb is not None and not 0.01 <= args.max_message_mb <= 4096:
        print(f"vla-studio: error: --max-message-mb {args.max_message_mb} must be 0.01 to 4096",
              file=sys.stderr)
        return 2
    if args.threads < 1:
        print(f"vla-studio: error: --threads {args.threads} must be at least 1", file=sys.stderr)
        return 2
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per connection is enough
    try:
        check_bind(args.host, api_key, args.insecure)  # before loading: refuse fast
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
        policy = load_policy(args.policy, trusted=args.trusted)
        max_bytes = int(args.max_message_mb * (1 << 20)) if args.max_message_mb else None
        server = PolicyServer(policy, host=args.host, port=args.port, api_key=api_key,
                              insecure=args.insecure, max_message_bytes=max_bytes,
                              policy_id=policy_id(args.policy))
        server.start()
    except PolicyError as exc:
        print(f"vla-studio: error: {exc}", file=sys.stderr)
        return 2
    spec = policy.spec
    print(f"serving {server.metadata['policy_id']} on {server.url} "
          f"(cameras: {', '.join(spec.cameras) or 'none'}; actions {spec.chunk_size}x"
          f"{spec.action_space.dim} {spec.action_space.kind} at {spec.control_rate_hz:g} Hz; "
          f"{'API key required' if api_key else 'no API key'}); Ctrl-C stops", flush=True)
    try:
        while not server.wait(0.5):  # short waits: Ctrl-C reaches this thread at once
            pass
    finally:
        server.stop()
        policy.close()
    return 0
