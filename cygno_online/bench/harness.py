"""Side-by-side timing of a fast path and its plain numpy/scipy reference.

Every ``cygno-online bench`` entry builds :class:`Case` objects (the fast
callable and the reference callable of the *same* computation on the same
input) and hands them to :func:`run_cases`. Medians are reported, never means:
one page fault or GC pause must not move the number.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO


@dataclass(slots=True)
class Case:
    """One row of a benchmark table."""

    name: str
    fast: Callable[[], Any]
    reference: Callable[[], Any] | None = None
    #: work units per call (frames, events, bytes...) for throughput columns
    units: float = 1.0
    unit_name: str = "call"
    repeat: int = 9
    #: reference runs are often 20-100x slower: fewer repeats keep bench short
    reference_repeat: int | None = None
    warmup: int = 1


@dataclass(slots=True)
class Row:
    name: str
    median_ms: float
    p90_ms: float
    runs: int
    throughput: float
    unit_name: str
    ref_median_ms: float | None = None
    #: reference median / fast median (>1 means the fast path is faster)
    speedup: float | None = None
    #: median CPU time of this thread in the same fast calls (run_case)
    cpu_median_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Report:
    bench: str
    rows: list[Row]
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"bench": self.bench, "info": self.info, "rows": [asdict(r) for r in self.rows]}


def time_calls(
    fn: Callable[[], Any], repeat: int, warmup: int = 1, cpu: list[float] | None = None
) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls after ``warmup`` untimed calls;
    with ``cpu`` given, the CPU seconds of this thread in each of the same
    calls are appended to it (a call's CPU time never exceeds its wall time:
    the two medians describe the same calls, not two moments of a shared
    machine)."""
    for _ in range(warmup):
        fn()
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            c0 = time.thread_time()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            if cpu is not None:
                cpu.append(time.thread_time() - c0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def run_case(case: Case) -> Row:
    cpu: list[float] = []
    fast = time_calls(case.fast, case.repeat, case.warmup, cpu)
    med = statistics.median(fast)
    row = Row(
        name=case.name,
        median_ms=med * 1e3,
        p90_ms=_p90(fast) * 1e3,
        runs=len(fast),
        throughput=case.units / med if med > 0 else float("inf"),
        unit_name=case.unit_name,
        cpu_median_ms=statistics.median(cpu) * 1e3,
    )
    if case.reference is not None:
        ref = time_calls(case.reference, case.reference_repeat or case.repeat, case.warmup)
        ref_med = statistics.median(ref)
        row.ref_median_ms = ref_med * 1e3
        row.speedup = ref_med / med if med > 0 else float("inf")
    return row


def run_cases(bench: str, cases: list[Case], info: dict[str, Any] | None = None) -> Report:
    return Report(bench=bench, rows=[run_case(c) for c in cases], info=dict(info or {}))


def print_report(report: Report, as_json: bool = False, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if as_json:
        json.dump(report.to_json(), out, indent=2, default=float)
        out.write("\n")
        return
    out.write(f"== bench {report.bench} ==\n")
    for k, v in report.info.items():
        out.write(f"  {k}: {v}\n")
    header = f"  {'case':<34} {'median ms':>10} {'p90 ms':>9} {'rate':>14} {'ref ms':>10} {'speedup':>8}\n"
    out.write(header)
    for r in report.rows:
        ref = f"{r.ref_median_ms:10.2f}" if r.ref_median_ms is not None else f"{'-':>10}"
        sp = f"{r.speedup:7.1f}x" if r.speedup is not None else f"{'-':>8}"
        rate = f"{r.throughput:,.1f} {r.unit_name}/s"
        out.write(f"  {r.name:<34} {r.median_ms:10.3f} {r.p90_ms:9.3f} {rate:>14} {ref} {sp}\n")
        for k, v in r.extra.items():
            out.write(f"      {k}: {v}\n")
