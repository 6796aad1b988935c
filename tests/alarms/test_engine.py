"""Alarm rules and the alarm state machine (explicit clock, no sleeps)."""

from __future__ import annotations

import json

import pytest

from cygno_online.alarms.engine import AlarmEngine
from cygno_online.alarms.rules import parse_rules
from cygno_online.analysis.outputs import Metric
from cygno_online.errors import ConfigErrors
from cygno_online.params import Params, raise_if_errors

S = 1_000_000_000


def rules(*entries):
    p = Params({"rules": list(entries)}, "alarms")
    out = parse_rules(p)
    p.check_unknown()
    raise_if_errors(p.errors)
    return out


def metric(value, *, t=0, family="environment", field="value", **tags):
    return Metric(family, t, 1, 0, {field: value}, dict(tags))


class Clock:
    def __init__(self):
        self.now = 1_000 * S

    def __call__(self):
        return self.now


def engine(rule_list, tmp_path=None, clock=None):
    seen = []
    eng = AlarmEngine(
        rule_list,
        state_path=(tmp_path / "alarms.json") if tmp_path else None,
        on_transition=seen.append,
        clock=clock or Clock(),
    )
    return eng, seen


def test_threshold_raises_and_clears():
    eng, seen = engine(rules({"id": "hot", "family": "environment", "above": 10, "latch": False}))
    eng.observe(metric(5))
    assert seen == []
    eng.observe(metric(11))
    assert [r.transition for r in seen] == ["raised"]
    assert seen[0].state == "active" and seen[0].value == 11
    eng.observe(metric(9))
    assert [r.transition for r in seen] == ["raised", "cleared"]
    assert eng.get("hot").state == "ok" and not eng.get("hot").latched


def test_band_and_below():
    eng, seen = engine(
        rules(
            {"id": "band", "family": "environment", "band": [1, 2]},
            {"id": "low", "family": "environment", "below": 0},
        )
    )
    eng.observe(metric(1.5))
    assert seen == []
    eng.observe(metric(2.5))
    assert [(r.id, r.transition) for r in seen] == [("band", "raised")]
    eng.observe(metric(-1))
    assert {(r.id, r.transition) for r in seen[1:]} == {("low", "raised")}


def test_delay_requires_condition_to_hold():
    clock = Clock()
    eng, seen = engine(
        rules({"id": "slow", "family": "environment", "above": 10, "delay_s": 30}), clock=clock
    )
    eng.observe(metric(11))
    assert eng.get("slow").state == "pending" and seen == []
    clock.now += 20 * S
    eng.observe(metric(5))  # dips back: the pending alarm is dropped silently
    assert eng.get("slow").state == "ok" and seen == []
    eng.observe(metric(11))
    clock.now += 29 * S
    eng.tick()
    assert seen == []
    clock.now += 2 * S
    eng.tick()
    assert [r.transition for r in seen] == ["raised"]


def test_hysteresis_prevents_flapping():
    eng, seen = engine(
        rules({"id": "h", "family": "environment", "above": 10, "hysteresis": 1, "latch": False})
    )
    eng.observe(metric(10.5))
    eng.observe(metric(9.5))  # still within the hysteresis margin: stays active
    assert eng.get("h").state == "active"
    eng.observe(metric(10.2))
    eng.observe(metric(8.9))
    assert [r.transition for r in seen] == ["raised", "cleared"]


def test_latch_until_acknowledged():
    eng, seen = engine(rules({"id": "l", "family": "environment", "above": 10}))
    eng.observe(metric(11))
    eng.observe(metric(1))
    rec = eng.get("l")
    assert rec.state == "ok" and rec.latched and rec.needs_attention
    acked = eng.acknowledge("l", "shifter")
    assert acked.acked_by == "shifter" and not acked.latched and not acked.needs_attention
    assert seen[-1].transition == "acknowledged"
    # raised again: the acknowledgement is reset
    eng.observe(metric(12))
    assert eng.get("l").needs_attention and not eng.get("l").acked
    with pytest.raises(KeyError):
        eng.acknowledge("nope", "x")


def test_ack_while_active_then_clear_is_not_latched():
    eng, _ = engine(rules({"id": "l", "family": "environment", "above": 10}))
    eng.observe(metric(11))
    eng.acknowledge("l", "a")
    assert eng.get("l").state == "active" and not eng.get("l").needs_attention
    eng.observe(metric(1))
    assert not eng.get("l").latched


def test_no_data_timeout_and_recovery():
    clock = Clock()
    eng, seen = engine(
        rules({"id": "quiet", "family": "gas", "no_data_s": 60, "latch": False}), clock=clock
    )
    clock.now += 59 * S
    eng.tick()
    assert seen == []
    clock.now += 2 * S
    eng.tick()
    assert [r.transition for r in seen] == ["raised"]
    assert "no data" in seen[0].message
    eng.observe(metric(1, family="gas"))
    eng.tick()
    assert [r.transition for r in seen] == ["raised", "cleared"]


def test_rate_of_change_per_minute():
    eng, seen = engine(
        rules({"id": "r", "family": "environment", "rate_above": 1.0, "latch": False})
    )
    eng.observe(metric(10.0, t=0))
    eng.observe(metric(10.5, t=60 * S))  # 0.5/min
    assert seen == []
    eng.observe(metric(12.0, t=120 * S))  # 1.5/min
    assert [r.transition for r in seen] == ["raised"]
    eng.observe(metric(12.1, t=180 * S))
    assert [r.transition for r in seen] == ["raised", "cleared"]


def test_only_when_running():
    eng, seen = engine(
        rules(
            {
                "id": "rate0",
                "family": "daq",
                "field": "rate_hz",
                "below": 0.01,
                "only_when_running": True,
                "latch": False,
            }
        )
    )
    eng.observe(metric(0.0, family="daq", field="rate_hz"))
    assert seen == []
    eng.set_running(True)
    eng.observe(metric(0.0, family="daq", field="rate_hz"))
    assert [r.transition for r in seen] == ["raised"]
    eng.set_running(False)
    assert [r.transition for r in seen] == ["raised", "cleared"]


def test_series_are_separate_instances_and_tags_filter():
    eng, seen = engine(rules({"id": "t", "family": "camera", "field": "temp", "above": -10}))
    eng.observe(metric(-5, family="camera", field="temp", camera="cam0"))
    eng.observe(metric(-18, family="camera", field="temp", camera="cam1"))
    assert [r.id for r in seen] == ["t{camera=cam0}"]
    eng2, seen2 = engine(
        rules(
            {
                "id": "t",
                "family": "camera",
                "field": "temp",
                "tags": {"camera": "cam1"},
                "above": -10,
            }
        )
    )
    eng2.observe(metric(-5, family="camera", field="temp", camera="cam0"))
    assert seen2 == []


def test_persistence_across_restart(tmp_path):
    clock = Clock()
    r = rules({"id": "p", "family": "environment", "above": 10})
    eng, _ = engine(r, tmp_path, clock)
    eng.observe(metric(11))
    eng.observe(metric(1))
    doc = json.loads((tmp_path / "alarms.json").read_text())
    assert doc["alarms"]["p"]["record"]["latched"] is True
    # restart: the latched alarm is still flagged, nobody has seen it
    eng2, _ = engine(r, tmp_path, clock)
    assert eng2.get("p").latched and eng2.get("p").needs_attention
    eng2.acknowledge("p", "night-shift")
    eng3, _ = engine(r, tmp_path, clock)
    rec = eng3.get("p")
    assert rec.acked and rec.acked_by == "night-shift" and not rec.needs_attention
    # an active alarm stays active after a restart
    eng3.observe(metric(20))
    eng4, _ = engine(r, tmp_path, clock)
    assert eng4.get("p").state == "active"


def test_corrupt_state_file_is_not_fatal(tmp_path):
    (tmp_path / "alarms.json").write_text("{not json")
    eng, _ = engine(rules({"id": "x", "family": "f", "above": 1}), tmp_path)
    assert eng.get("x").state == "ok"


def test_rule_validation_collects_errors_with_paths():
    p = Params(
        {
            "rules": [
                {"id": "a", "family": "gas", "above": "high"},
                {"id": "a", "family": "gas", "below": 1, "severity": "panic"},
                {"family": "gas", "band": [2, 1], "typo": 1},
                {"id": "nocond", "family": "gas"},
            ]
        },
        "alarms",
    )
    parse_rules(p)
    with pytest.raises(ConfigErrors) as ei:
        raise_if_errors(p.errors)
    paths = {e.path for e in ei.value.errors}
    assert "alarms.rules[0].above" in paths
    assert "alarms.rules[1].id" in paths  # duplicate
    assert "alarms.rules[1].severity" in paths
    assert "alarms.rules[2].id" in paths
    assert "alarms.rules[2].band" in paths
    assert "alarms.rules[2].typo" in paths
    assert "alarms.rules[3]" in paths


def test_reload_keeps_state_of_unchanged_rules():
    eng, _seen = engine(rules({"id": "k", "family": "environment", "above": 10}))
    eng.observe(metric(11))
    eng.set_rules(
        rules(
            {"id": "k", "family": "environment", "above": 20},
            {"id": "n", "family": "x", "above": 1},
        )
    )
    assert eng.get("k").state == "active"
    assert eng.get("n").state == "ok"
    eng.set_rules(rules({"id": "n", "family": "x", "above": 1}))
    with pytest.raises(KeyError):
        eng.get("k")
    # viewers are told, and their MonitorState forgets the record
    removed = [r for r in _seen if r.transition == "removed"]
    assert [r.id for r in removed] == ["k"]
    from cygno_online.publish.messages import Message
    from cygno_online.publish.state import MonitorState

    state = MonitorState()
    present = []
    for r in _seen:
        state.apply(Message("alarm", {k: getattr(r, k) for k in r.__slots__}))
        present.append("k" in state.alarms)
    assert present[0] and not present[-1]


def test_count_in_window_for_flags():
    eng, seen = engine(
        rules(
            {
                "id": "sparks",
                "family": "camera",
                "field": "spark",
                "above": 0.5,
                "window_s": 60,
                "count_above": 2,
                "latch": False,
            }
        )
    )
    flags = [True, False, True, False, False]
    for i, f in enumerate(flags):
        eng.observe(metric(f, family="camera", field="spark", t=i * 10 * S))
    assert seen == []  # 2 sparks in 60 s: not more than 2
    eng.observe(metric(True, family="camera", field="spark", t=50 * S))
    assert [r.transition for r in seen] == ["raised"]
    # 70 s later the old sparks left the window
    eng.observe(metric(False, family="camera", field="spark", t=120 * S))
    assert [r.transition for r in seen] == ["raised", "cleared"]
    with pytest.raises(ConfigErrors):
        rules({"id": "x", "family": "f", "above": 1, "window_s": 10}, {"id": "y", "family": "f"})


def test_shipped_lime_gas_rule_fires_on_the_slowcontrol_gas_flags():
    """The LIME config's gas alarm watches the field the slowcontrol analyzer
    really emits, whatever names the ODB gives the PLC channels."""
    from pathlib import Path

    import yaml
    from cygno_online.analyzers.slowcontrol.analyzer import SlowControlAnalyzer

    from cygno_online.analysis.plugin import AnalyzerEnv
    from cygno_online.decode.items import EventContext, Reading, SlowControl

    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "lime.yaml").read_text())
    p = Params(cfg["alarms"], "alarms")
    lime_rules = [r for r in parse_rules(p) if r.family == "gas"]
    assert lime_rules, "config/lime.yaml has no gas alarm rule"
    analyzer = SlowControlAnalyzer()
    analyzer.configure(Params({}), AnalyzerEnv())
    ctx = EventContext(run=1, serial=1, event_id=6, trigger_mask=0, time_ns=5 * S)
    readings = [
        Reading(f"a{i}_PT_Segnalazioni d", "measured", 0.0, "", 0.0, 298 + i) for i in range(8)
    ]
    readings[3] = Reading("a3_PT_Segnalazioni d", "measured", 1.0, "", 1.0, 301)
    outs = analyzer.process(SlowControl(ctx, "gas", "MSRD", readings), {})
    clock = Clock()
    raised = []
    eng = AlarmEngine(lime_rules, clock=clock, on_transition=raised.append)
    eng.set_running(True)
    for m in outs:
        if isinstance(m, Metric):
            eng.observe(m)
    for _ in range(120):  # past any configured delay
        clock.now += S
        eng.tick()
    assert any(r.transition == "raised" and r.severity == "critical" for r in raised)
