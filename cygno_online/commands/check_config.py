"""``cygno-online check-config FILE``: validate a daemon configuration."""

from __future__ import annotations

import argparse
import sys

NAME = "check-config"
HELP = "validate a daemon configuration file (all errors, with key paths)"
ORDER = 31


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="configuration (YAML)")


def run(args: argparse.Namespace) -> int:
    from cygno_online.daemon.config import load_config, summary_text
    from cygno_online.errors import ConfigError, ConfigErrors

    try:
        cfg, chain = load_config(args.file)
    except ConfigErrors as exc:
        print(f"{args.file}: {len(exc.errors)} error(s)", file=sys.stderr)
        for err in exc.errors:
            print(f"  {_line(err)}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"{args.file}: 1 error(s)", file=sys.stderr)
        print(f"  {_line(exc)}", file=sys.stderr)
        return 2
    try:
        print(f"{args.file}: OK")
        print(summary_text(cfg, chain))
    finally:
        if chain is not None:
            chain.close()
    return 0


def _line(err: object) -> str:
    path = getattr(err, "path", "")
    reason = getattr(err, "reason", str(err))
    text = f"{path}: {reason}"
    value = getattr(err, "value", None)
    if value is not None:
        text += f" (got {value!r})"
    allowed = getattr(err, "allowed", None)
    if allowed:
        text += f"; allowed: {allowed}"
    return text
