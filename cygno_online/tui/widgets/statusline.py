"""The top line: experiment, run, connection and alarm summary, always visible."""

from __future__ import annotations

import datetime as dt

from rich.text import Text

from cygno_online.tui.alarmview import AlarmSummary
from cygno_online.tui.widgets.difftext import DiffText

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "error": "bold red",
    "warning": "bold yellow",
    "info": "cyan",
}


def status_text(
    title: str,
    run: dict,
    counts: AlarmSummary | dict[str, int],
    connected: bool,
    now: float,
    width: int = 80,
) -> Text:
    """Title, run, link and alarm summary in one line of ``width`` cells.
    Offline the alarm summary is unknown, not "none": the daemon may be
    raising alarms nobody receives."""
    summary = counts if isinstance(counts, AlarmSummary) else None
    if summary is None:
        summary = AlarmSummary(counts=dict(counts))
    t = Text(title, style="bold")
    if run:
        t.append(f"  {run.get('experiment') or ''} run {run.get('run', '-')} ", style="")
        state = str(run.get("state", ""))
        style = "bold green" if state == "running" else "bold yellow"
        t.append(state.upper(), style=style if connected else "grey50")
    t.append("  ")
    t.append("● live" if connected else "○ OFFLINE", style="green" if connected else "bold red")
    t.append("  alarms: ", style="dim")
    if not connected:
        t.append("unknown", style="bold grey50")
    elif not summary.attention:
        t.append("none", style="green")
    else:
        for sev in ("critical", "error", "warning", "info"):
            n = summary.counts.get(sev, 0)
            if n:
                t.append(f"{n} {sev}", style=SEVERITY_STYLE[sev])
                k = summary.acked.get(sev, 0)
                if k:
                    # acknowledged but still active: counted, and said so
                    t.append(" (acked)" if k == n else f" ({k} acked)", style="dim")
                t.append(" ")
    # minutes only: a ticking second would repaint the line every second
    clock = " " + dt.datetime.fromtimestamp(now).strftime("%H:%M")
    if t.cell_len + len(clock) <= width - 2:
        t.append(clock, style="dim")
    return t


class StatusLine(DiffText):
    """One line, repainted only when its text or styles change (the clock:
    once a second), without the layout pass a Static update costs."""

    DEFAULT_CSS = "StatusLine { height: 1; background: $panel; padding: 0 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._plain = None

    def set(self, text: Text) -> None:
        key = (text.plain, tuple((s.start, s.end, str(s.style)) for s in text.spans))
        if key != self._plain:
            self._plain = key
            self.update(text)
