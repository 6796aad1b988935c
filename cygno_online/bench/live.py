"""``cygno-online bench live``: the live path through the MIDAS reader process,
against the MIDAS stand-in (an experiment process on this machine).

Rows:

* ``hand-off`` - the daemon's cost per LIME event (10.6 MB camera image):
  taking the event out of its shared slot (one memcpy), the hand-off message
  and the project's parser, beside a plain copy of the event's bytes (the
  floor). Target: at most 2 ms.
* ``live LIME`` - simulated LIME events at 3 Hz through the whole live path:
  the stand-in's buffer -> reader process (receive straight into a slot) ->
  supervisor -> pipeline (decode, the chosen analyzers) -> publisher. Latency
  = event entering the buffer (a time stamp the stand-in writes into the
  camera bank) -> the event's results published.
* ``live 1 kHz`` - small events at 1 kHz, same path; beside it the run
  transitions timed during the stream and without the monitor.

The stand-in moves events to the reader over a Unix socket where libmidas
uses shared memory, so the live rows include a copy libmidas would not make:
they are an upper bound. Figures on a shared 2-core machine vary; reported,
never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from cygno_online.bench.harness import Case, Report, Row, run_case

BENCH = "live"
HELP = "live MIDAS path through the reader process (stand-in experiment): rate, latency, hand-off"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lime-events", type=int, default=20, help="LIME events (20)")
    parser.add_argument("--small-events", type=int, default=3000, help="1 kHz events (3000)")
    parser.add_argument(
        "--config",
        default=None,
        help="daemon YAML whose decode/analyzers to run (default: decode only, no analyzers)",
    )


def _bank_offset(event: bytes, name: str) -> int:
    """Byte offset of bank ``name``'s data in a BANK32 event."""
    pos, end = 24, 16 + struct.unpack_from("<I", event, 12)[0]
    while pos < end:
        bname, _tid, size = struct.unpack_from("<4sII", event, pos)
        if bname == name.encode():
            return pos + 12
        pos += 12 + ((size + 7) & ~7)
    raise ValueError(f"no bank {name}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _chain(config: str | None) -> Any:
    from cygno_online.analysis.chain import AnalysisChain
    from cygno_online.analysis.plugin import AnalyzerEnv
    from cygno_online.params import Params

    data: dict[str, Any] = {"analyzers": []}
    if config:
        from cygno_online.daemon.config import read_yaml

        full = read_yaml(config) or {}
        data = {k: full[k] for k in ("decode", "analyzers", "plugin_paths") if k in full}
    env = AnalyzerEnv(experiment="BENCH", options={"workers": 2, "sampling": "nonblocking"})
    chain = AnalysisChain.from_params(Params(data, ""), env, workers=2)
    chain.warm_up()
    return chain


def _handoff_row(lime_event: bytes) -> Row:
    import msgpack

    from cygno_online.midas.event import parse_event
    from cygno_online.sources.midas_handoff import Slots

    slots = Slots(1, len(lime_event) + 100)
    off = slots.offset(0)
    size = len(lime_event)
    # what the reader's receive call leaves in the slot (libmidas's own copy)
    slots.map[off : off + size] = lime_event

    def handoff() -> Any:
        # the daemon's side: the message, the event out of its slot, the
        # slot given back, the parser
        msg = msgpack.unpackb(msgpack.packb(["ev", 0, size, time.time_ns()]))
        data = slots.take(msg[1], msg[2])
        msgpack.packb(["free", msg[1]])
        return parse_event(data, source="bench")

    source = bytearray(lime_event)

    def floor() -> Any:
        return bytes(source)  # one plain copy of the event

    row = run_case(
        Case("hand-off per LIME event", handoff, floor, units=1, unit_name="event", repeat=15)
    )
    row.extra["target"] = "<= 2 ms over the floor"
    row.extra["floor"] = "plain copy of the event's bytes"
    row.extra["overhead_ms"] = round(row.median_ms - (row.ref_median_ms or 0), 3)
    slots.close()
    return row


class _Live:
    """A pipeline on the live source, with the bench's collector."""

    def __init__(self, exp: Any, max_event_size: int, config: str | None, stamp_at: int) -> None:
        from cygno_online.bench.pipeline import _Collector
        from cygno_online.daemon.health import Health
        from cygno_online.daemon.pipeline import Pipeline
        from cygno_online.publish.publisher import Publisher
        from cygno_online.sources.midas_live import MidasLiveSource

        self.exp = exp
        self.chain = _chain(config)
        self.publisher = Publisher(
            bind="tcp://127.0.0.1:*",
            snapshot_bind="tcp://127.0.0.1:*",
            control_bind="tcp://127.0.0.1:*",
        )
        self.publisher.start()
        self.collector = _Collector(self.publisher)
        self.source = MidasLiveSource(env=exp.client_env(), max_event_size=max_event_size)
        self.pipeline = Pipeline(self.chain, self.source, self.collector, Health(), queue_events=8)
        self.pipeline._summarize = lambda run, sections, **kw: {"run": run.run}
        self.pipeline._write_summary = lambda doc, d: None
        original = self.pipeline.event
        payload_at = stamp_at - 16

        def timed_event(ev: Any, received_ns: int) -> None:
            stamp = int.from_bytes(bytes(ev.payload[payload_at : payload_at + 8]), "little")
            self.collector.received[(ev.header.event_id, ev.header.serial_number)] = stamp
            original(ev, received_ns)

        self.pipeline.event = timed_event  # type: ignore[method-assign]
        self.pipeline.start()
        deadline = time.monotonic() + 30
        while not any(r[3] for r in exp.readers()):
            if time.monotonic() > deadline:
                raise RuntimeError("the MIDAS reader did not connect")
            time.sleep(0.05)

    def run(self, template: bytes, rate_hz: float, count: int, stamp_at: int) -> float:
        self.collector.expected = count
        t0 = time.perf_counter()
        self.exp.stream(template, rate_hz=rate_hz, count=count, stamp_offset=stamp_at)
        return t0

    def settle(self, t0: float, timeout_s: float) -> float:
        """Wait until every event is published or none was for 1 s; returns
        the seconds from ``t0`` to the last publication."""
        last_n, last_t = -1, time.perf_counter()
        end = time.perf_counter() + timeout_s
        while time.perf_counter() < end and not self.collector.done.is_set():
            n = len(self.collector.latencies)
            if n != last_n:
                last_n, last_t = n, time.perf_counter()
            elif self.exp.stream_done() and time.perf_counter() - last_t > 1.0:
                break
            time.sleep(0.05)
        if self.collector.done.is_set():
            last_t = time.perf_counter()
        return last_t - t0

    def close(self) -> None:
        self.pipeline.stop()
        self.publisher.stop()
        self.chain.close()


def _live_row(name: str, live: _Live, count: int, elapsed: float, extra: dict) -> Row:
    lat = live.collector.latencies or [float("nan")]
    n = len(live.collector.latencies)
    return Row(
        name=name,
        median_ms=statistics.median(lat) * 1e3,
        p90_ms=_percentile(lat, 0.9) * 1e3,
        runs=n,
        throughput=n / elapsed if elapsed > 0 else float("inf"),
        unit_name="event",
        extra={
            "latency_ms_p50_p90_p99": [
                round(_percentile(lat, q) * 1e3, 2) for q in (0.5, 0.9, 0.99)
            ],
            "sent": count,
            "published": n,
            "skipped": dict(live.source.skipped),
            "pipeline_drops": dict(live.pipeline.health.drops),
            **extra,
        },
    )


def run(args: argparse.Namespace) -> Report:
    from cygno_online.simulate import Simulator
    from cygno_online.testing.midas_standin.experiment import Experiment
    from cygno_online.testing.midas_standin.frontend import small_event

    sim = Simulator("lime", seed=3, run=1, pedestal=False, exposure_s=0.3)
    lime = next(e.data for e in sim.events(3) if int.from_bytes(e.data[:2], "little") == 1)
    lime_stamp = _bank_offset(lime, "CAM0")
    rows = [_handoff_row(lime)]
    with tempfile.TemporaryDirectory(prefix="cygno-bench-live-") as tmp:
        exp = Experiment.start(Path(tmp) / "exp", "bench")
        try:
            exp.odb_set("/Experiment/Buffer sizes/SYSTEM", 256 * 1024 * 1024)
            live = _Live(exp, len(lime) + 4096, args.config, lime_stamp)
            try:
                exp.start_run(1)
                t0 = live.run(lime, 3.0, args.lime_events, lime_stamp)
                elapsed = live.settle(t0, 60 + args.lime_events)
                rows.append(
                    _live_row(
                        "live LIME events at 3 Hz",
                        live,
                        args.lime_events,
                        elapsed,
                        {"rate_sent_hz": 3.0},
                    )
                )
            finally:
                live.close()
            # an event id no decoder claims: the path, not a decoder, is timed
            small = small_event(0, size=256, event_id=20)
            base = [exp.start_run(10 + i) + exp.stop_run() for i in range(3)]
            live = _Live(exp, 64 * 1024, args.config, 36)
            try:
                live.collector.done.clear()
                live.collector.latencies.clear()
                t0 = live.run(small, 1000.0, args.small_events, 36)
                delays = []
                for i in range(3):
                    delays.append(exp.start_run(20 + i))
                    delays.append(exp.stop_run())
                elapsed = live.settle(t0, 30 + args.small_events / 500)
                rows.append(
                    _live_row(
                        "live small events at 1 kHz",
                        live,
                        args.small_events,
                        elapsed,
                        {
                            "rate_sent_hz": 1000.0,
                            "transition_ms_median_with_monitor": round(
                                statistics.median(delays) * 1e3, 1
                            ),
                            "transition_ms_max_with_monitor": round(max(delays) * 1e3, 1),
                            "transition_ms_without_monitor": round(max(base) * 1e3, 2),
                            "transition_target": "<= 100 ms over the transition without it",
                        },
                    )
                )
            finally:
                live.close()
        finally:
            exp.close()
    return Report(
        bench=BENCH,
        rows=rows,
        info={
            "note": (
                "hand-off: median/p90 = daemon-side cost per event, ref = plain copy (floor); "
                "live rows: median/p90 = latency event in the buffer -> results published, "
                "throughput = events published per s; stand-in experiment, shared 2-core machine"
            ),
            "analyzers": args.config or "none (decode only)",
        },
    )
