# ruff: noqa: F811 - the shipped_templates fixture imported from limestream is a parameter here
"""Every alarm rule shipped in config/lime.yaml, config/cygno04.yaml and
config/demo.yaml fires on its condition, injected into simulated data, and
the whole rule set stays silent over 15 minutes of nominal simulated data at
the real rate (fake clock: the stream's own time)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml
from limestream import ROOT, Replay, S, shipped_templates, stream  # noqa: F401 - fixture

from cygno_online.analysis.outputs import Metric

CONFIGS = ("lime.yaml", "cygno04.yaml", "demo.yaml")
NOMINAL_MINUTES = 15
#: injections start this long after the run start
T_FAULT = 60 * S


def shipped_rule_ids(name: str) -> list[str]:
    data = yaml.safe_load((ROOT / "config" / name).read_text())
    return [r["id"] for r in data["alarms"]["rules"]]


CASES = [(name, rid) for name in CONFIGS for rid in shipped_rule_ids(name)]


@pytest.mark.parametrize("name", CONFIGS)
def test_rules_are_silent_on_15_minutes_of_nominal_data(name, shipped_templates):
    tpl = shipped_templates(name)
    replay = Replay(tpl.cfg.alarm_rules, tpl.run.start_time_ns)
    n = 0

    def counted():
        nonlocal n
        for m in nominal(stream(tpl, NOMINAL_MINUTES)):
            n += 1
            yield m

    replay.feed(counted())
    assert replay.t - tpl.run.start_time_ns >= NOMINAL_MINUTES * 60 * S - 5 * S
    assert n > 20_000  # ~1500 triggers with their PMT channels, slow control, health
    assert replay.raised() == [], [(r.id, r.message) for r in replay.raised()]
    assert not [r for r in replay.engine.records() if r.pending or r.state != "normal"]
    # the rules saw their data: every value rule has an instance per series
    seen = {r.rule for r in replay.engine.records()}
    for rule in tpl.cfg.alarm_rules:
        assert rule.id in seen, f"{name}: rule {rule.id} never saw a point"


def nominal(metrics):
    """What the simulated stream lacks, at nominal values: the gas system's
    point every minute (the simulator has no GasSystem event, id 6: no PLC
    alarm flag set) and the age of a stored pedestal map (the camera
    analyzer reports it only with stored maps; 2.4 days old)."""
    for m in metrics:
        if m.family == "camera" and "raw_mean" in m.fields:
            m.fields["pedestal_age_days"] = 2.4
        yield m
        if m.family == "environment":
            yield Metric("gas", m.time_ns, m.run, m.serial, {"alarms_active": 0}, {})


# -- injections: (start condition) -> metric rewriter ------------------------------------
def _set(family: str, field: str, value, **tags) -> Callable[[Metric, int], list[Metric]]:
    def inject(m: Metric, t: int) -> list[Metric]:
        if (
            t >= T_FAULT
            and m.family == family
            and field in m.fields
            and all(m.tags.get(k) == v for k, v in tags.items())
        ):
            m.fields[field] = value(m) if callable(value) else value
        return [m]

    return inject


def _drop(pred: Callable[[Metric], bool]) -> Callable[[Metric, int], list[Metric]]:
    return lambda m, t: [] if t >= T_FAULT and pred(m) else [m]


def _growing(family: str, field: str, per_point: float, **tags):
    state = {"n": 0}

    def value(m: Metric) -> float:
        state["n"] += 1
        return m.fields[field] + per_point * state["n"]

    return _set(family, field, value, **tags)


INJECT: dict[str, Callable[[Metric, int], list[Metric]]] = {
    "gas_alarm": _set("gas", "alarms_active", 1),
    "lime_pressure": _set("environment", "lime_pressure", 0.95),
    "gas_temperature": _set("environment", "gas_temperature", 33.0),
    "slow_control_silent": _drop(lambda m: m.family == "environment"),
    "camera_temperature": _set("camera", "sensor_temperature", -12.0),
    "spark_rate": _set("camera", "spark", True),
    "pedestal_too_old": _set("camera", "pedestal_age_days", 12.5),
    "pmt_baseline_fast": _set("pmt", "baseline", 3600.0, board="0", channel="2"),
    "pmt_baseline_slow": _set("pmt", "baseline", 2400.0, board="1", channel="3"),
    "no_events_while_running": _drop(lambda m: m.family == "daq" and "event_id" in m.tags),
    "trigger_rate_low": _set("daq", "rate_hz", 0.01, event_id="1"),
    "monitor_dropping": _growing("monitor", "events_dropped", 20),
    "daemon_component_stalled": _set("monitor", "watchdog_failed", 1),
    "spool_dropping": _growing("monitor", "dropped", 500, component="influx"),
    "spool_backlog_old": _set("monitor", "oldest_age_s", lambda m: 700.0, component="influx"),
    "quarantine_growing": _growing("monitor", "quarantined", 3, component="influx"),
    "sink_not_writing": _set("monitor", "state", "retrying", component="influx"),
}


#: the instance that must be raised, when the rule has one per series
INSTANCE = {
    "pmt_baseline_fast": {"board": "0", "channel": "2"},
    "pmt_baseline_slow": {"board": "1", "channel": "3"},
    "camera_temperature": {"camera": "cam0"},
}


def test_every_shipped_rule_has_an_injection():
    missing = sorted({rid for _, rid in CASES} - set(INJECT))
    assert not missing, f"shipped rules without a firing test: {missing}"


@pytest.mark.parametrize(("name", "rule_id"), CASES)
def test_shipped_rule_fires_on_its_condition(name, rule_id, shipped_templates):
    tpl = shipped_templates(name)
    rules = [r for r in tpl.cfg.alarm_rules if r.id == rule_id]
    replay = Replay(rules, tpl.run.start_time_ns)
    inject = INJECT[rule_id]
    t0 = tpl.run.start_time_ns

    def faulty():
        for m in nominal(stream(tpl, NOMINAL_MINUTES)):
            yield from inject(m, m.time_ns - t0)

    replay.feed(faulty(), until=lambda: bool(replay.raised(rule_id)))
    raised = replay.raised(rule_id)
    assert raised, f"{name}: {rule_id} never fired"
    rec = raised[0]
    rule = rules[0]
    # never before the fault, and not before its delay
    assert replay.t - t0 >= T_FAULT + rule.delay_s * S
    assert rec.message and rec.guidance and rec.contact
    assert rec.severity == rule.severity
    for k, v in INSTANCE.get(rule_id, {}).items():
        assert rec.tags.get(k) == v, rec.tags
    # one instance per series: only the faulty one is raised
    assert len({r.id for r in replay.raised()}) == 1
