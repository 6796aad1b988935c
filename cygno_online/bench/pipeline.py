"""``cygno-online bench pipeline``: sustained events/s and latency (event in
-> result published) of the daemon's pipeline on simulated LIME events,
against the same chain run inline on one thread without queues.

Events are generated (and parsed) in memory before timing starts; the source
hands them over as fast as the pipeline takes them (lossless mode, so the
numbers are throughput, not drop counts). Target on 2 cores: >= 30 LIME
events/s and p99 < 250 ms. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

from cygno_online.bench.harness import Report, Row

BENCH = "pipeline"
HELP = "daemon pipeline throughput and latency on simulated events (vs inline chain)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=60, help="events per measurement (60)")
    parser.add_argument("--layout", default="lime", help="simulator layout (lime, cygno04, crop:N)")
    parser.add_argument("--workers", type=int, default=2, help="analysis worker threads (2)")
    parser.add_argument(
        "--cameras", type=int, default=None, help="cameras of the cygno04 layout (1..6; default 2)"
    )
    parser.add_argument(
        "--pedestal",
        choices=("run", "model", "none"),
        default=None,
        help="pedestal maps in the store before the timed run: 'run' (an untimed pedestal "
        "run of --pedestal-events through the chain), 'model' (the simulated cameras' maps "
        "written into the store, what a pedestal run converges to), 'none' (each camera "
        "estimates one from its first frames); default: model for cygno04, run otherwise",
    )
    parser.add_argument(
        "--pedestal-events",
        type=int,
        default=12,
        help="events of the untimed pedestal run with --pedestal run (12; 0 = none)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        nargs="*",
        default=None,
        help="camera events/s the source sends at, one measurement each (0 = as fast as "
        "the pipeline takes them: throughput); default: 0 for lime, 0 and 3 for cygno04",
    )
    parser.add_argument(
        "--distinct",
        type=int,
        default=None,
        help="distinct events generated, replayed with new serial numbers up to --events "
        "(default: all for lime, 8 for cygno04: six Quest frames are 113 MB an event)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="daemon YAML whose decode/analyzers to use (default: all shipped analyzers)",
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _MemorySource:
    """Hands pre-parsed events to the pipeline as fast as it takes them."""

    name = "bench"
    sampling = "simulator"
    endless = False
    lossless = True

    def __init__(self, run_info: Any, events: list[Any], rate: float = 0.0) -> None:
        self.run_info = run_info
        self.events = events
        #: camera events per second as a DAQ would send them (0: as fast as taken)
        self.rate = rate

    def run(self, sink: Any, stop: threading.Event) -> None:
        sink.begin_run(self.run_info)
        t0 = time.perf_counter()
        k = 0
        for ev in self.events:
            if stop.is_set():
                return
            if self.rate > 0 and ev.header.event_id == 1:
                # the trigger rate; a late pipeline is not given a rest
                wait = t0 + k / self.rate - time.perf_counter()
                if wait > 0:
                    stop.wait(wait)
                k += 1
            sink.heartbeat()
            sink.event(ev, time.time_ns())
        sink.end_run(None, complete=True)

    def send_message(self, text: str, is_error: bool = False) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"type": "bench"}


class _Collector:
    """Dispatcher: outputs to a real publisher; latency when the event's last
    output is published."""

    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher
        #: (event id, serial) -> receive time
        self.received: dict[tuple[int, int], int] = {}
        self.latencies: list[float] = []
        #: event id -> latencies (camera events are id 1)
        self.latencies_by_id: dict[int, list[float]] = {}
        #: (event id, serial) -> perf_counter when the outputs were submitted
        self.submitted: dict[tuple[int, int], float] = {}
        #: submitted -> published (the publisher thread's share of the latency)
        self.publish_s: list[float] = []
        #: ChainResult.timings_s of each camera event
        self.timings: list[dict[str, float]] = []
        self.done = threading.Event()
        self.expected = 0
        self._last_serial: dict[int, int] = {}
        publisher.listeners.append(self._published)

    def _published(self, msg: Any) -> None:
        text = msg.body.get("text", "") if msg.kind == "log" else ""
        if text.startswith("bench-marker "):
            key = (int(text.split()[1]), msg.body["serial"])
            latency = (time.time_ns() - self.received.pop(key)) / 1e9
            self.latencies.append(latency)
            self.latencies_by_id.setdefault(key[0], []).append(latency)
            sent = self.submitted.pop(key, None)
            if sent is not None:
                self.publish_s.append(time.perf_counter() - sent)
            if len(self.latencies) >= self.expected:
                self.done.set()

    def run_started(self, run: Any, outputs: list) -> None:
        self.publisher.submit_outputs(outputs)

    def event_done(self, result: Any, event: Any, run: Any) -> None:
        from cygno_online.publish.messages import Message

        serial = event.header.serial_number
        if event.header.event_id == 1:
            self.timings.append(dict(result.timings_s))
        self.submitted[(event.header.event_id, serial)] = time.perf_counter()
        self.publisher.submit_outputs(result.outputs)
        # A marker after the event's outputs: published => all outputs published.
        self.publisher.submit(
            Message(
                "log",
                {
                    "time_ns": 0,
                    "level": "debug",
                    "origin": "bench",
                    "text": f"bench-marker {event.header.event_id}",
                    "run": run.run,
                    "serial": serial,
                },
            )
        )

    def run_finished(self, run: Any, summary: dict) -> None:
        pass

    def periodic(self) -> None:
        pass

    def source_state(self, state: str, detail: str) -> None:
        pass

    def source_failed(self, exc: BaseException) -> None:
        raise exc

    def shutdown_requested(self) -> None:
        pass


def _nbytes(obj: Any, seen: set[int] | None = None, depth: int = 0) -> int:
    """Bytes of the numpy arrays reachable from ``obj`` (attributes, slots,
    lists, dicts; each array once)."""
    import numpy as np

    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        base = obj if obj.base is None else obj.base
        if base is not obj and id(base) in seen:
            return 0
        seen.add(id(base))
        return int(base.nbytes) if isinstance(base, np.ndarray) else int(obj.nbytes)
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return 0
    if isinstance(obj, dict):
        return sum(_nbytes(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(_nbytes(v, seen, depth + 1) for v in obj)
    total = 0
    names = list(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        names.extend(getattr(cls, "__slots__", ()))
    for name in names:
        try:
            value = getattr(obj, name)
        except AttributeError:
            continue
        if not callable(value) or isinstance(value, np.ndarray):
            total += _nbytes(value, seen, depth + 1)
    return total


def _camera_state_mb(chain: Any) -> dict[str, float]:
    """Arrays each camera keeps (pedestal maps, cuts, work buffers), MB."""
    out: dict[str, float] = {}
    for a in chain.analyzers:
        states = getattr(a, "_states", None)
        if isinstance(states, dict):
            for cam, st in states.items():
                out[str(cam)] = round(_nbytes(st) / 1e6, 1)
    return out


def _rss_mb() -> dict[str, float]:
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key = "rss_mb" if line.startswith("VmRSS") else "peak_rss_mb"
                    out[key] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def _thread_cpu_s(thread: threading.Thread | None) -> float | None:
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))  # type: ignore[arg-type, union-attr]
    except (AttributeError, OSError, TypeError):
        return None


def _replayed(events: list[Any], n_triggers: int) -> list[Any]:
    """``events`` cycled until ``n_triggers`` trigger events (id 1), each
    cycle with serial numbers (per event id) and time stamps continuing where
    the previous one ended; the banks are shared, not copied."""
    import dataclasses

    out: list[Any] = []
    if not events:
        return out
    span_s = max(e.header.time_stamp for e in events) - min(e.header.time_stamp for e in events)
    next_serial: dict[int, int] = {}
    shift: dict[int, int] = {}
    triggers = 0
    cycle = 0
    while triggers < n_triggers:
        for e in events:
            h = e.header
            if h.event_id == 1:
                if triggers >= n_triggers:
                    break
                triggers += 1
            if cycle == 0:
                out.append(e)
                next_serial[h.event_id] = max(next_serial.get(h.event_id, 0), h.serial_number + 1)
                continue
            serial = h.serial_number + shift[h.event_id]
            header = dataclasses.replace(
                h, serial_number=serial, time_stamp=h.time_stamp + cycle * (span_s + 1)
            )
            out.append(dataclasses.replace(e, header=header))
        cycle += 1
        for eid in next_serial:
            shift[eid] = next_serial[eid] * cycle
    return out


def _model_pedestals(args: argparse.Namespace) -> None:
    """Pedestal maps in the store as a pedestal run leaves them: the simulated
    cameras' dark level and noise (rounding adds 1/12 ADU^2), run 0, the
    physics run's exposure."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import numpy as np

    from cygno_online.analyzers.camera.pedestals import PedestalMaps, PedestalStore
    from cygno_online.simulate import Simulator

    sim = Simulator(
        args.layout, seed=11, run=0, pedestal=True, exposure_s=0.3, cameras=args.cameras
    )
    # taken an hour before the physics run (same simulated clock)
    physics = Simulator(args.layout, seed=7, run=1, cameras=args.cameras)
    taken_ns = physics.start_time_ns - 3600 * 10**9

    store = PedestalStore(Path(args.state_dir) / "pedestals")

    def save(cam: int) -> None:
        sigma = np.sqrt(sim.noise_map(cam).astype(np.float32) ** 2 + np.float32(1 / 12))
        store.save(
            PedestalMaps(
                camera=f"cam{cam}",
                mean=np.array(sim.pedestal_map(cam), dtype=np.float32),
                sigma=sigma.astype(np.float32),
                n_frames=100,
                run=0,
                time_ns=taken_ns,
                exposure_s=0.3,
            )
        )

    # compression releases the GIL: both cores
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(save, range(sim.layout.ncameras)))


def _prime(chain: Any, args: argparse.Namespace) -> None:
    """An untimed pedestal run first, as at LNGS: the timed run then has
    pedestal maps (otherwise the camera analyzer estimates them from the first
    frames and the numbers measure that, not the steady state)."""
    from cygno_online.decode.runinfo import run_info_from_odb
    from cygno_online.midas.event import parse_event
    from cygno_online.simulate import Simulator

    ped = Simulator(
        args.layout, seed=11, run=0, pedestal=True, exposure_s=0.3, cameras=args.cameras
    )
    bor = parse_event(ped.bor(), source="bench", offset=0)
    info = run_info_from_odb(
        bor.odb(), run=0, time_stamp=bor.header.time_stamp, source="bench", pedestal=True
    )
    chain.begin_run(info)
    for e in ped.events(args.pedestal_events):
        chain.process_event(parse_event(e.data, source="bench", offset=0), run=0, source="bench")
    chain.end_run()
    chain.run = None


def _chain(args: argparse.Namespace, workers: int) -> Any:
    from cygno_online.analysis.chain import AnalysisChain
    from cygno_online.analysis.plugin import AnalyzerEnv
    from cygno_online.params import Params

    if args.config:
        from cygno_online.daemon.config import read_yaml

        data = read_yaml(args.config)
        if not isinstance(data, dict):
            data = {}  # load_config-style refusal comes from the chain's own checks
        data = {k: data[k] for k in ("decode", "analyzers", "plugin_paths") if k in data}
    else:
        from cygno_online.commands.summary import default_config

        data = default_config()
    env = AnalyzerEnv(
        experiment="BENCH",
        state_dir=args.state_dir,
        options={"workers": workers, "sampling": "simulator"},
    )
    chain = AnalysisChain.from_params(Params(data, ""), env, workers=workers)
    chain.warm_up()
    if args.pedestal == "run" and args.pedestal_events:
        _prime(chain, args)
    return chain


def run(args: argparse.Namespace) -> Report:
    import tempfile

    cygno04 = args.layout == "cygno04"
    if getattr(args, "cameras", None) is None:
        args.cameras = None
    if getattr(args, "pedestal", None) is None:
        args.pedestal = "model" if cygno04 else "run"
    if getattr(args, "distinct", None) is None:
        args.distinct = min(args.events, 8) if cygno04 else args.events
    with tempfile.TemporaryDirectory(prefix="cygno-bench-") as tmp:
        args.state_dir = tmp
        if args.pedestal == "model":
            _model_pedestals(args)
        return _run(args)


def _run(args: argparse.Namespace) -> Report:
    from cygno_online.decode.runinfo import run_info_from_odb
    from cygno_online.midas.event import parse_event
    from cygno_online.simulate import Simulator

    sim = Simulator(
        args.layout, seed=7, run=1, pedestal=False, exposure_s=0.3, cameras=args.cameras
    )
    bor = parse_event(sim.bor(), source="bench", offset=0)
    run_info = run_info_from_odb(bor.odb(), run=1, time_stamp=bor.header.time_stamp, source="bench")
    t0 = time.perf_counter()
    distinct = max(1, min(args.distinct, args.events))
    events = _replayed(
        [parse_event(e.data, source="bench", offset=0) for e in sim.events(distinct)], args.events
    )
    gen_s = time.perf_counter() - t0
    del sim

    # Reference: the same chain inline, one thread, no queues, no publisher.
    ref_chain = _chain(args, 1)
    ref_chain.begin_run(run_info)
    ref_chain.process_event(events[0], run=1, source="bench", received_ns=0)
    ref_times = []
    t_ref = time.perf_counter()
    for ev in events:
        t = time.perf_counter()
        ref_chain.process_event(ev, run=1, source="bench", received_ns=0)
        ref_times.append(time.perf_counter() - t)
    ref_total = time.perf_counter() - t_ref
    ref_chain.end_run()
    ref_chain.close()
    del ref_chain

    rates = (
        args.rate if args.rate is not None else ([0.0, 3.0] if args.layout == "cygno04" else [0.0])
    )
    rows = []
    warm = 0.0
    ncam = 1
    for rate in rates:
        row, warm, ncam = _timed(args, events, run_info, rate, ref_times, ref_total)
        rows.append(row)
    return Report(
        bench=BENCH,
        rows=rows,
        info={
            "events": len(events),
            "layout": args.layout,
            "cameras": ncam,
            "generation_s": round(gen_s, 2),
            "set_up_s": round(warm, 2),
            "pedestal": args.pedestal,
            "pedestal_events": args.pedestal_events if args.pedestal == "run" else 0,
            "distinct_events": distinct,
            "note": "median/p90 columns are latency (event in -> all results published); "
            "ref ms = inline chain per event; run start = the first camera event of the timed "
            "run; steady state = the others; CPU = the analysing threads' own time",
        },
    )


def _timed(
    args: argparse.Namespace,
    events: list[Any],
    run_info: Any,
    rate: float,
    ref_times: list[float],
    ref_total: float,
) -> tuple[Row, float, int]:
    import re

    from cygno_online.daemon.health import Health
    from cygno_online.daemon.pipeline import Pipeline
    from cygno_online.publish.publisher import Publisher

    t_warm = time.perf_counter()
    chain = _chain(args, args.workers)
    warm = time.perf_counter() - t_warm
    # The daemon has run before (as in data taking): a first run loads each
    # camera's pedestal maps from the store; later runs reuse them until a new
    # pedestal run. That first load is measured here, apart.
    load_s = None
    first = next((e for e in events if e.header.event_id == 1), None)
    if args.pedestal == "model" and first is not None:
        import dataclasses

        chain.begin_run(dataclasses.replace(run_info, run=0))
        t_load = time.perf_counter()
        chain.process_event(first, run=0, source="bench", received_ns=time.time_ns())
        load_s = time.perf_counter() - t_load
        chain.end_run()
        chain.run = None
    publisher = Publisher(
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
    )
    publisher.start()
    collector = _Collector(publisher)
    collector.expected = len(events)
    source = _MemorySource(run_info, events, rate)

    pipeline = Pipeline(chain, source, collector, Health(), queue_events=4)
    original_event = pipeline.event

    def timed_event(ev: Any, received_ns: int) -> None:
        collector.received[(ev.header.event_id, ev.header.serial_number)] = received_ns
        original_event(ev, received_ns)

    pipeline.event = timed_event  # type: ignore[method-assign]
    # Per camera: each camera's items are one group on the chain's pool.
    group_s: dict[str, list[float]] = {}
    #: CPU time of the same calls (the thread's own): what the work costs
    #: whatever else the machine runs
    group_cpu_s: dict[str, list[float]] = {}
    original_group = chain._process_group

    def timed_group(items: list[Any]) -> Any:
        t = time.perf_counter()
        c = time.thread_time()
        out = original_group(items)
        key = str(getattr(items[0], "key", "")) if items else ""
        group_cpu_s.setdefault(key, []).append(time.thread_time() - c)
        group_s.setdefault(key, []).append(time.perf_counter() - t)
        return out

    chain._process_group = timed_group  # type: ignore[method-assign]
    pipeline._summarize = lambda run, sections, **kw: {"run": run.run}
    pipeline._write_summary = lambda doc, d: None
    pub_cpu0 = _thread_cpu_s(publisher._thread)
    cpu0 = time.process_time()
    t_start = time.perf_counter()
    pipeline.start()
    collector.done.wait(600)
    total = time.perf_counter() - t_start
    cpu = time.process_time() - cpu0
    pub_cpu1 = _thread_cpu_s(publisher._thread)
    camera_mb = _camera_state_mb(chain)
    memory = _rss_mb()
    pipeline.stop()
    publisher.stop()
    chain.close()

    def ms(values: list[float], qs: tuple[float, ...] = (0.5, 0.99)) -> list[float]:
        values = values or [float("nan")]
        return [round(_percentile(values, q) * 1e3, 1) for q in qs]

    lat = collector.latencies or [float("nan")]
    cam_lat = collector.latencies_by_id.get(1) or []
    n = len(events)
    n_images = sum(1 for e in events if e.header.event_id == 1)
    cygno04 = args.layout == "cygno04"
    per_camera = {k: ms(v) for k, v in sorted(group_s.items()) if re.fullmatch(r"cam\d+", k)}
    steady_camera = {k: ms(v[1:]) for k, v in sorted(group_s.items()) if re.fullmatch(r"cam\d+", k)}
    ncam = max(1, len(per_camera))
    decode = [t.get("decode", 0.0) for t in collector.timings]
    cpu_total = sum(sum(v) for v in group_cpu_s.values()) + sum(decode)
    cpu_per_event_ms = 1e3 * cpu_total / n_images if n_images else None
    breakdown = {
        "decode_ms_p50_p99": ms(decode),
        "per_camera_ms_p50_p99": per_camera,
        "per_camera_steady_ms_p50_p99": steady_camera,
        "other_groups_ms_p50_p99": {
            k: ms(v) for k, v in sorted(group_s.items()) if k not in per_camera and max(v) > 1e-3
        },
        "per_camera_steady_cpu_ms_p50": {
            k: round(1e3 * statistics.median(v[1:]), 1)
            for k, v in sorted(group_cpu_s.items())
            if re.fullmatch(r"cam\d+", k) and len(v) > 1
        },
        "analysis_cpu_ms_per_camera_event": round(cpu_per_event_ms, 1)
        if cpu_per_event_ms
        else None,
        # If this machine were idle: its 2 cores / the analysis CPU a camera
        # event costs (an upper bound: memory bandwidth is shared too)
        "projected_camera_events_per_s_on_2_idle_cores": (
            round(2000.0 / cpu_per_event_ms, 1) if cpu_per_event_ms else None
        ),
        "publish_ms_p50_p99": ms(collector.publish_s),
        "publisher_thread_cpu_pct": (
            round(100 * (pub_cpu1 - pub_cpu0) / total, 1)
            if pub_cpu0 is not None and pub_cpu1 is not None and total > 0
            else None
        ),
        "process_cpu_pct": round(100 * cpu / total, 1) if total > 0 else None,
    }
    frame_mb = 0.0
    for e in events:
        if e.header.event_id == 1:
            frame_mb = sum(b.size for k, b in e.banks.items() if k.startswith("CAM")) / 1e6
            break
    memory_info = {
        **memory,
        "camera_state_mb": camera_mb,
        "raw_frames_per_event_mb": round(frame_mb, 1),
        "raw_frame_per_camera_mb": round(frame_mb / ncam, 1),
        "event_queue": 4,
    }
    mode = f"at {rate:g} camera events/s" if rate > 0 else "as fast as it takes them"
    row = Row(
        name=f"pipeline {args.layout} ({args.workers} workers) {mode}",
        median_ms=statistics.median(lat) * 1e3,
        p90_ms=_percentile(lat, 0.9) * 1e3,
        runs=len(collector.latencies),
        throughput=n / total if total > 0 else float("inf"),
        unit_name="event",
        ref_median_ms=statistics.median(ref_times) * 1e3,
        speedup=(ref_total / n) / (total / n) if total > 0 else None,
        extra={
            "latency_ms_p50_p90_p99": ms(lat, (0.5, 0.9, 0.99)),
            "reference_events_per_s": round(n / ref_total, 1) if ref_total > 0 else None,
            # camera images only (the events slow control adds are cheap)
            "images_per_s": round(n_images / total, 1) if total > 0 else None,
            "reference_images_per_s": round(n_images / ref_total, 1) if ref_total > 0 else None,
            # camera events: the ones with frames
            "camera_events_per_s": round(n_images / total, 2) if total > 0 else None,
            "camera_event_latency_ms_p50_p90_p99": ms(cam_lat, (0.5, 0.9, 0.99)),
            "run_start_latency_ms": ms(cam_lat[:1], (0.5,))[0],
            # first camera event after a new pedestal run: every camera loads its maps
            "first_event_after_new_pedestal_s": round(load_s, 2) if load_s is not None else None,
            "steady_camera_event_latency_ms_p50_p90_p99": ms(cam_lat[1:], (0.5, 0.9, 0.99)),
            "where_the_time_goes": breakdown,
            "memory": memory_info,
            "target": (
                f">= 3 camera events/s ({ncam} cameras each), p99 < 1 s (2 cores)"
                if cygno04
                else ">= 30 events/s, p99 < 250 ms (2 cores)"
            ),
        },
    )
    return row, warm, ncam
