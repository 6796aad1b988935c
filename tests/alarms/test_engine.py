"""The alarm engine with a fake clock: every state transition, delay, count,
increase, hysteresis, shelving, disabling, rate limits, instances and
persistence."""

from __future__ import annotations

import pytest

from cygno_online.alarms.engine import AlarmEngine, alarm_metric
from cygno_online.alarms.rules import parse_rules
from cygno_online.alarms.summary import summarize
from cygno_online.analysis.outputs import Metric
from cygno_online.errors import ConfigError
from cygno_online.params import Params, raise_if_errors
from cygno_online.publish.messages import Message
from cygno_online.publish.state import MonitorState

S = 1_000_000_000


def rules(*entries):
    p = Params({"rules": list(entries)}, "alarms")
    out = parse_rules(p)
    raise_if_errors(p.errors)
    return out


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000 * S

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> int:
        self.t += int(seconds * S)
        return self.t


def engine(rule_list, **kw):
    clock = kw.pop("clock", None) or Clock()
    seen = []
    eng = AlarmEngine(rule_list, on_transition=seen.append, clock=clock, **kw)
    return eng, seen, clock


def feed(eng, clock, family, fields, tags=None, dt=1.0):
    clock.advance(dt)
    eng.observe(Metric(family, clock.t, 1, 0, dict(fields), dict(tags or {})))
    eng.tick()


HOT = {"id": "hot", "family": "environment", "field": "t", "above": 10}


def test_value_rule_needs_a_field():
    with pytest.raises(ConfigError, match="field: is required"):
        rules({"id": "x", "family": "environment", "above": 1})


def test_no_data_cannot_mix_with_a_value_condition():
    with pytest.raises(ConfigError, match="no_data_s"):
        rules({"id": "x", "family": "daq", "field": "rate_hz", "below": 1, "no_data_s": 5})


def test_raise_ack_clear_normal():
    eng, seen, clock = engine(rules(HOT))
    assert eng.records() == []  # value rules: no instance before a series exists
    feed(eng, clock, "environment", {"t": 5})
    assert eng.get("hot").state == "normal"
    feed(eng, clock, "environment", {"t": 11})
    rec = eng.get("hot")
    assert rec.state == "active_unack" and rec.active and rec.value == 11
    assert [r.transition for r in seen] == ["raised"]
    acked = eng.acknowledge("hot", "alice")
    assert acked.state == "active_ack" and acked.acked_by == "alice" and acked.active
    # acknowledged but active: still counted, and named by the verdict
    s = summarize(eng.records())
    assert s.counts["warning"] == 1 and s.acked["warning"] == 1
    assert s.status_text() == "1 warning (acked)"
    assert "active, acked" in s.verdict()
    feed(eng, clock, "environment", {"t": 9})
    assert eng.get("hot").state == "normal"
    assert [r.transition for r in seen] == ["raised", "acknowledged", "cleared"]
    assert summarize(eng.records()).total == 0


def test_latched_until_acknowledged():
    eng, _, clock = engine(rules(HOT))
    feed(eng, clock, "environment", {"t": 11})
    feed(eng, clock, "environment", {"t": 1})
    rec = eng.get("hot")
    assert rec.state == "cleared_unack" and rec.latched and not rec.active
    assert summarize(eng.records()).counts["warning"] == 1
    # raised again from cleared_unack
    feed(eng, clock, "environment", {"t": 12})
    assert eng.get("hot").state == "active_unack"
    feed(eng, clock, "environment", {"t": 1})
    assert eng.acknowledge("hot", "bob").state == "normal"


def test_without_latch_clearing_returns_to_normal():
    eng, _, clock = engine(rules({**HOT, "latch": False}))
    feed(eng, clock, "environment", {"t": 11})
    feed(eng, clock, "environment", {"t": 1})
    assert eng.get("hot").state == "normal"


def test_delay_pending_then_raised_by_tick():
    eng, seen, clock = engine(rules({**HOT, "delay_s": 30}))
    feed(eng, clock, "environment", {"t": 11})
    assert eng.get("hot").state == "normal" and eng.get("hot").pending
    clock.advance(20)
    eng.tick()
    assert eng.get("hot").state == "normal"
    clock.advance(10)
    eng.tick()  # no new point needed: the condition held for 30 s
    assert eng.get("hot").state == "active_unack"
    assert len(seen) == 1


def test_delay_resets_when_the_condition_breaks():
    eng, seen, clock = engine(rules({**HOT, "delay_s": 30}))
    for _ in range(5):
        feed(eng, clock, "environment", {"t": 11}, dt=10)
        feed(eng, clock, "environment", {"t": 5}, dt=10)
    assert eng.get("hot").state == "normal" and seen == []


def test_clear_delay():
    eng, _, clock = engine(rules({**HOT, "clear_delay_s": 20, "latch": False}))
    feed(eng, clock, "environment", {"t": 11})
    feed(eng, clock, "environment", {"t": 5}, dt=5)
    assert eng.get("hot").state == "active_unack"
    clock.advance(20)
    eng.tick()
    assert eng.get("hot").state == "normal"


def test_hysteresis_deadband():
    eng, seen, clock = engine(
        rules(
            {
                "id": "b",
                "family": "environment",
                "field": "p",
                "band": [0.88, 0.94],
                "hysteresis": 0.01,
                "latch": False,
            }
        )
    )
    feed(eng, clock, "environment", {"p": 0.95})
    assert eng.get("b").state == "active_unack"
    # back inside the band, but not by the margin: still active (no flapping)
    for v in (0.939, 0.941, 0.935, 0.942):
        feed(eng, clock, "environment", {"p": v})
        assert eng.get("b").state == "active_unack", v
    feed(eng, clock, "environment", {"p": 0.929})
    assert eng.get("b").state == "normal"
    # raising needs the real limit again
    feed(eng, clock, "environment", {"p": 0.9395})
    assert eng.get("b").state == "normal"
    assert [r.transition for r in seen] == ["raised", "cleared"]


def test_count_within_window():
    eng, _, clock = engine(
        rules(
            {
                "id": "sp",
                "family": "camera",
                "field": "spark",
                "above": 0.5,
                "window_s": 300,
                "count_above": 2,
            }
        )
    )
    for spark in (True, False, True, False):
        feed(eng, clock, "camera", {"spark": spark}, {"camera": "cam0"}, dt=10)
    assert eng.get("sp{camera=cam0}").state == "normal"
    feed(eng, clock, "camera", {"spark": True}, {"camera": "cam0"}, dt=10)
    assert eng.get("sp{camera=cam0}").state == "active_unack"
    # sparks older than the window no longer count
    eng.acknowledge("sp{camera=cam0}", "x")
    feed(eng, clock, "camera", {"spark": False}, {"camera": "cam0"}, dt=400)
    assert eng.get("sp{camera=cam0}").state == "normal"


DROP = {
    "id": "drop",
    "family": "monitor",
    "field": "events_dropped",
    "increase_above": 10,
    "window_s": 60,
    "latch": False,
}


def test_one_dropped_event_never_raises_a_rate_rule():
    eng, seen, clock = engine(rules(DROP))
    total = 0
    for k in range(300):  # a drop now and then for 5 minutes
        total += 1 if k % 7 == 0 else 0
        feed(eng, clock, "monitor", {"events_dropped": total})
    assert seen == []


def test_increase_within_window_raises_and_clears():
    eng, seen, clock = engine(rules(DROP))
    feed(eng, clock, "monitor", {"events_dropped": 100})
    feed(eng, clock, "monitor", {"events_dropped": 111}, dt=5)
    assert eng.get("drop").state == "active_unack"
    for _ in range(15):
        feed(eng, clock, "monitor", {"events_dropped": 111}, dt=5)
    assert eng.get("drop").state == "normal"
    # a counter reset (daemon restart) is a new baseline, not a negative jump
    feed(eng, clock, "monitor", {"events_dropped": 0}, dt=5)
    feed(eng, clock, "monitor", {"events_dropped": 3}, dt=5)
    assert eng.get("drop").state == "normal"
    assert [r.transition for r in seen] == ["raised", "cleared"]


def test_rate_above():
    eng, _, clock = engine(
        rules({"id": "r", "family": "environment", "field": "p", "rate_above": 6})
    )
    feed(eng, clock, "environment", {"p": 0.0}, dt=10)
    feed(eng, clock, "environment", {"p": 0.5}, dt=10)  # 3/min
    assert eng.get("r").state == "normal"
    feed(eng, clock, "environment", {"p": 2.0}, dt=10)  # 9/min
    assert eng.get("r").state == "active_unack"


def test_not_equals_with_delay_for_a_state_string():
    eng, _, clock = engine(
        rules(
            {
                "id": "sink",
                "family": "monitor",
                "tags": {"component": "influx"},
                "field": "state",
                "not_equals": "ok",
                "delay_s": 60,
            }
        )
    )
    tags = {"component": "influx"}
    for _ in range(12):  # 55 s of "retrying"
        feed(eng, clock, "monitor", {"state": "retrying"}, tags, dt=5)
    assert eng.get("sink").state == "normal"
    feed(eng, clock, "monitor", {"state": "retrying"}, tags, dt=5)
    assert eng.get("sink").state == "active_unack"
    assert eng.get("sink").tags == tags


NODATA = {
    "id": "quiet",
    "family": "daq",
    "tags": {"event_id": "1"},
    "no_data_s": 120,
    "only_when_running": True,
    "severity": "error",
}


def test_no_data_rule_sees_any_field_of_its_series():
    # the bug: a rule without field never saw daq points (no field "value")
    eng, seen, clock = engine(rules(NODATA))
    eng.set_running(True)
    for _ in range(600):  # 10 minutes of triggers at ~1.7 Hz
        feed(eng, clock, "daq", {"events_seen": 1, "rate_hz": 1.7}, {"event_id": "1"}, dt=0.6)
    assert eng.get("quiet").state == "normal" and seen == []
    assert [r.id for r in eng.records()] == ["quiet"]  # one instance, no duplicates
    clock.advance(121)
    eng.tick()
    rec = eng.get("quiet")
    assert rec.state == "active_unack" and rec.value == "no data" and "during a run" in rec.message
    feed(eng, clock, "daq", {"events_seen": 2}, {"event_id": "1"})
    assert eng.get("quiet").state == "cleared_unack"


def test_no_data_only_when_running():
    eng, seen, clock = engine(rules(NODATA))
    clock.advance(1000)
    eng.tick()
    assert seen == []  # no run
    eng.set_running(True)
    clock.advance(100)
    eng.tick()
    assert seen == []  # the timer starts at the run start
    clock.advance(30)
    eng.tick()
    assert eng.get("quiet").state == "active_unack"
    eng.set_running(False)
    clock.advance(1)
    eng.tick()
    assert eng.get("quiet").state == "cleared_unack"


def test_instances_per_tag_set_with_tags():
    eng, _, clock = engine(
        rules(
            {
                "id": "base",
                "family": "pmt",
                "tags": {"board": "0"},
                "field": "baseline",
                "band": [3700, 4000],
            }
        )
    )
    for ch in ("1", "2"):
        feed(eng, clock, "pmt", {"baseline": 3850.0}, {"board": "0", "channel": ch})
    feed(eng, clock, "pmt", {"multiplicity": 3}, {"board": "0"})  # no baseline: no instance
    feed(eng, clock, "pmt", {"baseline": 2100.0}, {"board": "1", "channel": "1"})  # other board
    ids = sorted(r.id for r in eng.records())
    assert ids == ["base{channel=1}", "base{channel=2}"]
    assert eng.get("base{channel=2}").tags == {"board": "0", "channel": "2"}
    with pytest.raises(KeyError, match="unknown alarm"):
        eng.acknowledge("base", "x")


def test_shelve_with_expiry_and_unshelve():
    eng, seen, clock = engine(rules(HOT))
    feed(eng, clock, "environment", {"t": 11})
    rec = eng.shelve("hot", "carol", 600, "known: chiller maintenance")
    assert rec.state == "shelved" and rec.shelved_by == "carol"
    assert rec.shelved_until_ns == clock.t + 600 * S
    s = summarize(eng.records())
    assert s.total == 0 and s.shelved == 1 and "1 shelved" in s.status_text()
    # the condition is still evaluated: clear and raise again, silently
    n = len(seen)
    feed(eng, clock, "environment", {"t": 1})
    feed(eng, clock, "environment", {"t": 12})
    assert len(seen) == n and eng.get("hot").active
    clock.advance(600)
    eng.tick()
    rec = eng.get("hot")
    assert rec.state == "active_unack" and seen[-1].transition == "unshelved"
    eng.shelve("hot", "carol", 60)
    feed(eng, clock, "environment", {"t": 1})
    assert eng.unshelve("hot", "dave").state == "normal"
    with pytest.raises(ValueError, match="not shelved"):
        eng.unshelve("hot", "dave")
    with pytest.raises(ValueError, match="duration"):
        eng.shelve("hot", "x", 0)


def test_disable_enable_and_disabled_rule():
    eng, seen, clock = engine(rules(HOT, {**HOT, "id": "off", "enabled": False}))
    feed(eng, clock, "environment", {"t": 11})
    assert eng.get("off").state == "disabled" and eng.get("off").active
    assert eng.get("hot").state == "active_unack"
    assert eng.disable("hot", "erin").state == "disabled"
    assert summarize(eng.records()).disabled == 2
    assert eng.enable("hot", "erin").state == "active_unack"
    assert [r.transition for r in seen if r.id == "hot"][-2:] == ["disabled", "enabled"]


def test_notifications_are_rate_limited():
    eng, seen, clock = engine(rules({**HOT, "latch": False, "notify_interval_s": 300}))
    for _ in range(10):  # flapping every 10 s
        feed(eng, clock, "environment", {"t": 11}, dt=5)
        feed(eng, clock, "environment", {"t": 1}, dt=5)
    raised = [r for r in seen if r.transition == "raised"]
    assert len(raised) == 10  # every state change is published...
    assert [r.notify for r in raised] == [True] + [False] * 9  # ...one is shouted
    clock.advance(300)
    feed(eng, clock, "environment", {"t": 11})
    assert seen[-1].notify and "9 more time(s)" in seen[-1].message


def test_state_acks_shelving_history_survive_restart(tmp_path):
    path = tmp_path / "alarms.json"
    rl = rules(HOT, {**HOT, "id": "cold", "field": "u"}, NODATA)
    eng, _, clock = engine(rl, state_path=path)
    feed(eng, clock, "environment", {"t": 11, "u": 20})
    eng.acknowledge("hot", "night-shift")
    eng.shelve("cold", "night-shift", 3600, "sensor broken")
    eng.disable("quiet", "night-shift")
    history = list(eng.history)
    # restart
    eng2, _, _ = engine(rl, state_path=path, clock=clock)
    hot = eng2.get("hot")
    assert hot.state == "active_ack" and hot.acked_by == "night-shift" and hot.active
    cold = eng2.get("cold")
    assert cold.state == "shelved" and cold.shelve_reason == "sensor broken"
    assert eng2.get("quiet").state == "disabled"
    assert list(eng2.history) == history and [h["transition"] for h in history] == [
        "raised",
        "raised",
        "acknowledged",
        "shelved",
        "disabled",
    ]
    # the condition clears after the restart: acked -> normal
    feed(eng2, clock, "environment", {"t": 1})
    assert eng2.get("hot").state == "normal"
    # shelving expires on time after the restart
    clock.advance(3600)
    eng2.tick()
    assert eng2.get("cold").state == "active_unack"


def test_latched_alarm_survives_restart_and_a_removed_rule_keeps_its_state(tmp_path):
    path = tmp_path / "alarms.json"
    eng, seen, clock = engine(rules(HOT), state_path=path)
    feed(eng, clock, "environment", {"t": 11})
    feed(eng, clock, "environment", {"t": 1})
    eng.set_rules([])  # SIGHUP without the rule
    assert seen[-1].transition == "removed" and eng.records() == []
    eng2, _, _ = engine(rules(HOT), state_path=path, clock=clock)
    assert eng2.get("hot").state == "cleared_unack"


def test_corrupt_state_file_is_reported_and_ignored(tmp_path, caplog):
    path = tmp_path / "alarms.json"
    path.write_text("{not json")
    eng, _, _ = engine(rules(HOT), state_path=path)
    assert eng.records() == [] and "unreadable" in caplog.text


def test_viewer_drops_ghosts_on_sync():
    eng, _, clock = engine(rules(HOT))
    feed(eng, clock, "environment", {"t": 11})
    st = MonitorState()
    from dataclasses import asdict

    for rec in eng.records():
        st.apply(Message("alarm", asdict(rec)))
    st.apply(
        Message("alarm", {"id": "ghost", "name": "g", "severity": "error", "state": "active_unack"})
    )
    assert set(st.alarms) == {"hot", "ghost"}
    st.apply(Message("alarm", eng.sync_body(with_history=True)))
    assert set(st.alarms) == {"hot"}
    assert [a.transition for a in st.alarm_history] == ["raised"]


def test_verdict_names_the_most_severe_alarm():
    eng, _, clock = engine(
        rules(
            HOT,
            {
                "id": "gas",
                "family": "gas",
                "field": "alarms_active",
                "above": 0,
                "severity": "critical",
                "message": "{value} gas flag(s) set",
            },
        )
    )
    feed(eng, clock, "environment", {"t": 11})
    feed(eng, clock, "gas", {"alarms_active": 2})
    s = summarize(eng.records())
    assert s.level == "alarm" and s.worst.id == "gas"
    assert s.verdict() == "critical: gas - 2 gas flag(s) set (+1 more)"


def test_alarm_metric_matches_the_catalogue():
    from cygno_online.alarms.engine import ALARM_SERIES
    from cygno_online.analysis.catalogue import Catalogue

    eng, seen, clock = engine(rules(HOT))
    feed(eng, clock, "environment", {"t": 11})
    eng.acknowledge("hot", "a")
    cat = Catalogue([ALARM_SERIES])
    for rec in seen:
        m = alarm_metric(rec, "LIME", 1)
        assert cat.check_point(m.family, m.tags, m.fields) == []
