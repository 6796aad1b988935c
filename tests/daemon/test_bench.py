"""The pipeline bench runs and reports (numbers are reported, never asserted)."""

from __future__ import annotations

import argparse

from cygno_online.bench import pipeline


def test_bench_pipeline_small():
    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    args = parser.parse_args(["--events", "4", "--layout", "crop:128", "--pedestal-events", "3"])
    report = pipeline.run(args)
    [row] = report.rows
    assert row.runs == report.info["events"] >= 4  # one latency per event
    assert row.throughput > 0 and row.extra["images_per_s"] > 0
    assert len(row.extra["latency_ms_p50_p90_p99"]) == 3
