# ruff: noqa: F811 - pytest fixtures imported from sinks_helpers are parameters here
"""The sink against real servers started on loopback (InfluxDB 1.x, VictoriaMetrics).

Every test writes through :class:`InfluxSink` and reads back with the
server's own query API: InfluxQL ``/query`` for InfluxDB, ``/api/v1/export``
for VictoriaMetrics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sinks_helpers import (  # noqa: F401 - fixtures
    BASE_NS,
    camera_metrics,
    fresh_influxd,
    fresh_victoria,
    influxd,
    need_binary,
    victoria,
)

from cygno_online.analysis.outputs import Metric
from cygno_online.params import Params
from cygno_online.sinks.influx import InfluxSink
from cygno_online.sinks.testservers import INFLUXD, InfluxDB1, VictoriaMetrics, free_port
from cygno_online.testing.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def v1_sink(server: InfluxDB1, db: str, spool: Path, **extra) -> InfluxSink:
    section = {
        "api": "v1",
        "url": server.url,
        "database": db,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "spool": {"dir": str(spool)},
        **extra,
    }
    return InfluxSink.from_params(Params(section, "influx"), state_dir=None, experiment="LIME")


def v2_sink(server: VictoriaMetrics, spool: Path, **extra) -> InfluxSink:
    section = {
        "api": "v2",
        "url": server.url,
        "org": "-",
        "bucket": "cygno",
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "spool": {"dir": str(spool)},
        **extra,
    }
    return InfluxSink.from_params(Params(section, "influx"), state_dir=None, experiment="LIME")


def serials_by_run(server: InfluxDB1, db: str, measurement: str = "camera") -> dict[str, list[int]]:
    rows = server.rows(f'SELECT "serial" FROM "{measurement}" GROUP BY "run"', db)
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["run"], []).append(r["serial"])
    return {k: sorted(v) for k, v in out.items()}


# -- InfluxDB 1.x, v1 write API ------------------------------------------------------------


def test_influx1_values_round_trip(influxd: InfluxDB1, tmp_path: Path):
    influxd.create_database("roundtrip")
    sink = v1_sink(influxd, "roundtrip", tmp_path / "spool")
    tricky = [
        Metric(
            "environment",
            BASE_NS + i,
            3,
            i,
            {
                "temp": 21.5 + i,
                "count": i,
                "ok": i % 2 == 0,
                "note": f'say "hi" \\ x, y=z #{i}',
            },
            {"sensor": "T 1,a=b", "room": "hall\\B"},
            {"temp": "degC"},
        )
        for i in range(5)
    ]
    sink.start()
    try:
        assert sink.submit(tricky + camera_metrics(12000, run=11)) == 12005
        assert sink.flush(30)
        st = sink.stats()
    finally:
        sink.stop(5)
    assert st["points_sent"] == 12005 and st["batches"] == 3  # 5000-line batches
    rows = influxd.rows('SELECT * FROM "environment" ORDER BY time', "roundtrip")
    assert len(rows) == 5
    for i, r in enumerate(rows):
        assert r["time"] == BASE_NS + i
        assert r["temp"] == 21.5 + i and r["count"] == i and r["ok"] is (i % 2 == 0)
        assert r["note"] == f'say "hi" \\ x, y=z #{i}'
        assert r["sensor"] == "T 1,a=b" and r["room"] == "hall\\B"
        assert (r["experiment"], r["run"], r["serial"]) == ("LIME", "3", i)
    count = influxd.rows('SELECT count("mean") FROM "camera" WHERE "run" = \'11\'', "roundtrip")
    assert count[0]["count"] == 12000
    s = influxd.rows('SELECT sum("mean"), max("serial") FROM "camera"', "roundtrip")[0]
    assert s["sum"] == sum(100.0 + 0.25 * i for i in range(12000))
    assert s["max"] == 11999
    # the field types on the server follow the rule: numbers float, serial integer
    types = {
        (r["fieldKey"], r["fieldType"])
        for r in influxd.rows('SHOW FIELD KEYS FROM "camera"', "roundtrip")
    }
    assert types == {
        ("mean", "float"),
        ("clusters", "float"),
        ("ok", "boolean"),
        ("serial", "integer"),
    }


def test_influx1_quarantine_on_type_conflict(influxd: InfluxDB1, tmp_path: Path):
    from cygno_online.sinks.testservers import http

    influxd.create_database("conflict")
    # someone else wrote the field "level" as a string first
    status, _ = http(
        "POST",
        influxd.url + "/write?db=conflict",
        # same shard as the sink's points (InfluxDB 1.x checks types per shard)
        f'gas,experiment=LIME,run=1 level="high" {BASE_NS - 1}'.encode(),
    )
    assert status == 204
    sink = v1_sink(influxd, "conflict", tmp_path / "spool")
    metrics = [Metric("gas", BASE_NS + i, 1, i, {"flow": 1.0 + i}, {}) for i in range(60)]
    metrics[17] = Metric("gas", BASE_NS + 17, 1, 17, {"level": 3.5}, {})
    sink.start()
    try:
        sink.submit(metrics)
        assert sink.flush(30)
        st = sink.stats()
    finally:
        sink.stop(5)
    assert st["quarantined"] == 1
    assert influxd.rows('SELECT count("flow") FROM "gas"', "conflict")[0]["count"] == 59
    qdir = tmp_path / "spool" / "quarantine"
    (lp,) = qdir.glob("*.lp")
    (why,) = qdir.glob("*.jsonl")
    assert lp.read_text().count("\n") == 1 and "level=3.5" in lp.read_text()
    assert "conflict" in why.read_text() and '"status": 400' in why.read_text()


def test_influx1_outage_nothing_lost(fresh_influxd: InfluxDB1, tmp_path: Path):
    server = fresh_influxd
    server.create_database("outage")
    sink = v1_sink(server, "outage", tmp_path / "spool", batch_size=500)
    sink.start()
    try:
        sink.submit(camera_metrics(2000, run=1))
        assert sink.flush(30)
        server.stop()
        for k in range(4):  # keeps submitting while the server is down
            assert sink.submit(camera_metrics(500, run=2, start=k * 500)) == 500
        wait_for(lambda: sink.stats()["retries"] > 0, timeout=60, what="a failed send")
        assert sink.stats()["points_pending"] > 0
        server.start()  # same data directory
        sink.submit(camera_metrics(1000, run=3))
        assert sink.flush(30)
        st = sink.stats()
    finally:
        sink.stop(5)
    assert st["dropped"] == 0 and st["points_pending"] == 0
    got = serials_by_run(server, "outage")
    assert got == {
        "1": list(range(2000)),
        "2": list(range(2000)),
        "3": list(range(1000)),
    }


WRITER = textwrap.dedent(
    """
    import sys, time
    from cygno_online.analysis.outputs import Metric
    from cygno_online.params import Params
    from cygno_online.sinks.influx import InfluxSink
    url, db, spool = sys.argv[1:4]
    section = {"api": "v1", "url": url, "database": db, "batch_size": 300,
               "spool": {"dir": spool, "fsync": "never"}}
    sink = InfluxSink.from_params(Params(section, "influx"), state_dir=None, experiment="LIME")
    sink.start()
    base = BASE_NS_VALUE
    serial = 0
    while True:
        batch = [Metric("camera", base + (serial + i) * 1000, 9, serial + i,
                        {"mean": float(serial + i)}, {"camera": "cam0"}) for i in range(100)]
        n = sink.submit(batch)
        serial += n
        print(serial, flush=True)
    """
).replace("BASE_NS_VALUE", str(BASE_NS))


@pytest.mark.parametrize("writer_sees_server", [True, False])
def test_influx1_sigkill_then_replay(influxd: InfluxDB1, tmp_path: Path, writer_sees_server: bool):
    """The killed writer either delivered part itself (checkpoint mid-stream)
    or could not reach the server at all (everything only in its spool)."""
    db = f"killed_{int(writer_sees_server)}"
    influxd.create_database(db)
    spool = tmp_path / "spool"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    url = influxd.url if writer_sees_server else f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, db, str(spool)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    accepted = 0
    try:
        for line in proc.stdout:
            accepted = int(line)
            if accepted >= 20000:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    assert accepted >= 20000
    # a new process on the same spool delivers what the killed one had not
    sink = v1_sink(influxd, db, spool)
    if not writer_sees_server:
        sink._ensure_open()
        assert sink.stats()["points_pending"] >= accepted
    sink.start()
    try:
        assert sink.flush(60)
    finally:
        sink.stop(5)
    serials = serials_by_run(influxd, db)["9"]
    # every point accepted before the kill arrived (at least once; the server dedups)
    assert serials[:accepted] == list(range(accepted))
    assert len(serials) == len(set(serials))


def test_influx1_corrupt_segment_tail_reported_and_rest_delivered(
    influxd: InfluxDB1, tmp_path: Path
):
    influxd.create_database("corrupt")
    spool = tmp_path / "spool"
    # two earlier sessions left two segments behind (server unreachable back then)
    for k in range(2):
        sink = v1_sink(influxd, "corrupt", spool, url="http://127.0.0.1:9", batch_size=100)
        sink.submit(camera_metrics(300, run=20 + k))
        sink.stop(1)
    seg = sorted(spool.glob("*.seg"))[0]
    data = seg.read_bytes()
    seg.write_bytes(data[:-50])  # torn last record (3 records of 100 points each)
    sink = v1_sink(influxd, "corrupt", spool)
    sink.start()
    try:
        assert sink.flush(30)
        st = sink.stats()
    finally:
        sink.stop(5)
    assert st["corrupt_records"] == 1 and st["corrupt_bytes"] > 0
    got = serials_by_run(influxd, "corrupt")
    assert got == {"20": list(range(200)), "21": list(range(300))}


# -- VictoriaMetrics, v2 write API through influxdb-client ------------------------------------


def vm_values(server: VictoriaMetrics, name: str, run: int) -> dict[int, float]:
    """timestamp (ms) -> value of one metric for one run."""
    out: dict[int, float] = {}
    for series in server.export(f'{{__name__="{name}",run="{run}"}}'):
        out.update(zip(series["timestamps"], series["values"], strict=True))
    return out


def test_victoria_v2_round_trip(victoria: VictoriaMetrics, tmp_path: Path):
    sink = v2_sink(victoria, tmp_path / "spool")
    metrics = [
        Metric(
            "pmt",
            BASE_NS + i * 1_000_000,  # VictoriaMetrics keeps milliseconds
            31,
            i,
            {"amp": 0.5 * i, "hits": i % 7, "clipped": i % 3 == 0, "label": "x"},
            {"board": "b 1", "channel": str(i % 4)},
        )
        for i in range(7000)
    ]
    sink.start()
    try:
        assert sink.submit(metrics) == 7000
        assert sink.flush(30)
    finally:
        sink.stop(5)
    amp = vm_values(victoria, "pmt_amp", 31)
    serial = vm_values(victoria, "pmt_serial", 31)
    clipped = vm_values(victoria, "pmt_clipped", 31)
    assert len(amp) == len(serial) == len(clipped) == 7000
    for i in range(7000):
        t_ms = (BASE_NS + i * 1_000_000) // 1_000_000
        assert serial[t_ms] == i and amp[t_ms] == 0.5 * i and clipped[t_ms] == (i % 3 == 0)
    series = victoria.export('{__name__="pmt_hits",run="31",channel="2"}')
    assert len(series) == 1
    labels = series[0]["metric"]
    assert (labels["experiment"], labels["board"], labels["channel"]) == ("LIME", "b 1", "2")
    assert len(series[0]["values"]) == 1750


def ms_metrics(n: int, run: int, start: int = 0) -> list[Metric]:
    """One point per millisecond (VictoriaMetrics' resolution)."""
    return [
        Metric("pmt", BASE_NS + (start + i) * 1_000_000, run, start + i, {"amp": float(start + i)})
        for i in range(n)
    ]


def test_victoria_outage_nothing_lost(fresh_victoria: VictoriaMetrics, tmp_path: Path):
    server = fresh_victoria
    sink = v2_sink(server, tmp_path / "spool", batch_size=400)
    sink.start()
    try:
        sink.submit(ms_metrics(1000, run=41))
        assert sink.flush(30)
        server.stop()
        for k in range(3):
            sink.submit(ms_metrics(500, run=42, start=k * 500))
        wait_for(lambda: sink.stats()["retries"] > 0, timeout=60, what="a failed send")
        server.start()
        assert sink.flush(30)
        st = sink.stats()
    finally:
        sink.stop(5)
    assert st["dropped"] == 0
    assert sorted(vm_values(server, "pmt_serial", 41).values()) == list(range(1000))
    assert sorted(vm_values(server, "pmt_serial", 42).values()) == list(range(1500))


def test_influx1_auth_error_then_recovery(tmp_path: Path):
    """A real 401 from InfluxDB 1.x with authentication on: points stay spooled,
    the state says auth_error; once the account exists they all arrive."""
    binary = need_binary(INFLUXD)
    server = InfluxDB1(tmp_path / "influxd", binary=binary, auth=True)
    server.start()
    try:
        server.create_admin("admin", "adminpw")
        server.create_database("secured")
        pw = tmp_path / "pw"
        pw.write_text("writerpw\n")
        sink = v1_sink(
            server,
            "secured",
            tmp_path / "spool",
            username="writer",
            password_file=str(pw),
            auth_retry_s=0.2,
        )
        sink.start()
        try:
            sink.submit(camera_metrics(300, run=50))
            wait_for(lambda: sink.stats()["state"] == "auth_error", what="auth_error")
            assert sink.stats()["points_pending"] == 300
            assert "401" in sink.stats()["last_error"]
            server.query("CREATE USER \"writer\" WITH PASSWORD 'writerpw'")
            server.query('GRANT WRITE ON "secured" TO "writer"')
            assert sink.flush(30)
            assert sink.stats()["state"] == "ok"
        finally:
            sink.stop(5)
        assert serials_by_run(server, "secured") == {"50": list(range(300))}
    finally:
        server.stop()


def test_victoria_stop_then_start_again(victoria: VictoriaMetrics, tmp_path: Path):
    sink = v2_sink(victoria, tmp_path / "spool")
    sink.start()
    sink.submit(ms_metrics(100, run=61))
    assert sink.flush(20)
    sink.stop(5)
    sink.submit(ms_metrics(50, run=61, start=100))  # spooled while stopped
    sink.start()
    try:
        assert sink.flush(20)
    finally:
        sink.stop(5)
    assert sorted(vm_values(victoria, "pmt_serial", 61).values()) == list(range(150))


def test_influx1_outage_while_a_producer_keeps_submitting(fresh_influxd: InfluxDB1, tmp_path: Path):
    """A producer thread submits all the time; the server goes away and comes
    back under it. Every point arrives, exactly the serials submitted."""
    import threading

    server = fresh_influxd
    server.create_database("live")
    sink = v1_sink(server, "live", tmp_path / "spool", batch_size=300)
    total = 6000
    accepted = [0]
    done = threading.Event()

    def produce() -> None:
        while accepted[0] < total and not done.is_set():
            n = min(50, total - accepted[0])
            accepted[0] += sink.submit(camera_metrics(n, run=70, start=accepted[0]))
            done.wait(0.002)  # pacing only: a stream, not one burst

    sink.start()
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_for(lambda: accepted[0] >= 1500, timeout=30, what="first points")
        server.stop()
        at_stop = accepted[0]
        wait_for(lambda: sink.stats()["retries"] > 0, timeout=30, what="a failed send")
        wait_for(lambda: accepted[0] >= min(total, at_stop + 1000), timeout=30, what="more points")
        server.start()
        wait_for(lambda: accepted[0] >= total, timeout=60, what="all points submitted")
        producer.join(10)
        assert sink.flush(60)
        st = sink.stats()
    finally:
        done.set()
        producer.join(10)
        sink.stop(5)
    assert st["dropped"] == 0 and st["retries"] > 0
    assert serials_by_run(server, "live") == {"70": list(range(total))}
