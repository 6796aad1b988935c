"""``cygno-online tui``: the shifter's terminal view of a running daemon."""

from __future__ import annotations

import argparse

NAME = "tui"
HELP = "terminal monitor for shifters (connects to a daemon; works over SSH)"
DESCRIPTION = (
    "Full-screen terminal view of a running cygno-online daemon: overview, camera "
    "frame, cluster spectra, PMT waveforms, slow control, alarms (acknowledge) and log. "
    "Connects to the daemon's publisher (default: the local daemon); reconnects by itself. "
    "Remote: tunnel the three ports over SSH, or use CURVE with --server-key. Press ? for keys."
)
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        default="tcp://127.0.0.1:5556",
        metavar="tcp://HOST:PORT",
        help="the daemon's PUB endpoint (default tcp://127.0.0.1:5556)",
    )
    parser.add_argument(
        "--snapshot",
        default=None,
        metavar="tcp://HOST:PORT",
        help="snapshot endpoint (default: --connect port + 1)",
    )
    parser.add_argument(
        "--control",
        default=None,
        metavar="tcp://HOST:PORT",
        help="control endpoint for acknowledgements (default: --connect port + 2)",
    )
    parser.add_argument(
        "--server-key",
        default=None,
        metavar="FILE",
        help="the daemon's public CURVE key file (from `cygno-online keys`) to encrypt the link",
    )
    parser.add_argument(
        "--client-key",
        default=None,
        metavar="FILE",
        help="this viewer's secret key file (NAME.key_secret) when the daemon only admits "
        "authorized viewer keys",
    )
    parser.add_argument(
        "--palette",
        choices=("auto", "truecolor", "256", "16", "mono"),
        default="auto",
        help="colours, honoured whatever TERM says: auto (NO_COLOR, TERM, COLORTERM), "
        "truecolor, 256, 16 (ANSI), mono (no colour: shade characters)",
    )
    parser.add_argument(
        "--ascii",
        action="store_true",
        default=None,
        help="7-bit characters only (vt100 and Linux consoles; automatic for TERM=linux/vt*)",
    )
    parser.add_argument(
        "--mouse",
        action="store_true",
        help="capture the mouse (off by default so the terminal's copy and paste works)",
    )
    parser.add_argument(
        "--low-bandwidth",
        action="store_true",
        help="for slow links: camera frame every 10 s, clock every 5 s (about 5 kB/s at most)",
    )
    parser.add_argument("--title", default="CYGNO online", help="title on the status line")


def run(args: argparse.Namespace) -> int:
    from cygno_online.tui.app import run_tui
    from cygno_online.tui.source import connect

    source = connect(
        args.connect, args.snapshot, args.control, args.server_key, client_key_file=args.client_key
    )
    try:
        return run_tui(
            source,
            title=args.title,
            palette=args.palette,
            ascii=args.ascii,
            mouse=args.mouse,
            low_bandwidth=args.low_bandwidth,
        )
    finally:
        source.close()
