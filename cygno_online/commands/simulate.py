"""``cygno-online simulate``: write a deterministic simulated LIME-like run
to a MIDAS file (and its truth as JSON)."""

from __future__ import annotations

import argparse
import sys
import time

NAME = "simulate"
HELP = "write a simulated LIME/CYGNO-04 run to a MIDAS file (with optional truth JSON)"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="MIDAS file to write; compression from the extension (.mid, .mid.gz, .mid.lz4)",
    )
    parser.add_argument(
        "--events", type=int, required=True, metavar="N", help="number of trigger (camera) events"
    )
    parser.add_argument(
        "--layout",
        default="lime",
        metavar="LAYOUT",
        help="lime (default), cygno04, or crop:SIZE (square SIZE x SIZE camera)",
    )
    parser.add_argument(
        "--cameras",
        type=int,
        default=None,
        metavar="K",
        help="cameras for cygno04 (default 2) or crops",
    )
    parser.add_argument(
        "--pedestal", action="store_true", help="pedestal run: HV off, no tracks, no PMT triggers"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--run", type=int, default=1, metavar="R", help="run number (default 1)")
    parser.add_argument(
        "--exposure", type=float, default=0.3, metavar="S", help="exposure in seconds (default 0.3)"
    )
    parser.add_argument(
        "--no-pmt", action="store_true", help="no digitizer banks (DGH0/DIG0) in trigger events"
    )
    parser.add_argument(
        "--sc-every",
        type=int,
        default=None,
        metavar="N",
        help="time compression: every slow-control equipment reports every N triggers "
        "(default: real periods, 60 s / 10 s)",
    )
    parser.add_argument(
        "--start-time",
        type=float,
        default=None,
        metavar="UNIX",
        help="run start (Unix seconds); default a fixed date derived from the run number",
    )
    parser.add_argument(
        "--truth", metavar="FILE.json", help="also write what was injected (truth) as JSON"
    )


def run(args: argparse.Namespace) -> int:
    from cygno_online.errors import ConfigError
    from cygno_online.simulate import write_run

    if args.events < 0:
        raise ConfigError("--events", "must be >= 0", value=args.events)
    t0 = time.monotonic()
    truth = write_run(
        args.out,
        events=args.events,
        layout=args.layout,
        pedestal=args.pedestal,
        seed=args.seed,
        run=args.run,
        truth_path=args.truth,
        cameras=args.cameras,
        exposure_s=args.exposure,
        pmt=not args.no_pmt,
        sc_every_n_triggers=args.sc_every,
        start_time=args.start_time,
    )
    elapsed = time.monotonic() - t0
    counts: dict[str, int] = {}
    for o in truth.objects():
        counts[o.kind] = counts.get(o.kind, 0) + 1
    n_events = sum(truth.event_counts.values())
    injected = ", ".join(f"{k} {counts.get(k, 0)}" for k in ("fe55", "alpha", "muon", "spark"))
    pmt = sum(f.n_pmt_triggers for f in truth.frames)
    extra = f", truth {args.truth}" if args.truth else ""
    print(
        f"wrote {args.out}: run {truth.run}, layout {truth.layout}"
        f"{' (pedestal)' if truth.pedestal else ''}, {args.events} triggers + "
        f"{n_events - truth.event_counts.get(1, 0)} slow-control events, injected: {injected}, "
        f"PMT triggers {pmt}, seed {truth.seed}, {elapsed:.1f} s{extra}",
        file=sys.stdout,
    )
    return 0
