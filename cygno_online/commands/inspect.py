"""``cygno-online inspect FILE... [--json]``: what is in MIDAS files (events,
banks, ODB highlights, every problem with its offset)."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "inspect"
HELP = "show events, banks, ODB highlights and problems of MIDAS files"
DESCRIPTION = (
    "Read MIDAS files (.mid, .mid.gz, .mid.lz4, .mid.bz2; compression detected from "
    "the content; '-' reads stdin) and report event counts per event id, banks per "
    "event id, ODB highlights and every problem found with its byte offset. "
    "Exit code: 0 clean, 1 problems found, 2 a file could not be opened."
)
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="MIDAS files ('-' = stdin)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    import logging

    reader_log = logging.getLogger("cygno_online.midas.reader")
    old_level = reader_log.level
    if getattr(args, "log_level", "INFO") != "DEBUG":
        # every problem is in the report: the reader's warnings would repeat them
        reader_log.setLevel(logging.ERROR)
    try:
        return _inspect_all(args)
    finally:
        reader_log.setLevel(old_level)


def _inspect_all(args: argparse.Namespace) -> int:
    from cygno_online.inspect_report import inspect_file, render_text

    reports = []
    missing = False
    problems = False
    for path in args.files:
        try:
            report = inspect_file(path)
        except OSError as exc:
            missing = True
            reason = exc.strerror or str(exc)
            print(f"cygno-online inspect: error: {path}: {reason}", file=sys.stderr)
            report = {"path": path, "error": reason}
            if args.json:
                reports.append(report)
            continue
        problems = problems or bool(report["problems_total"])
        reports.append(report)
        if not args.json:
            sys.stdout.write(render_text(report))
            sys.stdout.flush()
    if args.json:
        json.dump({"files": reports}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if missing:
        return 2
    return 1 if problems else 0
