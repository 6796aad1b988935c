"""The top line: experiment, run, connection and alarm summary, always visible."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.widgets import Static

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "error": "bold red",
    "warning": "bold yellow",
    "info": "cyan",
}


def status_text(
    title: str,
    run: dict,
    counts: dict[str, int],
    connected: bool,
    now: float,
    acked: dict[str, int] | None = None,
) -> Text:
    """``counts``/``acked``: :func:`cygno_online.alarms.summary.summarize`'s
    ``counts`` (active, acknowledged or not, and latched) and ``acked``."""
    t = Text(title, style="bold")
    if run:
        t.append(f"  {run.get('experiment') or ''} run {run.get('run', '-')} ", style="")
        state = str(run.get("state", ""))
        t.append(state.upper(), style="bold green" if state == "running" else "bold yellow")
    t.append("  ")
    t.append("● live" if connected else "○ offline", style="green" if connected else "bold red")
    t.append("  alarms: ", style="dim")
    if not any(counts.values()):
        t.append("none", style="green")
    acked = acked or {}
    for sev in ("critical", "error", "warning", "info"):
        n = counts.get(sev, 0)
        if n:
            k = acked.get(sev, 0)
            t.append(f"{n} {sev}", style=SEVERITY_STYLE[sev])
            if k:
                # acknowledged but still active: counted, and said so
                t.append(" (acked)" if k == n else f" ({k} acked)", style="dim")
            t.append(" ")
    t.append(" " + dt.datetime.fromtimestamp(now).strftime("%H:%M:%S"), style="dim")
    return t


class StatusLine(Static):
    DEFAULT_CSS = "StatusLine { height: 1; background: $panel; padding: 0 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._plain = None

    def set(self, text: Text) -> None:
        key = (text.plain, tuple((s.start, s.end, str(s.style)) for s in text.spans))
        if key != self._plain:
            self._plain = key
            self.update(text)
