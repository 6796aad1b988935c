# ruff: noqa: F811 - pytest fixtures imported from sinks_helpers are parameters here
"""The provisioned Grafana dashboard matches the schema the sink writes.

Points of every family are written through the sink into a real InfluxDB
1.x; then every panel, variable and annotation query of the dashboard is run
(Grafana's macros substituted) and must succeed and return data.
"""

from __future__ import annotations

import json
import re
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


def real_metrics(tmp_path: Path) -> list[Metric]:
    """What the daemon writes, made by the real code: a small simulated run
    through the full analysis chain with the reference checks (offline runner),
    its run_summary point and check points, a health report, an alarm
    transition. Timed within the last hour so the dashboard's time filter sees it."""
    import sys

    from cygno_online.alarms.engine import AlarmEngine, alarm_metric
    from cygno_online.alarms.rules import parse_rules
    from cygno_online.daemon.health import Health, health_metric
    from cygno_online.quality.monitor import QualityConfig, RunQuality
    from cygno_online.sinks.registry import RunRegistry, run_summary_metric

    sys.path.insert(0, str(ROOT / "tests" / "quality"))
    from simruns import analyse, simulator

    reg = RunRegistry(f"sqlite://{tmp_path}/runs.sqlite")
    quality = RunQuality(QualityConfig.default(), reg, record=True)
    metrics: list[Metric] = []
    start = time.time() - 1800
    for run in (77, 78):  # two runs: the second has the first as its reference
        sim = simulator(run)
        sim.start_time, sim.start_time_ns = start, int(start * 1e9)
        sim.time_zero = int(start)
        got: list[Metric] = []
        doc = analyse(sim, quality, ntrig=20, on_outputs=got.extend, sampling="simulator")
        metrics += [m for m in got if isinstance(m, Metric)]
        metrics.append(run_summary_metric(doc))
        metrics += quality.metrics(doc["checks"], int(doc["stop_time_ns"]), run)
        start += 60
    reg.close()
    metrics.append(health_metric(Health().report(), 78))
    p = Params({"rules": [{"id": "hot", "family": "environment", "field": "gas_temperature",
                           "above": -100, "severity": "warning"}]}, "alarms")  # fmt: skip
    raised: list = []
    eng = AlarmEngine(parse_rules(p), on_transition=raised.append)
    eng.set_running(True)
    eng.observe(next(m for m in metrics if m.family == "environment"))
    metrics += [alarm_metric(r, "LIME", 78) for r in raised]
    return metrics


_FIELD = re.compile(
    r'(?:mean|max|min|last|sum|count)\("([^"]+)"\)|SELECT ((?:"[^"]+"(?:, )?)+) FROM'
)


def query_names(q: str) -> tuple[str | None, set[str]]:
    """(measurement, fields and tags named in the SELECT) of an InfluxQL query."""
    m = re.search(r'FROM "([^"]+)"', q)
    names: set[str] = set()
    for agg, plain in _FIELD.findall(q):
        if agg:
            names.add(agg)
        if plain:
            names |= set(re.findall(r'"([^"]+)"', plain))
    for key in re.findall(r"WHERE (.*?)(?: GROUP BY| ORDER BY|$)", q):
        names |= {n for n in re.findall(r'"([^"]+)" (?:=|!=|=~) ', key)}
    return (m.group(1) if m else None), names


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
        sink.submit(real_metrics(tmp_path))
        assert sink.flush(60)
        sink.submit(sink.health_metrics(now))  # the sink's own health, as the daemon does
        assert sink.flush(20)
        written = sink._encoder.registry.as_dict()["measurements"]  # what the sink wrote
    finally:
        sink.stop(5)
    # every measurement and field a query names is one the sink wrote (tags:
    # the metric tags plus experiment and run)
    tags = {"experiment", "run", "camera", "channel", "board", "event_id", "component",
            "cluster", "alarm", "severity", "check", "equipment"}  # fmt: skip
    unknown = []
    for title, q in all_queries(load_dashboard()):
        meas, names = query_names(q)
        if meas is None:
            continue
        assert meas in written, f"{title}: measurement {meas} is never written"
        unknown += [
            f"{title}: {meas}.{n}" for n in names if n not in written[meas] and n not in tags
        ]
    assert unknown == []
    empty = []
    for title, q in all_queries(load_dashboard()):
        doc = influxd.query(substitute(q), "grafana")  # raises on any InfluxQL error
        if not any(r.get("series") for r in doc["results"]):
            empty.append(title)
    assert empty == []


def test_query_names_parser():
    meas, names = query_names(
        'SELECT mean("rate_hz") FROM "daq" WHERE "experiment" =~ /^$experiment$/ AND '
        '"channel" = \'\' AND $timeFilter GROUP BY time($__interval), "event_id"'
    )
    assert meas == "daq" and names == {"rate_hz", "experiment", "channel"}
    meas, names = query_names('SELECT "state", "run_number" FROM "runs" WHERE $timeFilter')
    assert meas == "runs" and names == {"state", "run_number"}


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
            if cat.find(family, tag) is not None:
                continue  # a condition on a declared field ("pedestal" = false)
            assert tag in cat.tag_keys(family), (where, family, tag)
        if "GROUP BY" in rest:
            for tag in re.findall(r'"([^"]+)"', rest.split("GROUP BY")[1]):
                assert tag in cat.tag_keys(family) | sink_tags, (where, family, tag)
        for tag in re.findall(r'WITH KEY = "([^"]+)"', q):
            assert tag in cat.tag_keys(family) | sink_tags, (where, tag)
    assert checked >= 20
