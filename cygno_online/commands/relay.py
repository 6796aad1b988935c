"""``cygno-online relay``: serve remote shifters from one connection to the daemon."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time

NAME = "relay"
HELP = "relay a daemon (or another relay) to many viewers over one connection"
DESCRIPTION = (
    "Subscribes to a daemon's publisher (or another relay's) like a viewer and serves "
    "viewers with the same protocol: snapshot, then updates, gap detection and re-snapshot, "
    "control requests (acknowledgements) forwarded with the viewer's identity. The DAQ "
    "machine serves one connection whatever the number of shifters. CURVE on both sides: "
    "--server-key/--client-key towards the daemon, --curve-secret-key/--authorized-keys "
    "towards the viewers (required to bind a non-loopback address)."
)
ORDER = 45

log = logging.getLogger("cygno_online.relay")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    up = parser.add_argument_group("upstream (the daemon or another relay)")
    up.add_argument(
        "--connect",
        default="tcp://127.0.0.1:5556",
        metavar="tcp://HOST:PORT",
        help="its PUB endpoint (default tcp://127.0.0.1:5556)",
    )
    up.add_argument(
        "--snapshot",
        default=None,
        metavar="tcp://HOST:PORT",
        help="its snapshot endpoint (default: --connect port + 1)",
    )
    up.add_argument(
        "--control",
        default=None,
        metavar="tcp://HOST:PORT",
        help="its control endpoint (default: --connect port + 2)",
    )
    up.add_argument(
        "--server-key",
        default=None,
        metavar="FILE",
        help="its public CURVE key file (encrypts the link)",
    )
    up.add_argument(
        "--client-key",
        default=None,
        metavar="FILE",
        help="this relay's secret key file, authorized on the daemon",
    )
    down = parser.add_argument_group("downstream (the viewers)")
    down.add_argument(
        "--bind",
        default="tcp://127.0.0.1:6556",
        metavar="tcp://HOST:PORT",
        help="PUB endpoint for viewers; snapshot and control on the next two ports "
        "(default tcp://127.0.0.1:6556)",
    )
    down.add_argument("--snapshot-bind", default=None, metavar="tcp://HOST:PORT")
    down.add_argument("--control-bind", default=None, metavar="tcp://HOST:PORT")
    down.add_argument(
        "--curve-secret-key",
        default=None,
        metavar="FILE",
        help="this relay's secret key file (viewers use its public key)",
    )
    down.add_argument(
        "--authorized-keys",
        default=None,
        metavar="DIR",
        help="folder of the viewers' public keys (NAME.key); NAME is the "
        "identity an acknowledgement carries",
    )
    parser.add_argument(
        "--name", default="relay", help="this relay's name in acknowledgements (default relay)"
    )
    parser.add_argument(
        "--stats-every",
        type=float,
        default=60.0,
        metavar="S",
        help="log a statistics line every S seconds (default 60; 0 = never)",
    )


def _check(args: argparse.Namespace) -> None:
    from pathlib import Path

    from cygno_online.daemon.config import _is_loopback
    from cygno_online.errors import ConfigError
    from cygno_online.publish.client import _next_port

    if bool(args.curve_secret_key) != bool(args.authorized_keys):
        raise ConfigError("--curve-secret-key", "goes together with --authorized-keys")
    for opt, path in (
        ("--curve-secret-key", args.curve_secret_key),
        ("--server-key", args.server_key),
        ("--client-key", args.client_key),
    ):
        if path and not Path(path).is_file():
            raise ConfigError(opt, "does not exist", value=path)
    if args.authorized_keys and not Path(args.authorized_keys).is_dir():
        raise ConfigError("--authorized-keys", "is not a directory", value=args.authorized_keys)
    if not args.curve_secret_key:
        for opt, ep in (
            ("--bind", args.bind),
            ("--snapshot-bind", args.snapshot_bind or _next_port(args.bind, 1)),
            ("--control-bind", args.control_bind or _next_port(args.bind, 2)),
        ):
            if ep.startswith("tcp://") and not _is_loopback(ep):
                raise ConfigError(
                    opt,
                    "binds a non-loopback address without CURVE; give --curve-secret-key "
                    "and --authorized-keys, or use an SSH tunnel",
                    value=ep,
                )


def run(args: argparse.Namespace) -> int:
    from cygno_online.publish.relay import Relay
    from cygno_online.tui.source import read_server_key

    _check(args)
    relay = Relay(
        args.connect,
        args.snapshot,
        args.control,
        read_server_key(args.server_key) if args.server_key else None,
        client_key_file=args.client_key,
        bind=args.bind,
        snapshot_bind=args.snapshot_bind,
        control_bind=args.control_bind,
        curve_secret_key_file=args.curve_secret_key,
        curve_authorized_keys_dir=args.authorized_keys,
        name=args.name,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "relay %s: %s -> %s (snapshot %s, control %s)",
        args.name,
        args.connect,
        relay.endpoints["pub"],
        relay.endpoints["snapshot"],
        relay.endpoints["control"],
    )
    connected = False
    next_stats = time.monotonic() + args.stats_every
    try:
        while not stop.wait(1.0):
            if relay.connected != connected:
                connected = relay.connected
                log.info(
                    "relay %s: upstream %s", args.name, "connected" if connected else "disconnected"
                )
            if args.stats_every > 0 and time.monotonic() >= next_stats:
                next_stats = time.monotonic() + args.stats_every
                log.info("relay %s: %s", args.name, relay.stats())
    finally:
        relay.close()
    return 0
