"""``cygno-online bench influx``: how fast points go into the spool and out to servers.

Rows:

* ``submit -> spool``: :meth:`InfluxSink.submit` (encode with the type
  registry, CRC, append to the segment file) with no sender running; the
  reference is plain f-string line formatting of the same metrics (no
  escaping, no registry, no disk), i.e. the floor any sink pays.
* ``-> influxd (v1)`` / ``-> victoria-metrics (v2)``: submit and wait until the
  server acknowledged every point, against a server started on loopback in a
  temporary directory exactly as the tests do (only when its binary is
  installed; otherwise the row says so).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from cygno_online.bench.harness import Case, Report, Row, run_cases

BENCH = "influx"
HELP = "InfluxDB sink: points/s into the disk spool and into real servers (if installed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=20000, help="points per timed call (20000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per spool row (5)")
    parser.add_argument(
        "--fsync", choices=("always", "batch", "never"), default="batch", help="spool fsync policy"
    )
    parser.add_argument("--no-servers", action="store_true", help="skip the server rows")


def _metrics(n: int, offset: int) -> list[Any]:
    from cygno_online.analysis.outputs import Metric

    base = 1_764_000_000_000_000_000
    return [
        Metric(
            "camera",
            base + (offset + i) * 1_000_000,
            1,
            offset + i,
            {"mean": 100.0 + i * 0.5, "sigma": 3.25, "clusters": i % 50, "ok": True},
            {"camera": "cam0"},
        )
        for i in range(n)
    ]


def _plain_lines(metrics: list[Any]) -> bytes:
    out = []
    for m in metrics:
        tags = ",".join(f"{k}={v}" for k, v in sorted(m.tags.items()))
        fields = ",".join(f"{k}={v}" for k, v in m.fields.items())
        out.append(f"{m.family},{tags} {fields},serial={m.serial}i {m.time_ns}")
    return "\n".join(out).encode()


def _sink(section: dict[str, Any], spool: Path) -> Any:
    from cygno_online.params import Params
    from cygno_online.sinks.influx import InfluxSink

    section = {**section, "spool": {**section.get("spool", {}), "dir": str(spool)}}
    return InfluxSink.from_params(Params(section, "influx"), state_dir=None, experiment="BENCH")


def run(args: argparse.Namespace) -> Report:
    from cygno_online.sinks import testservers as ts

    n = max(1, int(args.points))
    metrics = _metrics(n, 0)
    info: dict[str, Any] = {"points per call": n, "fsync": args.fsync}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cygno-bench-influx-") as tmp:
        tmpd = Path(tmp)
        # no sender: url of a closed port, the sink is never started
        spool_sink = _sink(
            {
                "api": "v1",
                "url": "http://127.0.0.1:9",
                "database": "bench",
                "spool": {"fsync": args.fsync, "max_bytes": 1 << 34},
            },
            tmpd / "spool-only",
        )
        cases = [
            Case(
                "submit -> spool",
                lambda: spool_sink.submit(metrics),
                lambda: _plain_lines(metrics),
                units=n,
                unit_name="pt",
                repeat=max(1, args.repeat),
            )
        ]
        report = run_cases(BENCH, cases, info)
        rows.extend(report.rows)
        rows[-1].extra["spool bytes/point"] = round(
            spool_sink.stats()["spool_bytes"] / (n * (max(1, args.repeat) + 1)), 1
        )
        spool_sink.stop(1)

        if not args.no_servers:
            rows.extend(_server_rows(ts, tmpd, n, max(1, min(args.repeat, 3))))
    report.rows = rows
    return report


def _server_rows(ts: Any, tmpd: Path, n: int, repeat: int) -> list[Row]:
    rows = []
    servers = (
        ("-> influxd (v1)", ts.INFLUXD, ts.InfluxDB1),
        ("-> victoria-metrics (v2)", ts.VICTORIA, ts.VictoriaMetrics),
    )
    for name, binary_name, cls in servers:
        binary = ts.find_binary(binary_name)
        if binary is None:
            rows.append(
                Row(name, 0.0, 0.0, 0, 0.0, "pt", extra={"skipped": f"{binary_name} not installed"})
            )
            continue
        server = cls(tmpd / binary_name, binary=binary)
        server.start()
        try:
            if cls is ts.InfluxDB1:
                server.create_database("bench")
                section = {"api": "v1", "url": server.url, "database": "bench"}
            else:
                section = {"api": "v2", "url": server.url, "org": "-", "bucket": "bench"}
            sink = _sink(section, tmpd / f"spool-{binary_name}")
            sink.start()
            # fresh points (new timestamps) for every call, built outside the timing
            batches = [_metrics(n, (k + 1) * n) for k in range(repeat + 1)]

            def deliver(sink: Any = sink, batches: list = batches, what: str = name) -> None:
                sink.submit(batches.pop())
                if not sink.flush(120):
                    raise RuntimeError(f"{what}: not delivered within 120 s: {sink.stats()}")

            row = run_cases(BENCH, [Case(name, deliver, units=n, unit_name="pt", repeat=repeat)])
            st = sink.stats()
            row.rows[0].extra.update(
                {"batches": st["batches"], "retries": st["retries"], "url": server.url}
            )
            rows.extend(row.rows)
            sink.stop(5)
        finally:
            server.stop()
    return rows
