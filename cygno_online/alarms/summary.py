"""The one alarm summary every view uses: status line, overview verdict, tab
counts, the TUI bell.

:func:`summarize` takes the alarm records a viewer holds (the instances the
daemon reports) and returns an :class:`AlarmSummary`. An acknowledged alarm
whose condition persists (``active_ack``) still counts, and says so: the
status line shows ``1 error (1 acked)``, the verdict stays ``ALARM``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cygno_online.publish.state import SEVERITIES, AlarmRecord

#: most severe first
SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}
#: more urgent first
STATE_RANK = {"active_unack": 0, "active_ack": 1, "cleared_unack": 2}
STATE_LABEL = {
    "normal": "normal",
    "active_unack": "ACTIVE",
    "active_ack": "active, acked",
    "cleared_unack": "cleared, unacked",
    "shelved": "shelved",
    "disabled": "disabled",
}


def urgency(a: AlarmRecord) -> tuple:
    """Sort key: most severe, then active-unacked before acked before
    latched, then the most recent."""
    return (
        SEVERITY_RANK.get(a.severity, 9),
        STATE_RANK.get(a.state, 9),
        -int(a.raised_ns or 0),
        a.id,
    )


@dataclass(slots=True)
class AlarmSummary:
    #: alarms that count, by severity (active_unack + active_ack + cleared_unack)
    counts: dict[str, int] = field(default_factory=dict)
    #: of those, acknowledged and still active, by severity
    acked: dict[str, int] = field(default_factory=dict)
    #: of those, unacknowledged (active or latched), by severity
    unacked: dict[str, int] = field(default_factory=dict)
    shelved: int = 0
    disabled: int = 0
    #: the most severe counting alarm (None: nothing counts)
    worst: AlarmRecord | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def level(self) -> str:
        """``alarm`` (error/critical counts), ``warning``, ``info`` or ``ok``."""
        if self.counts.get("critical") or self.counts.get("error"):
            return "alarm"
        if self.counts.get("warning"):
            return "warning"
        if self.counts.get("info"):
            return "info"
        return "ok"

    def parts(self) -> list[tuple[str, str]]:
        """(severity, text) most severe first: ``("error", "2 error (1 acked)")``."""
        out = []
        for sev in reversed(SEVERITIES):
            n = self.counts.get(sev, 0)
            if not n:
                continue
            text = f"{n} {sev}"
            k = self.acked.get(sev, 0)
            if k:
                text += f" ({k} acked)" if k < n else " (acked)"
            out.append((sev, text))
        return out

    def status_text(self) -> str:
        """For the status line: ``none`` or ``1 error (acked), 2 warning``."""
        parts = [t for _, t in self.parts()]
        text = ", ".join(parts) if parts else "none"
        if self.shelved:
            text += f"; {self.shelved} shelved"
        if self.disabled:
            text += f"; {self.disabled} disabled"
        return text

    def verdict(self) -> str:
        """``ALARM critical: Gas system alarm - 1 gas alarm flag set (+2 more)``,
        naming the most severe alarm and its message; ``""`` when none counts."""
        w = self.worst
        if w is None:
            return ""
        what = STATE_LABEL.get(w.state, w.state)
        msg = w.message or w.limit
        text = f"{w.severity}: {w.name or w.id}"
        where = ",".join(f"{k}={v}" for k, v in sorted((w.tags or {}).items()))
        if where:
            text += f" [{where}]"
        if msg:
            text += f" - {msg}"
        if w.state != "active_unack":
            text += f" ({what})"
        more = self.total - 1
        if more:
            text += f" (+{more} more)"
        return text


def summarize(alarms: Iterable[AlarmRecord]) -> AlarmSummary:
    """The summary of the alarm instances a viewer holds."""
    s = AlarmSummary(
        counts=dict.fromkeys(SEVERITIES, 0),
        acked=dict.fromkeys(SEVERITIES, 0),
        unacked=dict.fromkeys(SEVERITIES, 0),
    )
    counting = []
    for a in alarms:
        if a.state == "shelved":
            s.shelved += 1
        elif a.state == "disabled":
            s.disabled += 1
        if not a.counts:
            continue
        counting.append(a)
        s.counts[a.severity] = s.counts.get(a.severity, 0) + 1
        if a.state == "active_ack":
            s.acked[a.severity] = s.acked.get(a.severity, 0) + 1
        else:
            s.unacked[a.severity] = s.unacked.get(a.severity, 0) + 1
    if counting:
        s.worst = min(counting, key=urgency)
    return s
