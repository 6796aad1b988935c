"""``cygno-online reprocess FILE...``: the offline summary of a campaign, one
Dask task per file (see :mod:`cygno_online.analysis.reprocess`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

NAME = "reprocess"
HELP = "summaries of many MIDAS files as tasks on a Dask cluster (local cores by default)"
DESCRIPTION = (
    "Runs `cygno-online summary FILE` for every FILE as one task on a Dask distributed "
    "cluster: --scheduler tcp://HOST:PORT (HTCondor with dask-jobqueue, Kubernetes, "
    "`dask scheduler` + `dask worker`), or without it a local cluster of one worker process "
    "per core. Same output options as `summary`. A worker lost mid-file: the file is retried "
    "elsewhere, nothing is counted twice; a bad file is reported and the rest go on. "
    "Needs the `cluster` extra (pip install 'cygno-online[cluster]')."
)
ORDER = 26


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cygno_online.commands.summary import add_arguments as summary_arguments

    summary_arguments(parser)
    parser.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="an existing Dask scheduler (default: a local cluster on this machine's cores)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="local cluster size (default: one worker process per core)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        import distributed  # noqa: F401
    except ModuleNotFoundError:
        print(
            "cygno-online reprocess: needs Dask distributed: pip install 'cygno-online[cluster]'",
            file=sys.stderr,
        )
        return 2
    from pathlib import Path

    from cygno_online.analysis.reprocess import Progress, open_client, reprocess
    from cygno_online.analysis.summary import summary_to_text, write_summary
    from cygno_online.commands.summary import load_config

    if "-" in args.files:
        print(
            "cygno-online reprocess: error: '-' (stdin) cannot be sent to workers; use `summary -`",
            file=sys.stderr,
        )
        return 2
    spec = {"cfg": load_config(args.config), "config_path": args.config, "pedestal": args.pedestal}
    progress = Progress(args.files, enabled=not args.no_progress)

    registry = None
    if getattr(args, "registry", None):
        from cygno_online.sinks.registry import RunRegistry

        registry = RunRegistry(args.registry)  # a bad URL fails here, before any work

    def on_result(res) -> None:
        # --out files and registry rows as each file finishes (once: a retried
        # task has one result): a long campaign keeps what it did.
        if res.status != "ok":
            print(f"\nreprocess: FAILED {res.file}: {res.error}", file=sys.stderr)
            return
        for doc in res.summaries:
            if args.out:
                write_summary(doc, Path(args.out))
            if registry is not None:
                registry.record(doc)

    if args.log_level != "DEBUG":
        # the scheduler's per-worker INFO lines would bury the progress line
        logging.getLogger("distributed").setLevel(logging.WARNING)
    client, cluster = open_client(args.scheduler, args.workers)
    try:
        results = reprocess(args.files, spec, client, progress=progress, on_result=on_result)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        if registry is not None:
            registry.close()
    summaries = [doc for r in results if r.status == "ok" for doc in r.summaries]
    failed = [r for r in results if r.status != "ok"]
    if args.json:
        doc = {"summaries": summaries, "files": [r.to_json() for r in results]}
        json.dump(doc, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        for doc in summaries:
            sys.stdout.write(summary_to_text(doc))
            sys.stdout.write("\n")
    events = sum(r.events for r in results)
    print(
        f"reprocess: {len(results) - len(failed)}/{len(results)} files, {len(summaries)} runs, "
        f"{events} events" + (f"; {len(failed)} FAILED:" if failed else ""),
        file=sys.stderr,
    )
    for r in failed:
        print(f"  {r.file}: {r.error}", file=sys.stderr)
    if args.out:
        print(f"reprocess: summaries in {args.out}", file=sys.stderr)
    if registry is not None:
        print(f"reprocess: runs recorded in {registry.url.display()}", file=sys.stderr)
    return 1 if failed else 0
