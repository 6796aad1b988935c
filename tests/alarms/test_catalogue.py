# ruff: noqa: F811 - the shipped_templates fixture imported from limestream is a parameter here
"""The metric catalogue: declared by the emitters, checked against what they
really emit, used to validate alarm rules, printed by ``metrics`` and kept
equal to docs/influx-schema.md."""

from __future__ import annotations

import json

import pytest
import yaml
from limestream import (  # noqa: F401 - shipped_templates is a fixture
    ROOT,
    analyse,
    health_body,
    shipped_templates,
    sink_metric,
    stream,
)

from cygno_online.analysis.catalogue import catalogue_of_chain
from cygno_online.cli import main
from cygno_online.commands.metrics import default_catalogue
from cygno_online.daemon.config import parse_config
from cygno_online.errors import ConfigErrors


@pytest.fixture(scope="module")
def lime_with_cluster_rows():
    def edit(data):
        for a in data["analyzers"]:
            if a["plugin"] == "camera":
                a["params"] = {"per_cluster_metrics": True, "pedestal": {"min_frames": 3}}

    # a 512x512 crop of the camera: the same banks and fields, a fast test
    tpl = analyse("lime.yaml", 4, edit, pedestal_frames=3, layout="crop:512")
    yield tpl
    tpl.chain.close()


def _problems(cat, metrics):
    out = []
    for m in metrics:
        out += cat.check_point(m.family, m.tags, m.fields)
    return sorted(set(out))


def test_every_emitted_point_is_declared(lime_with_cluster_rows, shipped_templates):
    """Simulated LIME events through every shipped analyzer: each point's
    family, tag keys, field names and types are in the catalogue."""
    tpl = lime_with_cluster_rows
    cat = catalogue_of_chain(tpl.chain)
    assert _problems(cat, tpl.all_metrics) == []
    families = {m.family for m in tpl.all_metrics}
    assert {"camera", "clusters", "pmt", "daq", "runs", "environment", "hv"} <= families
    rows = [m for m in tpl.all_metrics if m.family == "clusters" and "cluster" in m.tags]
    assert rows, "no per-cluster rows: the test does not cover them"
    cam = [m for m in tpl.all_metrics if m.family == "camera" and "raw_mean" in m.fields]
    assert all(m.fields.get("pedestal_source") == "store" for m in cam)
    assert all("pedestal_age_days" in m.fields and "ped_rms" in m.fields for m in cam)
    # CYGNO-04: several cameras, the same declarations
    c04 = shipped_templates("cygno04.yaml")
    assert _problems(catalogue_of_chain(c04.chain), c04.all_metrics) == []
    assert {m.tags["camera"] for m in c04.all_metrics if m.family == "camera"} == {"cam0", "cam1"}


def test_daemon_and_sink_health_points_are_declared(shipped_templates):
    from cygno_online.daemon.health import Health, health_metric

    tpl = shipped_templates("lime.yaml")
    cat = catalogue_of_chain(tpl.chain)
    names = [a.instance_name for a in tpl.chain.analyzers]
    real = Health().report()  # the real report of an idle daemon
    real["analyzer_ms"] = {n: 1.0 for n in names}
    real["drops"] = {"queue_full": 3, "sink_spool_full": 2}
    real["memory"] = {"shmem": 4096}
    real["source"] = {"reader_memory": {"anon": 1, "shmem": 2}}
    real["publisher"] = dict.fromkeys(
        ("dropped_queue", "dropped_send", "displays_skipped", "series_evicted", "loop_errors",
         "snapshot_rejected", "snapshot_dropped", "control_rejected", "control_dropped"),
        0,
    )  # fmt: skip
    points = [
        health_metric(real, 1),
        health_metric(health_body(10, 5.0, names), 1),
        sink_metric(1, 1),
    ]
    assert _problems(cat, points) == []
    assert "watchdog_failed" in points[1].fields  # issue 11's watchdog fields
    assert _problems(cat, list(stream(tpl, 0.5))) == []


def test_check_config_names_the_rule_and_the_closest_names():
    data = yaml.safe_load((ROOT / "config" / "lime.yaml").read_text())
    data["alarms"]["rules"] += [
        {"id": "p_old", "family": "environment", "field": "p0iin5", "above": 1},
        {"id": "typo", "family": "enviroment", "field": "x", "above": 1},
        {"id": "fld", "family": "camera", "field": "sensor_temprature", "above": 1},
        {"id": "tag", "family": "pmt", "tags": {"chanel": "1"}, "field": "baseline", "above": 1},
        {"id": "wrongtags", "family": "pmt", "tags": {"channel": "1"}, "field": "rate", "above": 1},
    ]
    with pytest.raises(ConfigErrors) as exc:
        parse_config(data, source="lime.yaml")
    text = "\n".join(str(e) for e in exc.value.errors)
    assert (
        "rule 'p_old': environment has no field 'p0iin5' (p0iin5 is emitted as 'lime_pressure')"
        in text
    )
    assert "rule 'typo': unknown family 'enviroment'; closest: environment" in text
    assert (
        "rule 'fld': camera has no field 'sensor_temprature'; closest: sensor_temperature" in text
    )
    assert "rule 'tag': pmt has no tag 'chanel'; closest: channel" in text
    assert "rule 'wrongtags': pmt.rate exists only on series with tags [['board']]" in text
    assert len(exc.value.errors) == 5


def test_shipped_configurations_pass_check_config(capsys):
    for name in ("lime.yaml", "cygno04.yaml", "demo.yaml"):
        assert main(["check-config", str(ROOT / "config" / name)]) == 0, capsys.readouterr()


def test_metrics_command_text_and_json(capsys):
    assert main(["metrics"]) == 0
    text = capsys.readouterr().out
    assert "environment{}" in text and "lime_pressure" in text and "[bar]" in text
    assert main(["metrics", str(ROOT / "config" / "demo.yaml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (pmt_ch,) = [s for s in doc["families"]["pmt"] if s["tags"] == ["board", "channel"]]
    baseline = next(f for f in pmt_ch["fields"] if f["name"] == "baseline")
    assert baseline == {"name": "baseline", "type": "float", "unit": "ADC",
                        "description": baseline["description"]}  # fmt: skip


def test_influx_schema_doc_carries_the_generated_catalogue():
    text = (ROOT / "docs" / "influx-schema.md").read_text()
    a = text.index("<!-- catalogue:begin")
    a = text.index("\n", a) + 1
    b = text.index("<!-- catalogue:end -->")
    assert text[a:b].strip() == default_catalogue().markdown().strip(), (
        "docs/influx-schema.md is out of date: regenerate the block with "
        "`cygno-online metrics --markdown`"
    )


def test_quality_points_are_declared():
    from cygno_online.analysis.catalogue import Catalogue
    from cygno_online.quality.monitor import RunQuality, quality_series

    results = [
        {"name": "fe55_peak", "status": "good", "reason": "ok", "value": 7000.0,
         "reference": 7100.0, "reference_run": 41523},
        {"name": "ped_rms", "status": "bad", "reason": "high", "value": None},
    ]  # fmt: skip
    # metrics() only reads the open run when no run is given
    points = RunQuality.metrics(None, results, 1, run=7)
    assert _problems(Catalogue([quality_series()]), points) == []
    assert {m.tags["check"] for m in points} == {"fe55_peak", "ped_rms", "verdict"}


def test_a_plugin_without_declarations_is_named():
    from cygno_online.analysis.catalogue import build_catalogue
    from cygno_online.analysis.plugin import Analyzer

    class Quiet(Analyzer):
        name = "quiet"

    cat = build_catalogue([Quiet()])
    ((key, reason),) = cat.problems("gem", "sum", {})
    assert key == "family" and "analyzer(s) quiet declare no metrics" in reason
