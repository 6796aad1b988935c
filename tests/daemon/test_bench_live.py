"""The live bench runs through the reader process and reports every row
(numbers are reported, never asserted)."""

from __future__ import annotations

import argparse

from cygno_online.bench import live


def test_bench_live_small():
    parser = argparse.ArgumentParser()
    live.add_arguments(parser)
    args = parser.parse_args(["--lime-events", "2", "--small-events", "200"])
    report = live.run(args)
    handoff, lime, small = report.rows
    assert handoff.ref_median_ms > 0 and "overhead_ms" in handoff.extra
    assert lime.extra["sent"] == 2 and lime.runs == lime.extra["published"] > 0
    assert small.extra["published"] > 0
    assert "transition_ms_median_with_monitor" in small.extra
