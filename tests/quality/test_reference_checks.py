"""Reference checks (data-quality monitoring) on small simulated runs.

Proof of the shipped default checks (cygno_online/quality/default.yaml):
nominal runs stay good against the latest good run from the registry; a
shifted 55Fe gain, a noisy camera quadrant and a dead PMT channel each turn
the verdict bad with the right reason, and only the checks of that fault fire.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from simruns import analyse, simulator

from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.params import Params
from cygno_online.quality.book import HistogramBook, HistogramSpec
from cygno_online.quality.checks import CheckSpec, evaluate
from cygno_online.quality.monitor import QualityConfig, RunQuality
from cygno_online.quality.stats import chi2_test, gammaincc, ks_test
from cygno_online.sinks.registry import RunRegistry


def failing(doc: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"] if c["status"] in ("warning", "bad")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    reg = RunRegistry(f"sqlite://{tmp_path_factory.mktemp('dqm')}/runs.sqlite")
    quality = RunQuality(QualityConfig.default(), reg, record=True)
    out = {"registry": reg}
    for run, fault in ((1, None), (2, None), (3, "gain"), (4, "noisy_quadrant"),
                       (5, "dead_pmt"), (6, None)):  # fmt: skip
        out[fault or f"nominal{run}"] = analyse(simulator(run, fault), quality)
    yield out
    reg.close()


def test_first_run_has_no_reference_and_is_good(runs):
    doc = runs["nominal1"]
    why = (failing(doc), doc.get("quality_flags"))
    assert doc["reference_run"] is None and doc["verdict"] == "good", why
    ks = next(c for c in doc["checks"] if c["name"] == "fe55_shape")
    assert ks["status"] == "unknown" and "no good DATA:Fe run" in ks["reason"], ks


def test_nominal_runs_stay_good_against_the_latest_good_run(runs):
    for key, ref in (("nominal2", 1), ("nominal6", 2)):
        doc = runs[key]
        assert doc["reference_run"] == ref
        assert failing(doc) == {}, failing(doc)
        assert doc["verdict"] == "good"
        statuses = {c["name"]: c["status"] for c in doc["checks"]}
        for name in ("fe55_shape", "fe55_peak", "image_rms", "box0_rms", "pmt1_amplitude_shape"):
            assert statuses[name] == "good", name


def test_shifted_fe55_gain_is_bad_with_the_reason(runs):
    doc = runs["gain"]
    bad = failing(doc)
    assert doc["verdict"] == "bad"
    assert bad["fe55_peak"] == "bad" and bad["fe55_shape"] == "bad"
    assert not any(k.startswith(("pmt", "box", "image")) for k in bad), bad
    peak = next(c for c in doc["checks"] if c["name"] == "fe55_peak")
    assert "55Fe peak" in peak["reason"] and "in run 2" in peak["reason"]
    assert peak["value"] / peak["reference"] == pytest.approx(1.25, abs=0.1)
    # the run registry keeps the verdict and the reasons
    row = runs["registry"].get(3)
    assert row["verdict"] == "bad" and "fe55_peak" in row["flags"] and "55Fe peak" in row["reasons"]


def test_noisy_camera_quadrant_is_bad_in_the_quadrant_boxes(runs):
    doc = runs["noisy_quadrant"]
    bad = failing(doc)
    assert doc["verdict"] == "bad"
    assert bad["image_rms"] == "bad"
    # boxes 0, 1, 3 lie in the noisy (top-left) quadrant
    assert all(bad.get(f"box{k}_rms") == "bad" for k in (0, 1, 3)), bad
    assert not {"box8_rms", "box5_rms", "box7_rms"} & set(bad), bad
    assert "fe55_peak" not in bad and not any(k.startswith("pmt") for k in bad)
    box = next(c for c in doc["checks"] if c["name"] == "box0_rms")
    assert "box 0 pedestal RMS" in box["reason"] and "bad above 50%" in box["reason"]


def test_dead_pmt_channel_is_bad_for_that_channel_only(runs):
    doc = runs["dead_pmt"]
    bad = failing(doc)
    assert doc["verdict"] == "bad"
    assert bad["pmt1_amplitude_shape"] == "bad"
    assert "pmt1_amplitude" in bad
    assert not any(k.startswith(("pmt2", "pmt3", "pmt4", "fe55", "box", "image")) for k in bad)


def test_checks_go_to_the_summary_registry_and_metrics(runs):
    doc = runs["gain"]
    assert set(doc["histograms"]) >= {"fe55_spectrum", "image_rms", "pmt1_amplitude"}
    row = runs["registry"].get(3)
    assert {c["name"] for c in row["checks"]} == {c["name"] for c in doc["checks"]}
    assert (
        row["histograms"]["fe55_spectrum"]["counts"] == doc["histograms"]["fe55_spectrum"]["counts"]
    )
    q = RunQuality(QualityConfig.default())
    metrics = q.metrics(doc["checks"], 123)
    verdict = next(m for m in metrics if m.tags == {"check": "verdict"})
    assert verdict.family == "quality" and verdict.fields["status"] == "bad"
    assert verdict.fields["level"] == 2.0 and "55Fe peak" in verdict.fields["reason"]
    peak = next(m for m in metrics if m.tags == {"check": "fe55_peak"})
    assert peak.fields["reference_run"] == 2.0 and peak.fields["value"] > peak.fields["reference"]


# -- plausibility on the real file ------------------------------------------------------------
def test_real_file_implausible_humidity_and_temperature_flag_the_run(shared_data, tmp_path, capsys):
    """run00010 has humidity -4.1 % and an atmospheric temperature of 82 C."""
    import json

    from cygno_online.cli import main

    url = f"sqlite://{tmp_path}/runs.sqlite"
    path = shared_data / "midas" / "run00010.mid.lz4"
    assert main(["summary", str(path), "--registry", url, "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["summaries"]
    bad = {c["name"]: c for c in doc["checks"] if c["status"] == "bad"}
    assert "below the physical limit 0 %" in bad["humidity_physical"]["reason"]
    assert "above the physical limit 45 degC" in bad["atmospheric_temperature_physical"]["reason"]
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert statuses["gas_temperature_physical"] == "good"
    assert statuses["lime_pressure_physical"] == "good"
    assert doc["verdict"] == "bad"
    with RunRegistry(url) as reg:
        row = reg.get(10)
    assert row["verdict"] == "bad" and "humidity" in row["reasons"]


def test_negative_pressure_is_implausible():
    book = HistogramBook([HistogramSpec("p", family="environment", field="lime_pressure",
                                        bins=(0.0, 2.0, 20))])  # fmt: skip
    from cygno_online.analysis.outputs import Metric

    book.observe([Metric("environment", 1, 1, 0, {"lime_pressure": v}) for v in (0.9, -0.2)])
    spec = CheckSpec("p_phys", "range", histogram="p", min=0.0, unit="bar", label="LIME pressure")
    r = evaluate(spec, book, None, None)
    assert r["status"] == "bad" and r["reason"] == (
        "LIME pressure: reading -0.2 bar below the physical limit 0 bar"
    )


# -- live checks, reference modes, configuration ---------------------------------------------
def test_live_checks_every_period_with_a_fake_clock():
    from cygno_online.decode.items import RunInfo

    now = [1000.0]
    cfg = QualityConfig.default()
    cfg.live_every_s = 300.0
    q = RunQuality(cfg, None, clock=lambda: now[0])
    q.begin_run(RunInfo(run=5, start_time_ns=0, description="S003:DATA:Fe"))
    assert q.live(1) == []
    now[0] += 299.0
    assert q.live(1) == []
    now[0] += 1.0
    got = q.live(7)
    assert got and all(m.family == "quality" and m.run == 5 and m.time_ns == 7 for m in got)
    assert q.live(8) == []  # next one only after another period


def test_fixed_and_per_type_reference_runs(runs):
    from cygno_online.decode.items import RunInfo

    reg = runs["registry"]
    run = RunInfo(run=50, start_time_ns=0, description="S003:DATA:Fe", exposure_s=0.3)
    for section, expected in (
        ({"reference": {"mode": "run", "run": 3}}, 3),
        ({"reference": {"mode": "by_type", "runs": {"DATA:Fe": 4}}}, 4),
        ({"reference": {"mode": "auto"}}, 6),
        ({"reference": {"mode": "none"}}, None),
    ):
        p = Params(section, "quality")
        q = RunQuality(QualityConfig.from_params(p), reg)
        p.finish()
        q.begin_run(run)
        assert q.reference_run == expected, section
        if expected is not None:
            assert "fe55_spectrum" in q.reference


@pytest.mark.parametrize(
    ("section", "what"),
    [
        ({"histograms": [{"name": "h", "metric": "camera"}]}, "FAMILY.FIELD"),
        ({"histograms": [{"name": "h", "metric": "camera.x"}]}, "bins"),
        ({"histograms": [], "checks": [{"name": "c", "test": "ks", "histogram": "nope",
                                        "bad": 0.1}]}, "names no configured histogram"),
        ({"histograms": [{"name": "h", "display": "x"}],
          "checks": [{"name": "c", "test": "band", "value": "h.average", "bad": 0.1}]}, "HIST.STAT"),
        ({"histograms": [], "checks": [{"name": "c", "test": "limits",
                                        "value": "summary:daq.rate"}]}, "limits needs"),
        ({"reference": {"mode": "run"}}, "is required with mode: run"),
    ],
)  # fmt: skip
def test_configuration_errors_name_the_key(section, what):
    p = Params(section, "quality")
    QualityConfig.from_params(p)
    with pytest.raises((ConfigError, ConfigErrors)) as err:
        p.finish()
    assert what in str(err.value) and "quality." in str(err.value)


# -- the statistics against scipy ----------------------------------------------------------------
def test_tests_agree_with_scipy():
    sp = pytest.importorskip("scipy.special")
    stats = pytest.importorskip("scipy.stats")
    for a, x in ((0.5, 0.1), (3.5, 2.0), (10.0, 25.0), (50.0, 40.0)):
        assert gammaincc(a, x) == pytest.approx(sp.gammaincc(a, x), rel=1e-9)
    rng = np.random.default_rng(1)
    edges = np.linspace(-4, 4, 41)
    a = np.histogram(rng.normal(0, 1, 2000), edges)[0].astype(float)
    b = np.histogram(rng.normal(0, 1, 1500), edges)[0].astype(float)
    c = np.histogram(rng.normal(0.5, 1, 1500), edges)[0].astype(float)
    chi2, ndf, p = chi2_test(a, b)
    n1, n2 = a.sum(), b.sum()
    used = (a + b) > 0
    ref = ((n2 * a[used] - n1 * b[used]) ** 2 / (a[used] + b[used])).sum() / (n1 * n2)
    assert chi2 == pytest.approx(ref) and p == pytest.approx(stats.chi2.sf(chi2, ndf))
    assert p > 0.01 and chi2_test(a, c)[2] < 1e-6
    d, p_ks = ks_test(a, b)
    assert p_ks > 0.01 and ks_test(a, c)[1] < 1e-6
    ne = np.sqrt(n1 * n2 / (n1 + n2))
    assert p_ks == pytest.approx(stats.kstwobign.sf((ne + 0.12 + 0.11 / ne) * d))


def test_the_documented_alarm_rule_fires_on_a_bad_verdict_only(runs):
    """README: an alarm rule on the quality family (the alarm engine's format)."""
    from cygno_online.alarms.engine import AlarmEngine
    from cygno_online.alarms.rules import parse_rules
    from cygno_online.params import raise_if_errors

    p = Params({"rules": [{"id": "run_quality_bad", "family": "quality", "field": "level",
                           "tags": {"check": "verdict"}, "above": 1.5,
                           "severity": "warning"}]}, "alarms")  # fmt: skip
    rules = parse_rules(p)
    raise_if_errors(p.errors)
    # check-config accepts it: the quality family is in the metric catalogue
    from cygno_online.alarms.rules import check_rules
    from cygno_online.analysis.catalogue import build_catalogue

    check_rules(rules, build_catalogue([]), p)
    raise_if_errors(p.errors)
    raised = []
    eng = AlarmEngine(rules, clock=lambda: 10**18, on_transition=raised.append)
    eng.set_running(True)
    q = RunQuality(QualityConfig.default())
    for m in q.metrics(runs["nominal2"]["checks"], 1):
        eng.observe(m)
    assert raised == []
    for m in q.metrics(runs["gain"]["checks"], 2):
        eng.observe(m)
    assert [r.transition for r in raised] == ["raised"]


def test_quality_and_run_summary_points_match_the_catalogue(runs):
    from cygno_online.analysis.catalogue import build_catalogue
    from cygno_online.sinks.registry import run_summary_metric

    cat = build_catalogue([])
    metrics = RunQuality(QualityConfig.default()).metrics(runs["gain"]["checks"], 1, 3)
    metrics.append(run_summary_metric(runs["gain"]))
    for m in metrics:
        assert cat.check_point(m.family, m.tags, m.fields) == [], (m.family, m.tags)


def test_every_default_histogram_is_filled_by_the_shipped_chain(runs):
    """The shipped checks watch data the shipped analyzers emit: every default
    histogram of camera 0, PMT board 0 and the image gets entries on a
    nominal simulated run (the cluster-size check once needed per-cluster
    rows that lime.yaml does not write, and so could only say 'unknown')."""
    doc = runs["nominal2"]
    empty = sorted(name for name, h in doc["histograms"].items() if sum(h["counts"]) == 0)
    assert "cluster_size" in doc["histograms"] and "cluster_size" not in empty
    assert empty == [], empty
