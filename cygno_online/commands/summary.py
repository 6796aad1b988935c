"""``cygno-online summary FILE...``: the end-of-run summary computed offline
from MIDAS files, with the same chain and the same summary builder as the
daemon."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "summary"
HELP = "compute end-of-run summaries (quality numbers, flags) from MIDAS files"
ORDER = 25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="MIDAS files (.mid, .mid.gz, .mid.lz4, .mid.bz2)"
    )
    parser.add_argument(
        "--config",
        metavar="YAML",
        help="daemon configuration whose decode/analyzers sections to use (default: LIME defaults)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="also write run<NNNNN>-summary.json files into DIR"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summaries as one JSON document"
    )
    parser.add_argument(
        "--pedestal",
        action="store_true",
        default=None,
        help="treat the runs as pedestal runs whatever the ODB says",
    )


def default_config() -> dict:
    """Every shipped analyzer with its default parameters, LIME bank map."""
    from cygno_online.analysis.plugin import discover

    analyzers = []
    for name in discover():
        entry: dict = {"plugin": name}
        if name == "daqhealth":
            # In a file a serial gap was lost by the DAQ, not by our sampling.
            entry["params"] = {"sampling": "file"}
        analyzers.append(entry)
    return {"analyzers": analyzers}


def run(args: argparse.Namespace) -> int:
    import tempfile

    from cygno_online.analysis.chain import AnalysisChain
    from cygno_online.analysis.offline import OfflineRunner
    from cygno_online.analysis.plugin import AnalyzerEnv
    from cygno_online.analysis.summary import summary_to_text, write_summary
    from cygno_online.params import Params

    if args.config:
        from cygno_online.daemon.config import read_yaml
        from cygno_online.errors import ConfigError

        cfg = read_yaml(args.config)  # any bytes: one ConfigError with file and position
        if not isinstance(cfg, dict):
            raise ConfigError(args.config, "must be a YAML mapping of sections")
        cfg = {k: cfg[k] for k in ("decode", "analyzers", "plugin_paths", "experiment") if k in cfg}
    else:
        cfg = default_config()
    missing = [f for f in args.files if f != "-" and not Path(f).exists()]
    if missing:
        print(f"cygno-online summary: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    experiment = cfg.pop("experiment", None)
    with tempfile.TemporaryDirectory(prefix="cygno-summary-") as state:
        # Offline runs must not update the daemon's pedestal store.
        env = AnalyzerEnv(experiment=experiment or "cygno", state_dir=Path(state))
        chain = AnalysisChain.from_params(Params(cfg, "", source=args.config), env)
        try:
            runner = OfflineRunner(chain, pedestal=args.pedestal, experiment=experiment)
            summaries = runner.run_files(args.files)
        finally:
            chain.close()
    if args.out:
        for doc in summaries:
            path = write_summary(doc, Path(args.out))
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        json.dump({"summaries": summaries}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        for doc in summaries:
            sys.stdout.write(summary_to_text(doc))
            sys.stdout.write("\n")
    return 0
