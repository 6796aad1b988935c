"""The alarm summary every part of the TUI shows (status line, verdict, tab
label, bell): one place, so a change of the alarm states changes one module.

The alarm tab itself (``screens/alarms.py``) and the alarm-state semantics
belong to the alarms code; this module only reads :class:`AlarmRecord`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cygno_online.publish.state import SEVERITIES, AlarmRecord, MonitorState

SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def alarm_state(rec: AlarmRecord) -> str:
    """The ISA-18.2 state of a record: ``active-unacknowledged``,
    ``active-acknowledged``, ``cleared-unacknowledged``, ``shelved``,
    ``disabled`` or ``normal`` (a pending alarm is still normal)."""
    state = str(rec.state)
    if state in ("shelved", "disabled", "normal"):
        return state
    if state in ENGINE_STATES:  # the alarm engine's names (cygno_online.alarms.engine)
        return ENGINE_STATES[state]
    if "-" in state:  # already an ISA-18.2 state name
        return state
    if state == "active":
        return "active-acknowledged" if rec.acked else "active-unacknowledged"
    if rec.latched and not rec.acked:
        return "cleared-unacknowledged"
    return "normal"


#: the alarm engine's state names -> ISA-18.2 names
ENGINE_STATES = {
    "active_unack": "active-unacknowledged",
    "active_ack": "active-acknowledged",
    "cleared_unack": "cleared-unacknowledged",
}

#: short labels for narrow places
STATE_SHORT = {
    "active-unacknowledged": "active, unacked",
    "active-acknowledged": "active, acked",
    "cleared-unacknowledged": "cleared, unacked",
    "shelved": "shelved",
    "disabled": "disabled",
    "normal": "normal",
}


def needs_attention(rec: AlarmRecord) -> bool:
    """Active and not acknowledged, or cleared but never acknowledged."""
    return alarm_state(rec) in ("active-unacknowledged", "cleared-unacknowledged")


@dataclass(slots=True)
class AlarmSummary:
    #: alarms that count, by severity: active (acknowledged or not: an
    #: acknowledged alarm whose condition persists still counts) and
    #: cleared-unacknowledged
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    #: of those, active and acknowledged, by severity
    acked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    #: active (acknowledged or not), by severity
    active: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    #: the alarm to name first: highest severity, active before cleared,
    #: unacknowledged before acknowledged, most recent
    worst: AlarmRecord | None = None
    shelved: int = 0

    @property
    def attention(self) -> int:
        return sum(self.counts.values())

    @property
    def bad(self) -> int:
        """error + critical alarms that count (acknowledged ones included)."""
        return self.counts.get("critical", 0) + self.counts.get("error", 0)

    def worst_name(self) -> str:
        w = self.worst
        return (w.name or w.id) if w is not None else ""


def summarize(state: MonitorState) -> AlarmSummary:
    """The alarm summary of ``state`` (caller holds ``state.lock``), built on
    the alarm engine's one summary (:func:`cygno_online.alarms.summary.summarize`):
    what counts, what is acknowledged and which alarm is the worst are
    decided there for every view."""
    from cygno_online.alarms.summary import summarize as engine_summary

    base = engine_summary(state.alarms.values())
    out = AlarmSummary()
    for sev, n in base.counts.items():
        out.counts[sev if sev in SEVERITY_RANK else "warning"] += n
    for sev, n in base.acked.items():
        out.acked[sev if sev in SEVERITY_RANK else "warning"] += n
    for rec in state.alarms.values():
        if alarm_state(rec).startswith("active"):
            sev = rec.severity if rec.severity in SEVERITY_RANK else "warning"
            out.active[sev] += 1
    out.worst = base.worst
    out.shelved = base.shelved + base.disabled
    return out
