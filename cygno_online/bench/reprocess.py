"""``cygno-online bench reprocess``: files/s of ``cygno-online reprocess`` on a
local Dask cluster of 1 and 2 worker processes, beside the single-process
loop (``cygno-online summary FILES``, the reference) and the floor (reading
and decompressing the same files, nothing analysed).

Input: the real MIDAS files of ``../shared/data/midas`` (or ``--files``),
repeated ``--copies`` times under different names (each copy is one task).
Cluster start-up is reported apart, not in the rate. Figures come from the
machine the bench runs on; on a shared 2-core machine two workers compete with
everything else. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cygno_online.bench.harness import Report, Row

BENCH = "reprocess"
HELP = "reprocess files/s on 1 and 2 Dask workers vs the single-process summary loop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--files",
        nargs="*",
        default=None,
        metavar="FILE",
        help="MIDAS files (default: the real files of ../shared/data/midas)",
    )
    parser.add_argument("--copies", type=int, default=3, help="copies of each file (3)")
    parser.add_argument(
        "--workers", type=int, nargs="*", default=[1, 2], help="cluster sizes to time (1 2)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed passes per case; the median is shown (3)"
    )


def _default_files() -> list[str]:
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        d = base.parent / "shared" / "data" / "midas"
        if d.is_dir():
            return sorted(str(p) for p in d.iterdir() if ".mid" in p.name)
    raise SystemExit("bench reprocess: no ../shared/data/midas here; give --files")


def _row(name: str, n: int, seconds: float, base: float | None, **extra: Any) -> Row:
    rate = n / seconds if seconds > 0 else float("inf")
    return Row(
        name=name,
        median_ms=seconds * 1e3 / n,
        p90_ms=seconds * 1e3 / n,
        runs=n,
        throughput=rate,
        unit_name="file",
        ref_median_ms=base * 1e3 / n if base else None,
        speedup=base / seconds if base and seconds > 0 else None,
        extra={k: v for k, v in extra.items() if v is not None},
    )


def run(args: argparse.Namespace) -> Report:
    from cygno_online.analysis.reprocess import open_client, reprocess, summarize_file
    from cygno_online.commands.summary import default_config, summarize
    from cygno_online.midas.reader import MidasReader

    sources = args.files or _default_files()
    with tempfile.TemporaryDirectory(prefix="cygno-bench-reprocess-") as tmp:
        files = []
        for c in range(args.copies):
            for s in sources:
                link = Path(tmp) / f"copy{c}-{Path(s).name}"
                link.symlink_to(Path(s).absolute())
                files.append(str(link))
        n = len(files)
        cfg = default_config()

        repeat = max(1, args.repeat)

        def median_s(fn: Any) -> float:
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return statistics.median(times)

        events = sum(1 for f in files for _ in MidasReader(f, resync=True))  # warms the cache
        floor = median_s(lambda: [None for f in files for _ in MidasReader(f, resync=True)])
        # Untimed: the numba kernels load once per process (~1.5 s), here
        # and in each worker below, as in a long campaign.
        summarize(files[:1], cfg)
        loop = median_s(lambda: summarize(files, cfg))
        # The tasks' work, one after the other: a fresh chain per file.
        single = median_s(lambda: [summarize([f], cfg) for f in files])

        rows = [
            _row("read + decompress only (floor)", n, floor, None, events=events),
            _row("single process, `summary FILES` (one chain)", n, loop, None),
            _row("single process, `summary FILE` each (reference)", n, single, None),
        ]
        spec = {"cfg": cfg, "config_path": None, "pedestal": None}
        for w in args.workers:
            t = time.perf_counter()
            client, cluster = open_client(None, w)
            client.wait_for_workers(w)
            startup = time.perf_counter() - t
            t = time.perf_counter()
            client.run(summarize_file, 0, files[0], spec)  # every worker, untimed
            warm = time.perf_counter() - t
            results: list[Any] = []
            try:
                took = median_s(
                    lambda results=results, client=client: results.extend(
                        reprocess(files, spec, client)
                    )
                )
            finally:
                client.close()
                cluster.close()
            failed = sum(1 for r in results if r.status != "ok")
            rows.append(
                _row(
                    f"dask local cluster, {w} worker{'s' if w > 1 else ''}",
                    n,
                    took,
                    single,
                    cluster_start_s=round(startup, 2),
                    worker_warm_up_s=round(warm, 2),
                    vs_summary_files=round(loop / took, 2) if took > 0 else None,
                    failed=failed or None,
                )
            )
    return Report(
        bench=BENCH,
        rows=rows,
        info={
            "files": n,
            "repeat": repeat,
            "sources": [Path(s).name for s in sources],
            "note": "ms columns are wall time per file; ref ms = the reference (one "
            "`summary FILE` after the other in one process: the tasks' work) per file; "
            "speedup = reference time / this row's time; vs_summary_files = the same against "
            "one `summary FILES` (one chain for all files: no per-file set-up); "
            "shared 2-core machine",
        },
    )
