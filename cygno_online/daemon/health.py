"""The daemon's self-monitoring: counters, rates, queue depths, CPU, memory,
per-analyzer time. Published as ``health`` messages and as Metric family
``monitor`` every ``pipeline.health_every_s``.

Counters are written by the source and analysis threads under one lock; the
report is computed on demand.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from cygno_online.analysis.catalogue import FieldSpec, SeriesSpec
from cygno_online.analysis.outputs import Metric

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def memory(pid: int | str = "self") -> dict[str, int]:
    """Resident memory of a process by kind (``/proc/PID/status``, bytes):
    ``anon`` (heap, stacks), ``file`` (mapped code and files), ``shmem``
    (shared memory: the MIDAS event buffer a local client maps, the hand-off
    slots). Empty where /proc does not exist."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    key, value = line.split(":", 1)
                    out[key[3:].lower()] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def rss_bytes() -> int:
    """The daemon's own resident memory: anonymous + file-backed pages,
    without shared memory (a mapped 2 GB MIDAS buffer is not the monitor's
    memory); peak RSS where /proc is missing."""
    m = memory()
    if m:
        return m.get("anon", 0) + m.get("file", 0)
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Health:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self.events_in = 0
        self.events_processed = 0
        self.events_dropped = 0
        #: drops by reason: queue_full (monitor queue), publish_queue, publish_hwm, sink
        self.drops: Counter[str] = Counter()
        #: monitor queue drops by MIDAS event id
        self.drops_by_event_id: Counter[int] = Counter()
        self.decode_errors = 0
        self.analyzer_errors = 0
        self.source_state = "starting"
        self.source_detail = ""
        self.source_errors = 0
        self.sampling = ""
        self._analyzer_s: Counter[str] = Counter()
        self._analyzer_n = 0
        self._latency_s: list[float] = []
        self.last_event_ns = 0
        #: monotonic time of the last loop iteration per thread (watchdog)
        self.beats: dict[str, float] = {}
        self._last = (clock(), cpu_seconds(), 0, 0)
        self.started = clock()
        self.queue_depth: Callable[[], int] = lambda: 0
        self.extra: Callable[[], dict[str, Any]] = dict
        #: the daemon's progress watchdog (``watchdog.Watchdog``); beats are
        #: forwarded to it
        self.watchdog: Any = None

    # -- writers ---------------------------------------------------------------
    def beat(self, thread: str) -> None:
        self.beats[thread] = self.clock()
        if self.watchdog is not None:
            self.watchdog.beat(thread)

    def finished(self, thread: str) -> None:
        """``thread`` ended on purpose (not a watchdog failure)."""
        if self.watchdog is not None:
            self.watchdog.done(thread)

    def event_in(self) -> None:
        with self._lock:
            self.events_in += 1

    def drop(self, reason: str, event_id: int | None = None, n: int = 1) -> None:
        with self._lock:
            self.drops[reason] += n
            if reason == "queue_full":
                self.events_dropped += n
                if event_id is not None:
                    self.drops_by_event_id[event_id] += n

    def processed(
        self,
        timings_s: dict[str, float],
        *,
        decode_errors: int = 0,
        analyzer_errors: int = 0,
        latency_s: float | None = None,
        time_ns: int = 0,
    ) -> None:
        with self._lock:
            self.events_processed += 1
            self.decode_errors += decode_errors
            self.analyzer_errors += analyzer_errors
            for k, v in timings_s.items():
                self._analyzer_s[k] += v
            self._analyzer_n += 1
            if latency_s is not None:
                self._latency_s.append(latency_s)
                if len(self._latency_s) > 10000:
                    del self._latency_s[:5000]
            if time_ns:
                self.last_event_ns = time_ns

    def set_source_state(self, state: str, detail: str = "") -> bool:
        """Returns True when the state changed."""
        with self._lock:
            changed = (state, detail) != (self.source_state, self.source_detail)
            self.source_state, self.source_detail = state, detail
            return changed

    # -- readers ---------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Counters plus rates since the previous report."""
        now = self.clock()
        cpu = cpu_seconds()
        with self._lock:
            t0, cpu0, in0, proc0 = self._last
            dt = max(now - t0, 1e-6)
            per_analyzer_ms = (
                {k: 1000.0 * v / self._analyzer_n for k, v in sorted(self._analyzer_s.items())}
                if self._analyzer_n
                else {}
            )
            lat = sorted(self._latency_s)
            body = {
                "uptime_s": round(now - self.started, 3),
                "events_in": self.events_in,
                "events_processed": self.events_processed,
                "events_dropped": self.events_dropped,
                "rate_in_hz": (self.events_in - in0) / dt,
                "rate_processed_hz": (self.events_processed - proc0) / dt,
                "drops": dict(self.drops),
                "drops_by_event_id": {str(k): v for k, v in sorted(self.drops_by_event_id.items())},
                "decode_errors": self.decode_errors,
                "analyzer_errors": self.analyzer_errors,
                "queue_depth": self.queue_depth(),
                "cpu_percent": 100.0 * (cpu - cpu0) / dt,
                "rss_bytes": rss_bytes(),
                "memory": memory(),
                "analyzer_ms": per_analyzer_ms,
                "latency_ms_p50": 1000 * lat[len(lat) // 2] if lat else None,
                "latency_ms_p99": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]
                if lat
                else None,
                "source_state": self.source_state,
                "source_detail": self.source_detail,
                "sampling": self.sampling,
                "threads_alive_s": {k: round(now - v, 3) for k, v in self.beats.items()},
            }
            if self.watchdog is not None:
                body["watchdog"] = self.watchdog.report()
            self._last = (now, cpu, self.events_in, self.events_processed)
            self._analyzer_s.clear()
            self._analyzer_n = 0
            self._latency_s.clear()
        body.update(self.extra())
        return body

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "events_in": self.events_in,
                "events_processed": self.events_processed,
                "events_dropped": self.events_dropped,
            }

    def alive(self, names: tuple[str, ...], within_s: float) -> bool:
        """Each named thread looped within ``within_s`` (watchdog rule)."""
        now = self.clock()
        return all(now - self.beats.get(n, -1e18) <= within_s for n in names)


def health_metric(body: dict[str, Any], run: int, time_ns: int | None = None) -> Metric:
    """Family ``monitor``: the numeric part of a health report."""
    fields: dict[str, Any] = {}
    for key in (
        "events_in",
        "events_processed",
        "events_dropped",
        "rate_in_hz",
        "rate_processed_hz",
        "decode_errors",
        "analyzer_errors",
        "queue_depth",
        "cpu_percent",
        "rss_bytes",
        "uptime_s",
    ):
        v = body.get(key)
        if isinstance(v, (int, float)):
            fields[key] = float(v) if isinstance(v, float) else int(v)
    for reason, n in (body.get("drops") or {}).items():
        fields[f"drops_{reason}"] = int(n)
    for name, ms in (body.get("analyzer_ms") or {}).items():
        fields[f"ms_{name}"] = float(ms)
    # Viewer-side losses are drops too: they must reach InfluxDB and alarms.
    publisher = body.get("publisher") or {}
    for key in (
        "dropped_queue",
        "dropped_send",
        "displays_skipped",
        "series_evicted",
        "loop_errors",
        "snapshot_rejected",
        "snapshot_dropped",
        "control_rejected",
        "control_dropped",
    ):
        if isinstance(publisher.get(key), int):
            fields[f"publisher_{key}"] = int(publisher[key])
    # memory by kind: the daemon's shared memory (hand-off slots) and the
    # MIDAS reader's (its mapped event buffer) apart from rss_bytes
    mem = body.get("memory") or {}
    if isinstance(mem.get("shmem"), int):
        fields["rss_shmem_bytes"] = mem["shmem"]
    reader = (body.get("source") or {}).get("reader_memory") or {}
    for kind in ("anon", "shmem"):
        if isinstance(reader.get(kind), int):
            fields[f"reader_{kind}_bytes"] = reader[kind]
    fields["source_state"] = str(body.get("source_state", ""))
    if isinstance(body.get("watchdog"), dict):
        from cygno_online.daemon.watchdog import watchdog_fields

        fields.update(watchdog_fields(body["watchdog"]))
    return Metric(
        "monitor",
        time_ns or time.time_ns(),
        run,
        0,
        fields,
        {},
        {
            "rate_in_hz": "Hz",
            "rate_processed_hz": "Hz",
            "cpu_percent": "%",
            "rss_bytes": "B",
            "rss_shmem_bytes": "B",
            "reader_anon_bytes": "B",
            "reader_shmem_bytes": "B",
        },
    )


def monitor_series(analyzers: list[str] | tuple[str, ...] = ()) -> SeriesSpec:
    """The metric catalogue's declaration of :func:`health_metric` (family
    ``monitor``, no tags). ``watchdog_*`` are the progress watchdog's fields
    (issue 11's ``daemon/watchdog.py``)."""
    f = FieldSpec
    fields = [
        f("events_in", "int", "", "events received (counter)"),
        f("events_processed", "int", "", "events analysed (counter)"),
        f("events_dropped", "int", "", "events the monitor dropped, queue full (counter)"),
        f("rate_in_hz", "float", "Hz"),
        f("rate_processed_hz", "float", "Hz"),
        f("decode_errors", "int", "", "(counter)"),
        f("analyzer_errors", "int", "", "(counter)"),
        f("queue_depth", "int"),
        f("cpu_percent", "float", "%"),
        f("rss_bytes", "int", "B", "the daemon's own resident memory (anon + file, no shmem)"),
        f("rss_shmem_bytes", "int", "B", "the daemon's shared memory (the hand-off slots)"),
        f("reader_anon_bytes", "int", "B", "the MIDAS reader process's own memory"),
        f("reader_shmem_bytes", "int", "B", "the MIDAS reader's shared memory (mapped buffer)"),
        f("uptime_s", "float", "s"),
        f("drops_<reason>", "int", "", "drops by reason (queue_full, publish_*, sink...)"),
    ]
    fields += [f(f"ms_{a}", "float", "ms", f"analysis time per event of {a}") for a in analyzers]
    fields += [
        f("publisher_dropped_queue", "int", "", "(counter)"),
        f("publisher_dropped_send", "int", "", "(counter)"),
        f("publisher_displays_skipped", "int", "", "(counter)"),
        f("publisher_series_evicted", "int", "", "(counter)"),
        f("publisher_loop_errors", "int", "", "(counter)"),
        f("publisher_snapshot_rejected", "int", "", "(counter)"),
        f("publisher_snapshot_dropped", "int", "", "(counter)"),
        f("publisher_control_rejected", "int", "", "(counter)"),
        f("publisher_control_dropped", "int", "", "(counter)"),
        f("source_state", "string"),
        f("watchdog_failed", "int", "", "daemon components stalled or dead now"),
        f("watchdog_failures_total", "int", "", "(counter)"),
        f("watchdog_failed_names", "string", "", "name:state of the failed components"),
        f("watchdog_age_s_<component>", "float", "s", "since the component's last beat"),
    ]
    return SeriesSpec("monitor", tuple(fields), (), "daemon", "the daemon's health report")
