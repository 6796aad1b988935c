"""Pilot tests of the alarm tab, the status line and the verdict for every
alarm state. The records come from the real alarm engine (fake clock), so
the TUI is tested against what the daemon really reports."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from fakedata import NOW_NS
from helpers import run_app, screen_lines, screen_text

from cygno_online.alarms.engine import AlarmEngine
from cygno_online.alarms.rules import parse_rules
from cygno_online.analysis.outputs import Metric
from cygno_online.params import Params, raise_if_errors
from cygno_online.publish.messages import Message
from cygno_online.tui.source import FakeSource

S = 1_000_000_000
RULE = {
    "id": "pmt_baseline_fast",
    "name": "PMT baseline of the fast digitizer, every channel watched separately",
    "family": "pmt",
    "tags": {"board": "0"},
    "field": "baseline",
    "band": [3700, 4000],
    "severity": "error",
    "message": "baseline {value:.0f} ADC outside {low}..{high} ADC",
    "guidance": "Check the digitizer DC offset and the channel's cable.",
    "contact": "PMT expert on call",
}
TAGS = {"board": "0", "channel": "3"}
AID = "pmt_baseline_fast{channel=3}"


def engine_in(state: str) -> AlarmEngine:
    """An engine whose only instance is in ``state``."""
    p = Params({"rules": [RULE]}, "alarms")
    rules = parse_rules(p)
    raise_if_errors(p.errors)
    clock = {"t": NOW_NS - 300 * S}
    eng = AlarmEngine(rules, clock=lambda: clock["t"])

    def feed(v: float) -> None:
        clock["t"] += 10 * S
        eng.observe(
            Metric("pmt", clock["t"], 1, 0, {"baseline": v}, dict(TAGS), {"baseline": "ADC"})
        )

    feed(3850.0)
    if state == "normal":
        return eng
    if state == "disabled":
        eng.disable(AID, "expert")
        return eng
    feed(3600.0)
    if state == "active_ack":
        eng.acknowledge(AID, "alice")
    elif state == "cleared_unack":
        feed(3850.0)
    elif state == "shelved":
        eng.shelve(AID, "bob", 3600, "cable being replaced")
    return eng


def source_for(eng: AlarmEngine) -> FakeSource:
    src = FakeSource()
    src.apply(Message("run", {"run": 42901, "state": "running", "experiment": "LIME"}))
    for rec in eng.records():
        src.apply(Message("alarm", asdict(rec)))
    return src


EXPECT = {
    # state: (tab label, status line, verdict)
    "normal": ("normal", "alarms: none", "OK"),
    "active_unack": ("ACTIVE", "alarms: 1 error", "ALARM"),
    "active_ack": ("active, acked", "alarms: 1 error (acked)", "ALARM"),
    "cleared_unack": ("cleared, unacked", "alarms: 1 error", "CHECK"),
    "shelved": ("shelved (active)", "alarms: none", "OK"),
    "disabled": ("disabled", "alarms: none", "OK"),
}


@pytest.mark.parametrize("state", list(EXPECT))
def test_alarm_tab_status_line_and_verdict_for_each_state(state):
    eng = engine_in(state)
    assert eng.get(AID).state == state
    src = source_for(eng)

    async def body(app, pilot):
        overview = screen_lines(app)
        await pilot.press("6")
        await pilot.pause()
        return overview, screen_text(app)

    overview, tab = run_app(src, body, size=(130, 40))["value"]
    label, status, verdict = EXPECT[state]
    assert status in overview[0]
    assert overview[3].strip().startswith(verdict), overview[3]
    if verdict == "ALARM":
        # the verdict names the alarm and its message
        assert "PMT baseline of the fast" in overview[3] and ": baseline 360" in overview[3]
    # the row: state, tags; the detail pane: everything in full
    assert label in tab
    assert "[board=0 channel=3]" in tab
    assert RULE["name"] in tab  # the full name, not cut
    assert "Check the digitizer DC offset and the channel's cable." in tab
    assert "PMT expert on call" in tab
    assert "outside [3700, 4000]" in tab  # the limit
    if state != "normal" and state != "disabled":
        assert "3600 ADC" in tab  # value with its unit
    if state == "active_ack":
        assert "by alice at" in tab
    if state == "shelved":
        assert "by bob until" in tab and "cable being replaced" in tab


def test_acknowledge_shelve_and_unshelve_from_the_tab():
    src = source_for(engine_in("active_unack"))

    async def body(app, pilot):
        out = {}
        await pilot.press("6")
        await pilot.pause()
        await pilot.press("a", "y")
        await app.workers.wait_for_complete()
        app.poll_now()
        await pilot.pause()
        out["acked"] = screen_text(app)
        await pilot.press("e")
        await pilot.pause()
        out["dialog"] = screen_text(app)
        await pilot.press("2")
        await app.workers.wait_for_complete()
        app.poll_now()
        await pilot.pause()
        out["shelved"] = screen_text(app)
        await pilot.press("u")
        await pilot.pause()
        out["confirm"] = screen_text(app)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        app.poll_now()
        await pilot.pause()
        out["unshelved"] = screen_text(app)
        return out

    out = run_app(src, body, size=(130, 40))["value"]
    assert src.acks == [(AID, "tester")]
    assert "active, acked" in out["acked"] and "tester" in out["acked"]
    assert "Shelve alarm" in out["dialog"] and "1 hour" in out["dialog"]
    assert src.shelves[0][:3] == (AID, "tester", 3600.0)
    assert "shelved" in out["shelved"] and "by tester until" in out["shelved"]
    assert "Unshelve alarm" in out["confirm"]
    assert src.state.alarms[AID].state == "active_unack"  # still active: back to unacked
    assert "ACTIVE" in out["unshelved"]


def test_cancelled_shelve_sends_nothing():
    src = source_for(engine_in("active_unack"))

    async def body(app, pilot):
        await pilot.press("6", "e", "n")
        await pilot.pause()

    run_app(src, body, size=(130, 40))
    assert src.shelves == [] and src.state.alarms[AID].state == "active_unack"
