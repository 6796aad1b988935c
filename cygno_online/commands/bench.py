"""``cygno-online bench``: every hot path against its plain numpy/scipy reference."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

NAME = "bench"
HELP = "benchmark hot paths side by side with their numpy/scipy reference"
ORDER = 80

#: what the plain references import (the `reference` extra of the package)
REFERENCE_MODULES = ("scipy", "sklearn")


def _benches() -> dict[str, object]:
    import cygno_online.bench as pkg

    found = {}
    for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
        mod = importlib.import_module(info.name)
        if hasattr(mod, "BENCH") and hasattr(mod, "run"):
            found[mod.BENCH] = mod
    return dict(sorted(found.items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, mod in _benches().items():
        p = sub.add_parser(name, help=getattr(mod, "HELP", ""))
        p.add_argument("--json", action="store_true", help="print one JSON document")
        mod.add_arguments(p)
        p.set_defaults(_bench=mod)


def run(args: argparse.Namespace) -> int:
    from cygno_online.bench.harness import print_report

    try:
        report = args._bench.run(args)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in REFERENCE_MODULES:
            raise
        print(
            f"cygno-online bench {args.bench}: the reference implementation needs {exc.name!r}; "
            "install the reference extra: pip install -e '.[reference]'",
            file=sys.stderr,
        )
        return 2
    print_report(report, as_json=args.json)
    return 0
