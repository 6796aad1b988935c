"""The Overview verdict and the status line for every alarm state
(ISA-18.2: normal, active-unacknowledged, active-acknowledged,
cleared-unacknowledged, shelved, disabled), connected and offline."""

from __future__ import annotations

import pytest
from fakedata import NOW, NOW_NS, make_source
from helpers import run_app, screen_lines

from cygno_online.tui.source import FakeSource


def _source(state: str, severity: str = "error") -> FakeSource:
    src = make_source()
    # only the alarm under test
    for rec in list(src.state.alarms.values()):
        src.alarm(**{**_base(rec.id), "state": "normal", "transition": "removed"})
    src.alarm(
        id="hv_trip",
        name="HV trip GEM2",
        severity=severity,
        state=state,
        acked=state == "active_ack",
        latched=state == "cleared_unack",
        raised_ns=NOW_NS - 180 * 10**9,
        cleared_ns=NOW_NS - 60 * 10**9 if state == "cleared_unack" else 0,
        transition="raised",
    )
    return src


def _base(alarm_id: str) -> dict:
    return {"id": alarm_id, "name": alarm_id, "severity": "warning", "state": "normal"}


def _look(src, offline=False):
    async def body(app, pilot):
        if offline:
            src.disconnect(since=NOW - 30)
        app.poll_now()
        await pilot.pause()
        lines = screen_lines(app)
        return lines[0], next(
            line
            for line in lines
            if line.strip().startswith(("OK", "ALARM", "WARNING", "CHECK", "NO DATA", "NOT LIVE"))
        )

    return run_app(src, body)["value"]


@pytest.mark.parametrize(
    "state, verdict, status",
    [
        ("active_unack", "ALARM  HV trip GEM2", "alarms: 1 error"),
        ("active_ack", "ALARM  HV trip GEM2", "alarms: 1 error"),
        ("cleared_unack", "CHECK  HV trip GEM2", "alarms: 1 error"),
        ("shelved", "OK  running", "alarms: none"),
        ("disabled", "OK  running", "alarms: none"),
        ("normal", "OK  running", "alarms: none"),
    ],
)
def test_every_alarm_state_on_the_overview(state, verdict, status):
    status_line, verdict_line = _look(_source(state))
    assert verdict in verdict_line, verdict_line
    assert status in status_line, status_line
    if state == "active_ack":
        assert "active, acked" in verdict_line
    if state == "cleared_unack":
        assert "cleared, unacked" in verdict_line


def test_a_warning_is_named_too():
    _status, verdict_line = _look(_source("active_unack", severity="warning"))
    assert "WARNING  HV trip GEM2 (warning" in verdict_line


@pytest.mark.parametrize("state", ["active_unack", "normal"])
def test_offline_the_alarm_summary_is_unknown_whatever_the_state(state):
    status_line, verdict_line = _look(_source(state), offline=True)
    assert "alarms: unknown" in status_line and "OFFLINE" in status_line
    assert "NOT LIVE" in verdict_line
