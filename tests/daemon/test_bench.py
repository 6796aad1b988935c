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


def test_bench_pipeline_model_pedestals_paced_and_replayed():
    """The CYGNO-04 options on a small crop: pedestal maps written into the
    store (no estimate: the run-start row says it was loaded), events replayed
    with new serials, one measurement as fast as possible and one paced."""
    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    args = parser.parse_args(
        [
            "--events",
            "6",
            "--layout",
            "crop:128",
            "--pedestal",
            "model",
            "--distinct",
            "2",
            "--rate",
            "0",
            "20",
        ]
    )
    report = pipeline.run(args)
    fast, paced = report.rows
    assert report.info["distinct_events"] == 2 and report.info["pedestal"] == "model"
    for row in (fast, paced):
        assert row.runs == report.info["events"]  # one latency per event, none lost
        assert row.extra["first_event_after_new_pedestal_s"] is not None
        where = row.extra["where_the_time_goes"]
        assert set(where["per_camera_ms_p50_p99"]) == {"cam0"}
        assert row.extra["memory"]["camera_state_mb"]["cam0"] > 0
    assert "at 20 camera events/s" in paced.name


def test_replayed_events_continue_serials_and_times():
    from cygno_online.midas.event import parse_event
    from cygno_online.simulate import Simulator

    sim = Simulator("crop:32", seed=7, run=1)
    base = [parse_event(e.data, source="t", offset=0) for e in sim.events(3)]
    out = pipeline._replayed(base, 7)
    triggers = [e for e in out if e.header.event_id == 1]
    assert [e.header.serial_number for e in triggers] == list(range(7))
    keys = [(e.header.event_id, e.header.serial_number) for e in out]
    assert len(keys) == len(set(keys))
    stamps = [e.header.time_stamp for e in out]
    assert stamps == sorted(stamps)
    # banks are shared with the generated events, not copied
    assert out[len(base)].banks is base[0].banks
