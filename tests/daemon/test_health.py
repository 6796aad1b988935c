"""The daemon's self-monitoring metric carries every drop counter."""

from __future__ import annotations

from cygno_online.daemon.health import health_metric


def test_monitor_metric_has_publisher_drops_and_evictions():
    body = {
        "events_in": 10,
        "events_processed": 9,
        "events_dropped": 1,
        "drops": {"queue_full": 1},
        "rate_in_hz": 1.5,
        "source_state": "running",
        "publisher": {
            "dropped_queue": 2,
            "dropped_send": 3,
            "displays_skipped": 4,
            "series_evicted": 5,
            "seq": 99,
        },
    }
    m = health_metric(body, run=7, time_ns=123)
    assert m.family == "monitor" and m.run == 7 and m.time_ns == 123
    assert m.fields["drops_queue_full"] == 1 and m.fields["events_dropped"] == 1
    assert {k: m.fields[k] for k in m.fields if k.startswith("publisher_")} == {
        "publisher_dropped_queue": 2,
        "publisher_dropped_send": 3,
        "publisher_displays_skipped": 4,
        "publisher_series_evicted": 5,
    }
    assert m.units["rate_in_hz"] == "Hz"
