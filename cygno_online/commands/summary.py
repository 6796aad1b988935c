"""``cygno-online summary FILE...``: the end-of-run summary computed offline
from MIDAS files, with the same chain and the same summary builder as the
daemon."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

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
        "--registry",
        metavar="URL",
        help="also write each run's row into this run registry (sqlite:///PATH, "
        "mysql://USER@HOST/DB?password_file=F, postgresql://...): fills it for past runs",
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


def load_config(path: str | None) -> dict:
    """The decode/analyzers/plugin_paths/experiment sections of a daemon YAML
    (``None``: :func:`default_config`)."""
    if not path:
        return default_config()
    from cygno_online.daemon.config import read_yaml
    from cygno_online.errors import ConfigError

    cfg = read_yaml(path)  # any bytes: one ConfigError with file and position
    if not isinstance(cfg, dict):
        raise ConfigError(path, "must be a YAML mapping of sections")
    keep = ("decode", "analyzers", "plugin_paths", "experiment", "quality", "summary")
    return {k: cfg[k] for k in keep if k in cfg}


def summarize(
    files: list[str],
    cfg: dict,
    *,
    config_path: str | None = None,
    pedestal: bool | None = None,
    runner_class: type | None = None,
    registry: Any = None,
    reports: list[dict] | None = None,
) -> list[dict]:
    """The summaries of ``files`` read in order by one chain (what this command
    prints; ``cygno-online reprocess`` runs it once per file on a cluster)."""
    import tempfile

    from cygno_online.analysis.chain import AnalysisChain
    from cygno_online.analysis.offline import OfflineRunner
    from cygno_online.analysis.plugin import AnalyzerEnv
    from cygno_online.analysis.summary import SummaryConfig
    from cygno_online.params import Params
    from cygno_online.quality.monitor import QualityConfig, RunQuality

    cfg = dict(cfg)
    experiment = cfg.pop("experiment", None)
    # the summary rules and the reference checks of the daemon configuration;
    # the reference runs come from ``registry``, which also gets every run as
    # soon as it is done (a later run of the same command may use it)
    qp = Params(cfg.pop("quality", None) or {}, "quality", source=config_path)
    sp = Params(cfg.pop("summary", None) or {}, "summary", source=config_path)
    qcfg = QualityConfig.from_params(qp)
    scfg = SummaryConfig.from_params(sp)
    qp.finish()
    sp.finish()
    quality = RunQuality(qcfg, registry, record=registry is not None) if qcfg.enabled else None
    with tempfile.TemporaryDirectory(prefix="cygno-summary-") as state:
        # Offline runs must not update the daemon's pedestal store.
        env = AnalyzerEnv(experiment=experiment or "cygno", state_dir=Path(state))
        chain = AnalysisChain.from_params(Params(cfg, "", source=config_path), env)
        try:
            runner = (runner_class or OfflineRunner)(
                chain,
                pedestal=pedestal,
                experiment=experiment,
                quality=quality,
                summary_config=scfg,
            )
            summaries = runner.run_files(files)
            if reports is not None:
                reports.extend(getattr(runner, "file_reports", []))
            return summaries
        finally:
            chain.close()


def write_outputs(summaries: list[dict], args: argparse.Namespace) -> None:
    """``--out DIR`` files, then ``--json`` or the text rendering on stdout."""
    from cygno_online.analysis.summary import summary_to_text, write_summary

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


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    missing = [f for f in args.files if f != "-" and not Path(f).exists()]
    if missing:
        print(f"cygno-online summary: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    import logging

    reports: list[dict] = []
    reader_log = logging.getLogger("cygno_online.midas.reader")
    old_level = reader_log.level
    if getattr(args, "log_level", "INFO") != "DEBUG":
        # every file problem is listed at the end: the reader's warnings would repeat them
        reader_log.setLevel(logging.ERROR)
    registry = None
    if args.registry:
        from cygno_online.sinks.registry import RunRegistry

        registry = RunRegistry(args.registry)
    try:
        summaries = summarize(
            args.files,
            cfg,
            config_path=args.config,
            pedestal=args.pedestal,
            registry=registry,
            reports=reports,
        )
    finally:
        reader_log.setLevel(old_level)
        if registry is not None:
            registry.close()
    if registry is not None:
        for doc in summaries:
            print(f"run {doc.get('run')}: recorded in {registry.url.display()}", file=sys.stderr)
    write_outputs(summaries, args)
    return report_problems(reports)


#: problems listed per file (all are counted)
SHOWN_PROBLEMS = 10


def report_problems(reports: list[dict]) -> int:
    """One stderr block per file that could not be read or had problems
    (empty, damaged, truncated: file, offset, what was lost). Exit code: 0
    clean, 1 problems found, 2 a file could not be opened."""
    code = 0
    for r in reports:
        if r.get("error"):
            print(f"cygno-online summary: error: {r['file']}: {r['error']}", file=sys.stderr)
            code = 2
            continue
        n = r.get("problems_total", 0)
        if not n:
            continue
        code = max(code, 1)
        extra = f", {r['skipped_bytes']} bytes skipped" if r.get("skipped_bytes") else ""
        print(
            f"cygno-online summary: {r['file']}: {n} problem(s){extra}; "
            f"{r.get('events', 0)} events read and analysed",
            file=sys.stderr,
        )
        for text in r["problems"][:SHOWN_PROBLEMS]:
            print(f"  {text}", file=sys.stderr)
        if n > SHOWN_PROBLEMS:
            print(f"  ... and {n - SHOWN_PROBLEMS} more", file=sys.stderr)
    return code
