"""Tab 6: alarms needing attention (active or latched), all current alarm
states, and the history of transitions. ``a`` acknowledges the selected one."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from cygno_online.alarms.summary import STATE_LABEL
from cygno_online.publish.state import AlarmRecord
from cygno_online.tui.keymetrics import fmt_value
from cygno_online.tui.screens.base import Panel, ViewContext

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "error": "bold red",
    "warning": "bold yellow",
    "info": "cyan",
}
SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def hhmmss(ns: int) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9).strftime("%H:%M:%S")


def status_text(a: AlarmRecord) -> Text:
    label = STATE_LABEL.get(a.state, a.state)
    if a.state == "active_unack":
        return Text(label, style=SEVERITY_STYLE.get(a.severity, "bold"))
    if a.state == "active_ack":
        return Text(label, style="yellow")
    if a.state == "cleared_unack":
        return Text(label, style="bold magenta")
    if a.state in ("shelved", "disabled"):
        return Text(label, style="dim")
    if a.pending:
        return Text("pending", style="yellow")
    return Text(label, style="green")


class AlarmsPanel(Panel):
    DEFAULT_CSS = """
    AlarmsPanel .al-title { height: 1; padding: 0 1; text-style: bold; }
    AlarmsPanel #al-current { height: 2fr; }
    AlarmsPanel #al-history { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-alarms")
        self._key: tuple | None = None
        self._hist_key: tuple | None = None
        self.ids: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("Alarms (a: acknowledge selected)", classes="al-title", id="al-title")
        cur = DataTable(id="al-current", cursor_type="row")
        # Fixed widths: DataTable keeps the widths of the first rows after
        # clear(), which would crop later, longer texts ("tester" -> "tes").
        for key, label, width in (
            ("status", "Status", 13),
            ("sev", "Severity", 8),
            ("name", "Alarm", 24),
            ("value", "Value", 8),
            ("since", "Since", 8),
            ("ack", "Ack", 10),
        ):
            cur.add_column(label, key=key, width=width)
        yield cur
        yield Static("History", classes="al-title")
        hist = DataTable(id="al-history", cursor_type="row")
        for label, width in (
            ("Time", 8),
            ("Transition", 12),
            ("Severity", 8),
            ("Alarm", 20),
            ("Message", 60),
        ):
            hist.add_column(label, width=width)
        yield hist

    def focus_target(self) -> object | None:
        return self.query_one("#al-current", DataTable)

    def selected_alarm(self) -> str | None:
        table = self.query_one("#al-current", DataTable)
        if not self.ids or table.cursor_row < 0 or table.cursor_row >= len(self.ids):
            return None
        return self.ids[table.cursor_row]

    def update_view(self, ctx: ViewContext) -> None:
        st = ctx.state
        recs = sorted(
            st.alarms.values(),
            key=lambda a: (
                not a.needs_attention,
                a.state != "active",
                SEVERITY_RANK.get(a.severity, 9),
                a.id,
            ),
        )
        key = (
            *tuple(
                (a.id, a.state, a.latched, a.acked, a.severity, str(a.value), a.raised_ns)
                for a in recs
            ),
            ctx.connected,
        )
        if key != self._key:
            self._key = key
            table = self.query_one("#al-current", DataTable)
            selected = self.selected_alarm()
            table.clear()
            self.ids = []
            dim = "" if ctx.connected else "grey50"
            for a in recs:
                table.add_row(
                    status_text(a) if ctx.connected else Text(status_text(a).plain, style=dim),
                    Text(a.severity, style=dim or SEVERITY_STYLE.get(a.severity, "")),
                    Text(a.name or a.id, style=dim),
                    Text(fmt_value(a.value) if a.value is not None else "", style=dim),
                    Text(hhmmss(a.raised_ns) if a.state != "ok" or a.latched else "", style=dim),
                    Text(a.acked_by if a.acked else "", style=dim),
                    key=a.id,
                )
                self.ids.append(a.id)
            if selected in self.ids:
                table.move_cursor(row=self.ids.index(selected))
            n = sum(1 for a in recs if a.needs_attention)
            title = Text("Alarms", style="bold")
            title.append(
                f"  {n} need attention" if n else "  all clear", style="bold red" if n else "green"
            )
            title.append("  (a: acknowledge selected)", style="dim")
            self.query_one("#al-title", Static).update(title)
        hist = list(st.alarm_history)
        hkey = (len(hist), id(hist[-1]) if hist else None)
        if hkey != self._hist_key:
            self._hist_key = hkey
            ht = self.query_one("#al-history", DataTable)
            ht.clear()
            for a in reversed(hist[-100:]):
                when = {
                    "raised": a.raised_ns,
                    "cleared": a.cleared_ns,
                    "acknowledged": a.acked_ns,
                }.get(a.transition, 0)
                msg = a.message + (
                    f" (by {a.acked_by})" if a.transition == "acknowledged" and a.acked_by else ""
                )
                ht.add_row(
                    hhmmss(when),
                    a.transition,
                    Text(a.severity, style=SEVERITY_STYLE.get(a.severity, "")),
                    a.name or a.id,
                    msg,
                )
