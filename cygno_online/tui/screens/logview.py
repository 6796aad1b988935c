"""Tab 7: daemon and MIDAS messages, coloured by level."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import RichLog

from cygno_online.publish.state import LogRecord
from cygno_online.tui.screens.base import Panel, ViewContext

LEVEL_STYLE = {
    "debug": "dim",
    "info": "",
    "warning": "yellow",
    "error": "bold red",
    "critical": "bold white on red",
    "talk": "cyan",
}


def log_line(r: LogRecord) -> Text:
    when = dt.datetime.fromtimestamp(r.time_ns / 1e9).strftime("%H:%M:%S")
    t = Text(when + " ", style="dim")
    t.append(f"{r.level[:4].upper():4} ", style=LEVEL_STYLE.get(r.level, "") or "bold")
    t.append(f"{r.origin}: ", style="cyan" if r.origin != "daemon" else "blue")
    t.append(r.text, style=LEVEL_STYLE.get(r.level, ""))
    if r.run is not None:
        t.append(
            f"  [run {r.run}" + (f" #{r.serial}]" if r.serial is not None else "]"), style="dim"
        )
    return t


class LogPanel(Panel):
    DEFAULT_CSS = "LogPanel RichLog { height: 1fr; }"

    def __init__(self) -> None:
        super().__init__(id="panel-log")
        self._last: LogRecord | None = None
        self.lines = 0

    def compose(self) -> ComposeResult:
        yield RichLog(id="log", max_lines=2000, wrap=True, markup=False, auto_scroll=True)

    def focus_target(self) -> object | None:
        return self.query_one(RichLog)

    def update_view(self, ctx: ViewContext) -> None:
        records = ctx.state.log
        if not records or records[-1] is self._last:
            return
        log = self.query_one(RichLog)
        new: list[LogRecord] = []
        # Walk back to the last record already shown; a snapshot reload makes
        # new objects, then everything is written again.
        for r in reversed(records):
            if r is self._last:
                break
            new.append(r)
        else:
            log.clear()
            self.lines = 0
        for r in reversed(new):
            log.write(log_line(r))
            self.lines += 1
        self._last = records[-1]
