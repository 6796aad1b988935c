# ruff: noqa: F811 - pytest fixtures imported from sinks_helpers are parameters here
"""The provisioned Grafana dashboard matches the schema the sink writes.

Points of every family are written through the sink into a real InfluxDB
1.x; then every panel, variable and annotation query of the dashboard is run
(Grafana's macros substituted) and must succeed and return data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from sinks_helpers import influxd  # noqa: F401 - fixture

from cygno_online.analysis.outputs import FAMILIES, Metric
from cygno_online.params import Params
from cygno_online.sinks.influx import InfluxSink
from cygno_online.sinks.testservers import InfluxDB1

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "config" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "cygno-online.json"


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_queries(dash: dict) -> list[tuple[str, str]]:
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["query"]))
    for v in dash["templating"]["list"]:
        out.append((f"variable {v['name']}", v["query"]))
    for a in dash["annotations"]["list"]:
        out.append((f"annotation {a['name']}", a["query"]))
    return out


def test_provisioning_files_are_consistent():
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/cygno-influxdb.yaml").read_text())
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/cygno-online.yaml").read_text())
    assert ds["apiVersion"] == 1 and prov["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["type"] == "influxdb"
    # no secret literal in the file: only environment references
    assert source["secureJsonData"]["password"].startswith("${")
    dash = load_dashboard()
    uids = {p["datasource"]["uid"] for p in dash["panels"] if "datasource" in p}
    uids |= {t["datasource"]["uid"] for p in dash["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}
    assert prov["providers"][0]["type"] == "file"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for _, q in all_queries(dash):
        froms = q.split(" FROM ")[1].split()[0].strip('"') if " FROM " in q else None
        assert froms is None or froms in FAMILIES, q


def representative_metrics(now: int) -> list[Metric]:
    run = 77
    t = [now - 60_000_000_000 + k * 1_000_000_000 for k in range(10)]
    out = []
    for k, ts in enumerate(t):
        out += [
            Metric("daq", ts, run, k, {"rate_hz": 1.0, "lag_s": 0.2}, {"event_id": "1"}),
            Metric("monitor", ts, run, 0, {"rate_in_hz": 2.0, "rate_processed_hz": 2.0}, {}),
            Metric(
                "camera",
                ts,
                run,
                k,
                {"raw_mean": 99.5, "raw_rms": 3.0, "n_clusters": 4, "sensor_temperature": -20.0},
                {"camera": "cam0"},
            ),
            Metric("clusters", ts, run, k, {"n_fe55": 2, "n_clusters": 4}, {"camera": "cam0"}),
            Metric("pmt", ts, run, k, {"multiplicity": 3}, {"board": "0"}),
            Metric(
                "pmt",
                ts,
                run,
                k,
                {"amplitude": 120.0, "baseline_drift": 0.5},
                {"board": "0", "channel": "1"},
            ),
            Metric("environment", ts, run, k, {"lime_pressure": 0.99, "gas_temperature": 22.0}),
            Metric("hv", ts, run, k, {"measured": 440.0}, {"channel": "gem1_top"}),
        ]
    out.append(
        Metric(
            "runs",
            t[0],
            run,
            0,
            {"state": "running", "run_number": run, "description": "test run"},
        )
    )
    out.append(
        Metric(
            "alarms",
            t[1],
            run,
            0,
            {"active": True, "acked": False, "transition": "raised", "message": "too hot"},
            {"alarm": "temp", "severity": "warning"},
        )
    )
    return out


def substitute(q: str) -> str:
    return (
        q.replace("$timeFilter", "time > now() - 6h")
        .replace("$__interval", "1m")
        .replace("$experiment", "LIME")
        .replace("$run", ".*")
    )


def test_every_dashboard_query_runs_and_finds_data(influxd: InfluxDB1, tmp_path: Path):
    influxd.create_database("grafana")
    section = {"api": "v1", "url": influxd.url, "database": "grafana"}
    sink = InfluxSink.from_params(Params(section, "influx"), state_dir=tmp_path, experiment="LIME")
    sink.start()
    try:
        now = time.time_ns()
        sink.submit(representative_metrics(now))
        assert sink.flush(20)
        sink.submit(sink.health_metrics(now))  # the sink's own health, as the daemon does
        assert sink.flush(20)
    finally:
        sink.stop(5)
    empty = []
    for title, q in all_queries(load_dashboard()):
        doc = influxd.query(substitute(q), "grafana")  # raises on any InfluxQL error
        if not any(r.get("series") for r in doc["results"]):
            empty.append(title)
    assert empty == []


def test_dashboard_queries_name_what_the_catalogue_declares():
    """Every measurement, field and tag of a dashboard query exists in the
    metric catalogue of config/lime.yaml (no server needed)."""
    import re

    from cygno_online.analysis.catalogue import catalogue_of_chain
    from cygno_online.daemon.config import load_config

    _cfg, chain = load_config(ROOT / "config" / "lime.yaml")
    try:
        cat = catalogue_of_chain(chain)
    finally:
        chain.close()
    sink_tags = {"experiment", "run"}
    checked = 0
    for where, q in all_queries(load_dashboard()):
        if " FROM " not in q:
            continue
        family = q.split(" FROM ")[1].split()[0].strip('"')
        assert family in cat.families(), (where, family)
        select = q.split(" FROM ")[0]
        if select.startswith("SELECT"):
            for fld in re.findall(r'"([^"]+)"', select):
                assert cat.find(family, fld) is not None, (where, family, fld)
                checked += 1
        rest = q.split(" FROM ")[1]
        for tag, op, value in re.findall(r'"([^"]+)"\s*(=~|!=|=)\s*(\S+)', rest):
            if tag in sink_tags or tag == "transition" or (op == "=" and value == "''"):
                continue  # "= ''" selects series without the tag: always valid
            assert tag in cat.tag_keys(family), (where, family, tag)
        if "GROUP BY" in rest:
            for tag in re.findall(r'"([^"]+)"', rest.split("GROUP BY")[1]):
                assert tag in cat.tag_keys(family) | sink_tags, (where, family, tag)
        for tag in re.findall(r'WITH KEY = "([^"]+)"', q):
            assert tag in cat.tag_keys(family) | sink_tags, (where, tag)
    assert checked >= 20
