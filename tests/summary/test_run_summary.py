"""Run summary: assembly, quality flags, atomic JSON write, text."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cygno_online.analysis.summary import (
    DEFAULT_RULES,
    SCHEMA,
    QualityRule,
    SummaryConfig,
    build_summary,
    evaluate_rules,
    lookup,
    summary_to_text,
    write_summary,
)
from cygno_online.decode.items import RunInfo
from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.params import Params

T0 = 1_764_000_000 * 10**9
RUN = RunInfo(
    run=42,
    start_time_ns=T0,
    experiment="LIME",
    description="S003:DATA:Fe",
    exposure_s=0.3,
    source="run00042.mid.lz4",
)
COUNTERS = {
    "events_seen": 400,
    "events_processed": 400,
    "events_dropped": 0,
    "decode_errors": 0,
    "analyzer_errors": 0,
    "complete": True,
}


def pmt_section(drift=1.0, saturated=0, silent=0):
    ch = {
        "label": "pmt1",
        "triggers": 100,
        "baseline_mean_adc": 3850.0,
        "baseline_start_adc": 3850.0,
        "baseline_drift_last_adc": drift,
        "baseline_drift_max_adc": drift,
        "rms_mean_adc": 2.0,
        "amplitude_mean_adc": 120.0,
        "charge_mean_pc": 1.5,
        "npeaks_mean": 1.2,
        "tot_mean_ns": 30.0,
        "saturated_triggers": saturated,
        "silent_images": silent,
    }
    return {
        "triggers_total": 100,
        "images": 50,
        "boards": {
            "0": {
                "model": 1742,
                "images": 50,
                "triggers": 100,
                "multiplicity_mean": 2.0,
                "rate_mean_hz": 500.0,
                "channels": {"1": ch},
            }
        },
    }


def slow_section(temp=22.0, alarms=0):
    st = {"mean": temp, "min": temp - 1, "max": temp + 1, "last": temp, "n": 4, "unit": "degC"}
    return {
        "environment": {"gas_temperature": st},
        "camera": {"cam0": {"sensor_temperature": {**st, "mean": -18.0, "unit": "degC"}}},
        "hv": {
            "drift": {
                "measured": {
                    "mean": 4000.0,
                    "min": 3999,
                    "max": 4001,
                    "last": 4000,
                    "n": 3,
                    "unit": "V",
                }
            }
        },
        "gas_alarms": {
            "alarms_active": {"mean": 0.0, "min": 0, "max": alarms, "last": 0, "n": 3, "unit": ""}
        },
        "skipped_non_finite": 0,
    }


def daq_section(lost=0):
    return {
        "sampling": "all",
        "run_duration_s": 240.0,
        "events": {"1": {"seen": 400, "rate_hz": 1.66, "daq_rate_hz": 1.66, "camera": True}},
        "totals": {
            "seen": 400,
            "bytes": 4 * 10**9,
            "missing": lost,
            "sampled_out": 0,
            "daq_lost": lost,
            "monitor_dropped": 0,
            "decode_errors": 0,
        },
        "decode_errors_by_kind": {},
        "lag_s": None,
        "camera": {"frame_period_s": 0.6, "exposure_s": 0.3, "frame_overhead_s": 0.3},
    }


def camera_section(
    frames=400,
    sparks=2,
    by_class=None,
    fe55=(1850.0, 300.0),
    age=1.5,
    source="store",
    cams=("cam0",),
):
    """The camera analyzer's end_run layout (analyzers/camera)."""
    by_class = by_class or {"other": 1000, "fe55": 1200, "alpha": 150, "muon": 50}
    fit = (
        {"ok": True, "mean": fe55[0], "sigma": fe55[1], "resolution": fe55[1] / fe55[0]}
        if fe55
        else {"ok": False, "reason": "fewer than 50 entries"}
    )
    one = {
        "frames": frames,
        "image": {"raw_mean": 100.2, "raw_rms": 3.1, "ped_mean": 0.1, "ped_rms": 2.5},
        "clusters": {
            "total": sum(by_class.values()),
            "by_class": by_class,
            "rate_hz": {k: v / (frames * 0.3) for k, v in by_class.items()},
        },
        "sparks": {"count": sparks, "fraction": sparks / frames},
        "fe55": {"entries": 1200, "fit": fit},
        "pedestal": {"source": source, "age_days": age},
        "live_time_s": frames * 0.3,
        "boxes": [
            {
                "bounds": [0, 1, 0, 1],
                "raw_mean": 100.0,
                "raw_rms": 3.0,
                "ped_mean": 0.2,
                "ped_rms": 2.4,
            }
        ]
        * 9,
    }
    return {
        "pedestal_store": "/tmp/x",
        "pedestal_run": False,
        "cameras": {c: dict(one) for c in cams},
    }


def flags(doc):
    return sorted(f["flag"] for f in doc["quality_flags"])


def test_clean_run_has_no_flags_and_normalised_blocks():
    sections = {
        "daqhealth": daq_section(),
        "pmt": pmt_section(),
        "slowcontrol": slow_section(),
        "camera": camera_section(),
    }
    doc = build_summary(RUN, sections, counters=COUNTERS, stop_time_ns=T0 + 240 * 10**9)
    assert doc["schema"] == SCHEMA and doc["run"] == 42 and doc["duration_s"] == 240.0
    assert doc["start_time"] == "2025-11-24T16:00:00Z"
    assert doc["quality_flags"] == [] and doc["quality"] == "good"
    assert doc["counters"]["drop_fraction"] == 0.0
    assert doc["camera"]["spark_fraction"] == pytest.approx(0.005)
    assert doc["camera"]["cluster_rate_hz"] == pytest.approx(2400 / 120)
    assert doc["camera"]["clusters"] == 2400 and doc["camera"]["clusters_by_class"]["fe55"] == 1200
    assert doc["cameras"]["cam0"]["fe55_resolution"] == pytest.approx(300 / 1850)
    assert doc["cameras"]["cam0"]["image_mean"] == 0.1
    assert doc["cameras"]["cam0"]["boxes"][8] == {"mean": 0.2, "rms": 2.4}
    assert doc["cameras"]["cam0"]["cluster_rates_hz_by_class"]["fe55"] == pytest.approx(10.0)
    assert doc["camera"]["fe55_peak"] == 1850.0 and doc["camera"]["fe55_width"] == 300.0
    assert doc["pmt"]["0/1"]["baseline_adc"] == 3850.0
    assert doc["environment"]["gas_temperature"]["mean"] == 22.0
    assert doc["environment"]["cam0_sensor_temperature"]["mean"] == -18.0
    assert doc["hv"]["drift"]["measured_mean"] == 4000.0
    assert doc["daq"]["frame_period_s"] == 0.6 and doc["daq"]["trigger_rate_hz"] == 1.66
    assert doc["sections"]["camera"]["cameras"]["cam0"]["frames"] == 400
    json.dumps(doc, allow_nan=False)


def test_every_default_flag_can_fire():
    sections = {
        "daqhealth": daq_section(lost=5),
        "pmt": pmt_section(drift=35.0, saturated=20, silent=50),
        "slowcontrol": slow_section(temp=40.0, alarms=2),
        "camera": camera_section(
            frames=100, sparks=30, age=12.0, fe55=(1500.0, 250.0), cams=("cam0", "cam1")
        ),
    }
    counters = dict(
        COUNTERS, events_dropped=200, decode_errors=3, analyzer_errors=1, complete=False
    )
    cfg = SummaryConfig(references={"fe55_peak": 1850.0})
    doc = build_summary(RUN, sections, counters=counters, config=cfg)
    assert sorted(set(flags(doc))) == sorted(
        [
            "analyzer_errors",
            "daq_lost_events",
            "decode_errors",
            "env_out_of_band",
            "fe55_peak_shifted",
            "gas_alarm",
            "high_drop_fraction",
            "incomplete_run",
            "pedestal_too_old",
            "pmt_baseline_drift",
            "pmt_no_signal",
            "pmt_saturation",
            "spark_rate_high",
        ]
    )
    assert flags(doc).count("spark_rate_high") == 2  # one per camera
    reasons = {f["flag"]: f["reason"] for f in doc["quality_flags"]}
    assert reasons["pedestal_too_old"] == "cam1: pedestal maps are 12.0 days old (limit 10)"
    assert reasons["pmt_baseline_drift"] == "PMT 0/1 baseline drifted by 35.0 ADC (limit 20)"
    assert "33.3%" in reasons["high_drop_fraction"]
    assert reasons["env_out_of_band"] == "gas temperature 40.0 degC outside 15..35"
    assert doc["quality"] == "flagged"
    no = build_summary(RUN, {}, counters={"events_seen": 0, "events_dropped": 0})
    assert flags(no) == ["no_events"]
    assert no["camera"] == {} and no["pmt"] == {} and no["duration_s"] is None


def test_pedestal_runs_skip_signal_rules():
    run = RunInfo(run=43, start_time_ns=T0, pedestal=True)
    sections = {
        "pmt": pmt_section(silent=50),
        "camera": camera_section(frames=100, sparks=0, age=50.0, source="none"),
    }
    doc = build_summary(run, sections, counters=COUNTERS)
    assert flags(doc) == []


def test_sections_found_by_shape_and_broken_sections_tolerated():
    sections = {"pmt-fast": pmt_section(drift=30.0), "camera": {"error": "ValueError: x"}}
    doc = build_summary(RUN, sections, counters=COUNTERS)
    assert flags(doc) == ["pmt_baseline_drift"]
    assert doc["camera"] == {} and doc["sections"]["camera"] == {"error": "ValueError: x"}


def test_rules_from_config_and_wildcards():
    p = Params(
        {
            "default_rules": False,
            "references": {"fe55_peak": 2000},
            "quality_rules": [
                {
                    "flag": "hv_low",
                    "path": "hv.*.measured_mean",
                    "below": 4500,
                    "severity": "error",
                    "reason": "{where}: {value:.0f} V",
                },
            ],
        },
        "summary",
    )
    cfg = SummaryConfig.from_params(p)
    p.finish()
    assert len(cfg.rules) == 1 and cfg.references == {"fe55_peak": 2000.0}
    doc = build_summary(RUN, {"slowcontrol": slow_section()}, counters=COUNTERS, config=cfg)
    assert doc["quality_flags"] == [
        {
            "flag": "hv_low",
            "reason": "drift: 4000 V",
            "severity": "error",
            "path": "hv.*.measured_mean [drift]",
            "value": 4000.0,
            "limit": 4500,
        },
    ]
    assert doc["references"] == {"fe55_peak": 2000.0}
    bad = Params(
        {
            "quality_rules": [{"flag": "x", "path": "a.b"}, {"path": 3, "above": "hi"}],
            "references": {"a": "b"},
            "typo": 1,
        },
        "summary",
    )
    SummaryConfig.from_params(bad)
    with pytest.raises(ConfigErrors) as err:
        bad.finish()
    text = str(err.value)
    for key in (
        "quality_rules[0]",
        "quality_rules[1].flag",
        "quality_rules[1].above",
        "references.a",
        "summary.typo",
    ):
        assert key in text
    with pytest.raises(ConfigError):
        one = Params(
            {"quality_rules": [{"flag": "x", "path": "p", "severity": "panic", "above": 1}]},
            "summary",
        )
        SummaryConfig.from_params(one)
        one.finish()


def test_lookup_and_relative_rule():
    doc = {"a": {"x1": {"v": 1}, "x2": {"v": 2}, "y": {"v": 3}}, "ref": 2.0}
    assert lookup(doc, "a.x*.v") == [("x1", 1), ("x2", 2)]
    assert lookup(doc, "a.*.v") == [("x1", 1), ("x2", 2), ("y", 3)]
    assert lookup(doc, "a.z.v") == []
    rule = QualityRule("shift", "a.*.v", relative_to="ref", above=0.4)
    out = evaluate_rules(doc, [rule])
    assert [(f["path"], f["value"]) for f in out] == [("a.*.v [x1]", 0.5), ("a.*.v [y]", 0.5)]
    assert evaluate_rules(doc, [QualityRule("s", "a.*.v", relative_to="nope", above=0)]) == []
    assert all(r.flag for r in DEFAULT_RULES)


def test_write_summary_atomic_and_json_clean(tmp_path):
    sections = {
        "pmt": pmt_section(),
        "extra": {"arr": np.arange(3), "nan": float("nan"), "np": np.float32(1.5), "tuple": (1, 2)},
    }
    doc = build_summary(RUN, sections, counters=COUNTERS)
    out = tmp_path / "summaries" / "deep"
    path = write_summary(doc, out)
    assert path == out / "run00042-summary.json"
    loaded = json.loads(path.read_text())
    assert loaded["sections"]["extra"] == {
        "arr": [0, 1, 2],
        "nan": None,
        "np": 1.5,
        "tuple": [1, 2],
    }
    assert loaded["run"] == 42
    assert sorted(os.listdir(out)) == ["run00042-summary.json"]  # no temp file left
    doc["description"] = "second"
    write_summary(doc, out)
    assert json.loads(path.read_text())["description"] == "second"


def test_write_summary_failure_leaves_no_temp(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_summary({"run": 1}, tmp_path)
    assert os.listdir(tmp_path) == []


def test_text_rendering():
    sections = {
        "daqhealth": daq_section(lost=2),
        "pmt": pmt_section(),
        "slowcontrol": slow_section(),
        "camera": camera_section(frames=10, sparks=0, by_class={"fe55": 3, "alpha": 1}),
    }
    doc = build_summary(RUN, sections, counters=COUNTERS, stop_time_ns=T0 + 10**11)
    text = summary_to_text(doc)
    assert text.startswith("Run 42 (LIME, data) [complete]  S003:DATA:Fe\n")
    for part in (
        "sampling all",
        "board 0 ch1 pmt1  baseline 3850.0 ADC",
        "gas_temperature",
        "clusters by class: fe55 3, alpha 1",
        "[warning] daq_lost_events",
        "drift",
        "quality: FLAGGED (1)",
    ):
        assert part in text, part
    assert summary_to_text(build_summary(RUN, {}, counters={"events_seen": 1})).endswith(
        "quality: good\n"
    )


def test_no_pedestal_and_flat_camera_sections():
    doc = build_summary(RUN, {"camera": camera_section(source="none", age=None)},
                        counters=COUNTERS)  # fmt: skip
    assert flags(doc) == ["no_pedestal"]
    assert doc["quality_flags"][0]["reason"] == "cam0: no pedestal maps, clustering was off"
    # an analyzer with a flat section (one camera, other key names) still works
    flat = {"images": 50, "sparks": 5, "clusters_total": 10, "fe55_peak": 1000.0}
    doc = build_summary(RUN, {"camera": flat}, counters=COUNTERS,
                        config=SummaryConfig(references={"fe55_peak": 2000.0}))  # fmt: skip
    assert doc["camera"]["spark_fraction"] == 0.1 and doc["camera"]["clusters"] == 10
    assert sorted(flags(doc)) == ["fe55_peak_shifted", "spark_rate_high"]
