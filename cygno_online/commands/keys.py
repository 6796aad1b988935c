"""``cygno-online keys``: CURVE key pairs for remote viewers."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "keys"
HELP = "generate CURVE key pairs (daemon server key, viewer client keys)"
ORDER = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="where to write NAME.key (public) and NAME.key_secret")
    parser.add_argument(
        "--name",
        default="server",
        help="key name: 'server' for the daemon, a user name for viewers",
    )


def run(args: argparse.Namespace) -> int:
    import zmq.auth

    folder = Path(args.directory)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(folder), args.name)
    Path(secret).chmod(0o600)
    pub_key, _ = zmq.auth.load_certificate(public)
    print(f"public key:  {public}")
    print(f"secret key:  {secret}   (keep private)")
    print(f"z85 public:  {pub_key.decode()}")
    return 0
