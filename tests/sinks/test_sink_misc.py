"""Sink odds and ends: health metrics, flush without a server, bench."""

from __future__ import annotations

import argparse
from pathlib import Path

from sinks_helpers import camera_metrics

from cygno_online.params import Params
from cygno_online.sinks.influx import InfluxSink
from cygno_online.sinks.testservers import INFLUXD, VICTORIA, find_binary, free_port
from cygno_online.testing.waiting import wait_for


def dead_sink(tmp_path: Path) -> InfluxSink:
    section = {"api": "v1", "url": f"http://127.0.0.1:{free_port()}", "database": "x"}
    return InfluxSink.from_params(Params(section, "influx"), state_dir=tmp_path, experiment="E")


def test_health_metrics_shape(tmp_path: Path):
    sink = dead_sink(tmp_path)
    sink.submit(camera_metrics(10, run=5))
    (m,) = sink.health_metrics(123)
    assert (m.family, m.time_ns, m.run, m.tags) == ("monitor", 123, 5, {"component": "influx"})
    assert m.fields["points_pending"] == 10.0
    assert m.fields["spool_bytes"] > 0 and m.fields["oldest_age_s"] >= 0.0
    # every numeric field is a float, so its type can never change on the server
    assert all(isinstance(v, (float, str)) for v in m.fields.values())
    assert m.units["spool_bytes"] == "B"
    st = sink.stats()
    assert set(st) >= {
        "spool_bytes",
        "points_pending",
        "oldest_age_s",
        "send_rate",
        "points_sent",
        "batches",
        "retries",
        "dropped",
        "quarantined",
        "last_error",
    }
    sink.stop(1)


def test_flush_times_out_while_server_is_down_and_data_stays(tmp_path: Path):
    sink = dead_sink(tmp_path)
    sink.start()
    try:
        sink.submit(camera_metrics(10))
        assert sink.flush(0.3) is False
        assert sink.stats()["points_pending"] == 10
        wait_for(lambda: sink.stats()["state"] == "retrying", what="retrying state")
        assert "connection failed" in sink.stats()["last_error"]
    finally:
        sink.stop(2)
    # the next process finds the points in the spool
    again = dead_sink(tmp_path)
    again._ensure_open()
    assert again.stats()["points_pending"] == 10
    again.stop(1)


def test_bench_runs(tmp_path: Path):
    from cygno_online.bench import influx as bench

    args = argparse.Namespace(points=300, repeat=1, fsync="batch", no_servers=False)
    report = bench.run(args)
    names = [r.name for r in report.rows]
    assert names[0] == "submit -> spool"
    assert report.rows[0].throughput > 0 and report.rows[0].ref_median_ms is not None
    for name, binary in (("-> influxd (v1)", INFLUXD), ("-> victoria-metrics (v2)", VICTORIA)):
        row = next(r for r in report.rows if r.name == name)
        if find_binary(binary):
            assert row.throughput > 0 and row.extra["retries"] == 0
        else:
            assert "skipped" in row.extra
