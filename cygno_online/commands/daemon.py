"""``cygno-online daemon``: the online monitor service."""

from __future__ import annotations

import argparse
import logging

NAME = "daemon"
HELP = "run the online monitor (live MIDAS, file replay or simulator) and serve viewers"
ORDER = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="configuration (YAML)")
    parser.add_argument(
        "--replay",
        nargs="+",
        metavar="FILE",
        help="replay these MIDAS files instead of the configured source",
    )
    parser.add_argument(
        "--speed",
        default=None,
        help="replay speed: recorded, max or a factor such as 2 (default: max)",
    )
    parser.add_argument(
        "--follow", action="store_true", help="replay: tail the last file while it is written"
    )
    parser.add_argument(
        "--simulate", action="store_true", help="use the simulator instead of the configured source"
    )
    parser.add_argument(
        "--exit-at-end",
        action="store_true",
        help="exit once a finite source (replay without --follow) is exhausted",
    )


def overrides_from_args(args: argparse.Namespace) -> dict | None:
    from cygno_online.daemon.config import parse_speed_text
    from cygno_online.errors import ConfigError

    if args.replay and args.simulate:
        raise ConfigError("--replay/--simulate", "choose one source")
    if args.replay:
        replay = {"files": list(args.replay), "follow": bool(args.follow)}
        if args.speed is not None:
            replay["speed"] = parse_speed_text(args.speed)
        return {"type": "replay", "replay": replay}
    if args.speed is not None or args.follow:
        raise ConfigError("--speed/--follow", "only apply with --replay")
    if args.simulate:
        return {"type": "simulator"}
    return None


def run(args: argparse.Namespace) -> int:
    from cygno_online.daemon.config import load_config
    from cygno_online.daemon.main import Daemon

    overrides = overrides_from_args(args)
    cfg, chain = load_config(args.config, overrides=overrides)
    if args.log_level == "INFO" and cfg.log_level != "INFO":
        logging.getLogger().setLevel(cfg.log_level)
    daemon = Daemon(cfg, chain, overrides=overrides, exit_at_end=args.exit_at_end)
    return daemon.run()
