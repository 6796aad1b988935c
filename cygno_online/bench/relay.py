"""``cygno-online bench relay``: the daemon's publishing cost with 0 viewers,
N viewers connected directly, and N viewers behind one relay.

Three processes, as deployed: the daemon side (a real
:class:`~cygno_online.publish.publisher.Publisher` fed a LIME-like stream:
metric messages plus a 576x576 float32 display at 2 Hz), the relay, and the
viewers (``--viewers`` :class:`~cygno_online.publish.client.MonitorClient`
threads in this process, the TUI's client). Reported per scenario: the daemon
process's CPU (% of one core, from its own ``getrusage`` over the window), the
relay's, and the latency of metric messages (publish time -> a viewer applied
it; all viewers pooled). The physical floor of the latency is loopback TCP
(tens of microseconds); with 50 viewers in one process on a shared 2-core
machine the viewers' own scheduling dominates, so compare scenarios, not
absolute numbers. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from cygno_online.bench.harness import Report, Row

BENCH = "relay"
HELP = "daemon CPU and viewer latency: 0 viewers, N direct, N through a relay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--viewers", type=int, default=50, help="viewers (50)")
    parser.add_argument("--seconds", type=float, default=5.0, help="window per scenario (5)")
    parser.add_argument("--rate", type=float, default=50.0, help="metric messages/s (50)")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_windows(conn: Any, stats: Callable[[], dict[str, Any]]) -> None:
    """A bench child's command loop: "start" opens a measuring window,
    "stop" answers its CPU percentage with ``stats()``; anything else ends it."""
    window = {"cpu": _cpu(), "t": time.monotonic()}
    while True:
        cmd = conn.recv()
        if cmd == "start":
            window = {"cpu": _cpu(), "t": time.monotonic()}
        elif cmd == "stop":
            cpu_pct = 100 * (_cpu() - window["cpu"]) / (time.monotonic() - window["t"])
            conn.send({"cpu_pct": cpu_pct, **stats()})
        else:
            break


def _daemon(conn: Any, rate: float) -> None:
    import numpy as np

    from cygno_online.publish.messages import Message
    from cygno_online.publish.publisher import Publisher

    pub = Publisher(
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
        display_hz=2.0,
    )
    pub.start()
    conn.send(dict(pub.endpoints))
    image = np.random.default_rng(1).normal(0, 1, (576, 576)).astype(np.float32)
    fields = {f"f{i}": float(i) for i in range(30)}
    stop = threading.Event()

    def feed() -> None:
        i = 0
        next_t = time.monotonic()
        while not stop.is_set():
            i += 1
            body = {"family": "bench", "time_ns": time.time_ns(), "run": 1, "serial": i}
            body.update(tags={"camera": "cam0"}, fields=fields, units={})
            pub.submit(Message("metric", body))
            if i % max(1, int(rate / 4)) == 0:
                d = {"kind": "image", "name": "camera/cam0/frame", "run": 1, "serial": i}
                d.update(time_ns=time.time_ns(), meta={})
                pub.submit(Message("display", d, {"image": image}))
            next_t += 1.0 / rate
            time.sleep(max(0.0, next_t - time.monotonic()))

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    _cpu_windows(conn, lambda: {"sent": pub.sent, "dropped_send": pub.dropped_send})
    stop.set()
    pub.stop()


def _relay(conn: Any, up: dict[str, str]) -> None:
    from cygno_online.publish.relay import Relay

    relay = Relay(
        up["pub"],
        up["snapshot"],
        up["control"],
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
    )
    conn.send(dict(relay.endpoints))
    _cpu_windows(conn, relay.stats)
    relay.close()


def _scenario(name: str, n_viewers: int, through_relay: bool, args: argparse.Namespace) -> Row:
    from cygno_online.publish.client import MonitorClient

    ctx = mp.get_context("spawn")
    d_conn, d_child = ctx.Pipe()
    daemon = ctx.Process(target=_daemon, args=(d_child, args.rate), daemon=True)
    daemon.start()
    endpoints = d_conn.recv()
    relay = r_conn = None
    if through_relay:
        r_conn, r_child = ctx.Pipe()
        relay = ctx.Process(target=_relay, args=(r_child, endpoints), daemon=True)
        relay.start()
        endpoints = r_conn.recv()
    latencies: list[float] = []
    measuring = threading.Event()

    def on_update(msg: Any) -> None:
        if measuring.is_set() and msg.kind == "metric":
            latencies.append((time.time_ns() - msg.body["time_ns"]) / 1e6)

    viewers = [
        MonitorClient(
            endpoints["pub"], endpoints["snapshot"], endpoints["control"], on_update=on_update
        )
        for _ in range(n_viewers)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(v.snapshots for v in viewers) and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in (d_conn, r_conn):
            if c is not None:
                c.send("start")
        measuring.set()
        time.sleep(args.seconds)
        measuring.clear()
        d_conn.send("stop")
        d_stats = d_conn.recv()
        r_stats = None
        if r_conn is not None:
            r_conn.send("stop")
            r_stats = r_conn.recv()
    finally:
        for v in viewers:
            v.close()
        for c in (d_conn, r_conn):
            if c is not None:
                c.send("exit")
        for p in (daemon, relay):
            if p is not None:
                p.join(10)
    lat = sorted(latencies) or [float("nan")]

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, round(q * (len(lat) - 1)))], 2)

    extra: dict[str, Any] = {
        "daemon_cpu_pct": round(d_stats["cpu_pct"], 1),
        "latency_ms_p50_p90_p99": [pct(0.5), pct(0.9), pct(0.99)],
        "viewer_gaps": sum(v.gaps for v in viewers),
        "daemon_dropped_send": d_stats["dropped_send"],
    }
    if r_stats is not None:
        extra["relay_cpu_pct"] = round(r_stats["cpu_pct"], 1)
        extra["relay_dropped_send"] = r_stats["dropped_send"]
    return Row(
        name=name,
        median_ms=statistics.median(lat),
        p90_ms=pct(0.9),
        runs=len(latencies),
        throughput=len(latencies) / args.seconds,
        unit_name="update",
        extra=extra,
    )


def run(args: argparse.Namespace) -> Report:
    n = args.viewers
    rows = [
        _scenario("0 viewers", 0, False, args),
        _scenario(f"{n} viewers direct", n, False, args),
        _scenario(f"{n} viewers via 1 relay", n, True, args),
    ]
    base = rows[0].extra["daemon_cpu_pct"]
    for r in rows[1:]:
        r.extra["daemon_cpu_vs_0_viewers"] = (
            round(r.extra["daemon_cpu_pct"] / base, 2) if base else None
        )
    return Report(
        bench=BENCH,
        rows=rows,
        info={
            "stream": f"{args.rate:g} metric msg/s (30 fields) + 576x576 float32 display at 2 Hz",
            "window_s": args.seconds,
            "note": "median/p90 columns are viewer latency (publish -> applied); CPU in % of "
            "one core of each process; shared 2-core machine: compare rows, not absolutes",
        },
    )
