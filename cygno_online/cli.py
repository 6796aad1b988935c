"""The ``cygno-online`` command.

Each subcommand is a module in :mod:`cygno_online.commands` exposing ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Command modules
import their heavy dependencies inside ``run`` so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from cygno_online import __version__
from cygno_online.errors import CygnoError


def _command_modules() -> list:
    import cygno_online.commands as pkg

    mods = [
        importlib.import_module(info.name)
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + ".")
    ]
    return sorted((m for m in mods if hasattr(m, "NAME")), key=lambda m: getattr(m, "ORDER", 50))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cygno-online",
        description="Online monitor for CYGNO/LIME and other MIDAS experiments with camera and waveform data.",
    )
    parser.add_argument("--version", action="version", version=f"cygno-online {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(
            mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP)
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from cygno_online.logs import setup_logging

    setup_logging(args.log_level)
    try:
        return int(args._run(args) or 0)
    except CygnoError as exc:
        print(f"cygno-online {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `cygno-online inspect ... | head` closes stdout early: not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
