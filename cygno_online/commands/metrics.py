"""``cygno-online metrics [CONFIG] [--json|--markdown]``: the metric catalogue."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "metrics"
HELP = "print the metric catalogue (families, tags, fields, types, units) of a configuration"
ORDER = 33


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="daemon configuration (default: every shipped analyzer with the LIME bank map)",
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable JSON")
    fmt.add_argument("--markdown", action="store_true", help="the tables of docs/influx-schema.md")


def default_catalogue():
    """Every shipped analyzer, default parameters, the LIME bank map."""
    from cygno_online.analysis.catalogue import build_catalogue
    from cygno_online.analysis.plugin import AnalyzerEnv, discover
    from cygno_online.decode.bankmap import EventDecoder
    from cygno_online.params import Params

    analyzers = []
    for name, cls in sorted(discover().items()):
        a = cls()
        a.configure(Params({}, f"analyzers.{name}"), AnalyzerEnv())
        analyzers.append(a)
    return build_catalogue(analyzers, EventDecoder.lime())


def run(args: argparse.Namespace) -> int:
    from cygno_online.analysis.catalogue import catalogue_of_chain
    from cygno_online.errors import ConfigError, ConfigErrors

    if args.config:
        from cygno_online.daemon.config import load_config

        try:
            _cfg, chain = load_config(args.config)
        except (ConfigError, ConfigErrors) as exc:
            print(f"{args.config}: {exc} (see cygno-online check-config)", file=sys.stderr)
            return 2
        try:
            cat = catalogue_of_chain(chain)
        finally:
            chain.close()
    else:
        cat = default_catalogue()
    if args.json:
        print(json.dumps(cat.to_json(), indent=1))
    elif args.markdown:
        print(cat.markdown(), end="")
    else:
        print(cat.text())
    return 0
