"""``cygno-online runs``: the run registry (one row per run).

cygno-online runs [--registry URL] [--since WHEN] [--json]
cygno-online runs show N
cygno-online runs compare A B
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from typing import Any

NAME = "runs"
HELP = "list, show and compare runs of the run registry (SQL)"
DESCRIPTION = (
    "The run registry holds one row per run (key numbers of the end-of-run summary, "
    "verdict, flags, reference checks), written by the daemon at end of run and by "
    "'cygno-online summary FILES --registry URL'. Without --registry the daemon's "
    "default is used: the SQLite file runs.sqlite in the state directory (of --config "
    "if given)."
)
ORDER = 26


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        nargs="*",
        metavar="show N | compare A B",
        help="nothing: list the runs; 'show N': one run in full; 'compare A B': side by side",
    )
    add_registry_argument(parser)
    parser.add_argument(
        "--config", metavar="YAML", help="daemon configuration (its registry / state_dir)"
    )
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="only runs started since WHEN: a date/time (2026-11-30, 2026-11-30T08:00) "
        "or an age (12h, 7d, 30m)",
    )
    parser.add_argument("--experiment", help="only runs of this experiment")
    parser.add_argument("--json", action="store_true", help="print JSON")


def add_registry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        metavar="URL",
        help="run registry: sqlite:///PATH, mysql://USER@HOST[:PORT]/DB?password_file=F, "
        "postgresql://USER@HOST[:PORT]/DB?password_file=F",
    )


def parse_since(text: str, now_s: float | None = None) -> int:
    """Unix ns of ``--since``: an age (``12h``, ``7d``, ``30m``, ``90s``) or an
    ISO date/time (UTC unless it says otherwise)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[m.group(2)]
        now = time.time() if now_s is None else now_s
        return int((now - float(m.group(1)) * mult) * 1e9)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: not a date/time (2026-11-30T08:00) or an age (12h, 7d)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1e9)


def registry_url(args: argparse.Namespace) -> str:
    """--registry, else the configuration's ``registry``, else the default."""
    from cygno_online.sinks.registry import default_url

    if getattr(args, "registry", None):
        return args.registry
    state_dir = None
    if getattr(args, "config", None):
        from cygno_online.daemon.config import read_yaml

        data = read_yaml(args.config) or {}
        if isinstance(data, dict):
            if isinstance(data.get("registry"), str) and data["registry"]:
                return data["registry"]
            state_dir = data.get("state_dir")
    if state_dir is None:
        from cygno_online.daemon.config import default_state_dir

        state_dir = default_state_dir()
    return default_url(state_dir)


_SHOW = (
    "experiment", "run", "run_type", "description", "pedestal", "exposure_s", "duration_s",
    "events_seen", "events_processed", "events_dropped", "drop_fraction", "event_rate_hz",
    "trigger_rate_hz", "images", "cluster_rate_hz", "fe55_peak", "fe55_sigma", "fe55_resolution",
    "fe55_entries", "light_yield", "alpha_rate_hz", "muon_rate_hz", "spark_fraction",
    "spark_rate_hz", "gas_temperature", "lime_pressure", "atm_pressure", "verdict", "flags",
)  # fmt: skip


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def show_text(row: dict[str, Any]) -> str:
    lines = [f"{k:<18} {_fmt(row.get(k))}" for k in _SHOW]
    start = row.get("start_time_ns")
    if start:
        lines.insert(
            2, f"{'start (UTC)':<18} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(start / 1e9))}"
        )
    for k, v in sorted((row.get("extra") or {}).items()):
        lines.append(f"{k:<18} {_fmt(v)}")
    if row.get("reasons"):
        lines.append("reasons:")
        lines += [f"  {r}" for r in str(row["reasons"]).split("; ")]
    checks = row.get("checks") or []
    if checks:
        lines.append("checks:")
        for c in checks:
            ref = c.get("reference_run")
            lines.append(
                f"  [{c.get('status')}] {c.get('name')}: {c.get('reason')}"
                + (f" (reference run {ref})" if ref is not None else "")
            )
    return "\n".join(lines) + "\n"


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per quantity: values of A and B, B - A and (B - A) / A."""
    out = []
    keys = [k for k in _SHOW if k not in ("experiment", "run")]
    extras = sorted(set(a.get("extra") or {}) | set(b.get("extra") or {}))
    for k in keys + extras:
        va = a.get(k) if k in keys else (a.get("extra") or {}).get(k)
        vb = b.get(k) if k in keys else (b.get("extra") or {}).get(k)
        entry: dict[str, Any] = {"quantity": k, "a": va, "b": vb}
        numbers = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        if numbers and not isinstance(va, bool):
            entry["diff"] = vb - va
            entry["rel"] = (vb - va) / va if va else None
        out.append(entry)
    return out


def compare_text(a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = [
        f"{'':<28} {'run ' + str(a['run']):>14} {'run ' + str(b['run']):>14} {'B-A':>12} {'rel':>8}"
    ]
    for e in compare_rows(a, b):
        rel = e.get("rel")
        lines.append(
            f"{e['quantity']:<28} {_fmt(e['a']):>14} {_fmt(e['b']):>14} "
            f"{_fmt(e.get('diff')) if 'diff' in e else '':>12} "
            f"{f'{rel:+.1%}' if isinstance(rel, float) else '':>8}"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from cygno_online.sinks.registry import RegistryError, RunRegistry, records_as_table

    what = list(args.what)
    reg = RunRegistry(registry_url(args))  # a bad URL: ConfigError, printed by the cli
    try:
        if not what or what == ["list"]:
            since = parse_since(args.since) if args.since else None
            rows = reg.runs(since_ns=since, experiment=args.experiment)
            if args.json:
                json.dump({"runs": rows}, sys.stdout, indent=2, default=str)
                sys.stdout.write("\n")
            else:
                sys.stdout.write(records_as_table(rows))
            return 0
        if what[0] == "show" and len(what) == 2:
            row = reg.get(int(what[1]), args.experiment)
            if row is None:
                print(
                    f"cygno-online runs: run {what[1]} is not in {reg.url.display()}",
                    file=sys.stderr,
                )
                return 1
            if args.json:
                json.dump(row, sys.stdout, indent=2, default=str)
                sys.stdout.write("\n")
            else:
                sys.stdout.write(show_text(row))
            return 0
        if what[0] == "compare" and len(what) == 3:
            rows = [reg.get(int(n), args.experiment) for n in what[1:]]
            for n, r in zip(what[1:], rows, strict=True):
                if r is None:
                    print(
                        f"cygno-online runs: run {n} is not in {reg.url.display()}", file=sys.stderr
                    )
                    return 1
            if args.json:
                json.dump({"a": rows[0]["run"], "b": rows[1]["run"],
                           "quantities": compare_rows(rows[0], rows[1])},
                          sys.stdout, indent=2, default=str)  # fmt: skip
                sys.stdout.write("\n")
            else:
                sys.stdout.write(compare_text(rows[0], rows[1]))
            return 0
        print("cygno-online runs: usage: runs [show N | compare A B]", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"cygno-online runs: error: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"cygno-online runs: error: {exc}", file=sys.stderr)
        return 1
    finally:
        reg.close()
