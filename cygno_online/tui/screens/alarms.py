"""Tab 6: the alarm instances the daemon reports, a detail pane for the
selected one, and the history of transitions.

One row per instance (rule and tag set): state, severity, name with its
tags, value, since when, who acknowledged or shelved it. The detail pane
shows everything in full (names are never cut there): limit, message,
guidance, contact, acknowledgement and shelving. Keys: ``a`` acknowledge,
``e`` shelve (asks for how long), ``u`` unshelve (asks for confirmation).
The TUI only acts on instances the daemon reported (the daemon's periodic
``sync`` removes anything else).
"""

from __future__ import annotations

import datetime as dt

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from cygno_online.alarms.summary import STATE_LABEL, urgency
from cygno_online.publish.state import AlarmRecord
from cygno_online.tui.keymetrics import fmt_value
from cygno_online.tui.screens.base import Panel, ViewContext

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "error": "bold red",
    "warning": "bold yellow",
    "info": "cyan",
}
#: shelving durations offered by the shelve dialog (key, label, seconds)
SHELVE_CHOICES = (("1", "15 minutes", 900.0), ("2", "1 hour", 3600.0), ("3", "8 hours", 28800.0))


def hhmmss(ns: int) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9).strftime("%H:%M:%S")


def when(ns: int) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def tag_text(a: AlarmRecord) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted((a.tags or {}).items()))


def status_text(a: AlarmRecord) -> Text:
    label = STATE_LABEL.get(a.state, a.state)
    if a.state == "active_unack":
        return Text(label, style=SEVERITY_STYLE.get(a.severity, "bold"))
    if a.state == "active_ack":
        return Text(label, style="yellow")
    if a.state == "cleared_unack":
        return Text(label, style="bold magenta")
    if a.state in ("shelved", "disabled"):
        return Text(label + (" (active)" if a.active else ""), style="dim")
    if a.pending:
        return Text("pending", style="yellow")
    return Text(label, style="green")


def since_ns(a: AlarmRecord) -> int:
    return int(a.since_ns or (a.raised_ns if a.state != "normal" else 0) or 0)


def value_text(a: AlarmRecord) -> str:
    if a.value is None:
        return ""
    unit = f" {a.unit}" if a.unit and a.value != "no data" else ""
    return fmt_value(a.value) + unit


def who(a: AlarmRecord) -> str:
    if a.state == "shelved":
        return a.shelved_by
    return a.acked_by if a.acked_by and a.state in ("active_ack", "normal") else ""


def detail(a: AlarmRecord | None) -> Table | Text:
    """Everything about one instance, nothing cut."""
    if a is None:
        return Text("no alarm selected", style="dim")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    name = Text(a.name or a.id, style="bold")
    tags = tag_text(a)
    if tags:
        name.append(f"  [{tags}]", style="cyan")
    grid.add_row("Alarm", name)
    grid.add_row("Id", Text(f"{a.id}  (rule {a.rule or '?'}, {a.severity})", style="dim"))
    state = status_text(a)
    state.append(f"  since {when(since_ns(a))}", style="")
    grid.add_row("State", state)
    grid.add_row("Value", Text(value_text(a) or "-"))
    grid.add_row("Limit", Text(a.limit or "-"))
    grid.add_row("Message", Text(a.message or "-"))
    grid.add_row("Guidance", Text(a.guidance or "-", style="bold" if a.guidance else "dim"))
    grid.add_row("Contact", Text(a.contact or "-"))
    if a.acked_by:
        grid.add_row("Acknowledged", Text(f"by {a.acked_by} at {when(a.acked_ns)}"))
    if a.state == "shelved":
        grid.add_row(
            "Shelved",
            Text(
                f"by {a.shelved_by} until {when(a.shelved_until_ns)}"
                + (f": {a.shelve_reason}" if a.shelve_reason else "")
            ),
        )
    grid.add_row("Raised", Text(f"{when(a.raised_ns)}   cleared {when(a.cleared_ns)}"))
    return grid


class ShelveScreen(ModalScreen["float | None"]):
    """How long to shelve an alarm: choosing a duration is the confirmation."""

    DEFAULT_CSS = """
    ShelveScreen { align: center middle; }
    ShelveScreen > Static { width: 64; max-width: 95%; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    """
    BINDINGS = [
        *(Binding(k, f"choose({s})", label) for k, label, s in SHELVE_CHOICES),
        Binding("n,escape", "cancel", "cancel"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.alarm_name = name

    def compose(self) -> ComposeResult:
        t = Text.assemble((f"Shelve alarm '{self.alarm_name}'?", "bold"), "\n")
        t.append("It stays silent until the time is up, then shows its true state.\n\n")
        for k, label, _ in SHELVE_CHOICES:
            t.append(k, style="bold green")
            t.append(f" {label}    ")
        t.append("\n")
        t.append("n", style="bold red")
        t.append(" cancel")
        yield Static(t)

    def action_choose(self, seconds: float) -> None:
        self.dismiss(float(seconds))

    def action_cancel(self) -> None:
        self.dismiss(None)


class AlarmsPanel(Panel):
    DEFAULT_CSS = """
    AlarmsPanel .al-title { height: 1; padding: 0 1; text-style: bold; }
    AlarmsPanel #al-current { height: 2fr; min-height: 4; }
    AlarmsPanel #al-detail { height: auto; max-height: 12; padding: 0 1; border-top: solid $panel-lighten-2; }
    AlarmsPanel #al-history { height: 1fr; min-height: 3; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-alarms")
        self._key: tuple | None = None
        self._hist_key: tuple | None = None
        self._detail_key: tuple | None = None
        self.ids: list[str] = []
        self._recs: dict[str, AlarmRecord] = {}

    def compose(self) -> ComposeResult:
        yield Static("Alarms", classes="al-title", id="al-title")
        cur = DataTable(id="al-current", cursor_type="row")
        # Fixed widths: DataTable keeps the widths of the first rows after
        # clear(), which would crop later, longer texts; full names and
        # everything else are in the detail pane below.
        for key, label, width in (
            ("status", "State", 16),
            ("sev", "Severity", 8),
            ("name", "Alarm [tags]", 34),
            ("value", "Value", 12),
            ("since", "Since", 8),
            ("by", "By", 10),
        ):
            cur.add_column(label, key=key, width=width)
        yield cur
        yield Static(id="al-detail")
        yield Static("History", classes="al-title")
        hist = DataTable(id="al-history", cursor_type="row")
        for label, width in (
            ("Time", 8),
            ("Transition", 12),
            ("Severity", 8),
            ("Alarm", 28),
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

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "al-current":
            self._show_detail()

    def _show_detail(self) -> None:
        aid = self.selected_alarm()
        rec = self._recs.get(aid) if aid else None
        key = (aid, tuple(sorted((k, str(v)) for k, v in _fields(rec).items())))
        if key != self._detail_key:
            self._detail_key = key
            self.query_one("#al-detail", Static).update(detail(rec))

    def update_view(self, ctx: ViewContext) -> None:
        st = ctx.state
        recs = sorted(st.alarms.values(), key=lambda a: (a.state == "normal", urgency(a)))
        self._recs = {a.id: a for a in recs}
        key = (
            *tuple(
                (a.id, a.state, a.pending, a.severity, str(a.value), since_ns(a), who(a))
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
                name = Text(a.name or a.id, style=dim)
                tags = tag_text(a)
                if tags:
                    name.append(f" [{tags}]", style=dim or "cyan")
                table.add_row(
                    status_text(a) if ctx.connected else Text(status_text(a).plain, style=dim),
                    Text(a.severity, style=dim or SEVERITY_STYLE.get(a.severity, "")),
                    name,
                    Text(value_text(a), style=dim),
                    Text(hhmmss(since_ns(a)) if a.state != "normal" else "", style=dim),
                    Text(who(a), style=dim),
                    key=a.id,
                )
                self.ids.append(a.id)
            if selected in self.ids:
                table.move_cursor(row=self.ids.index(selected))
            counting = [a for a in recs if a.counts]
            unacked = sum(1 for a in counting if a.needs_attention)
            title = Text("Alarms", style="bold")
            if counting:
                title.append(f"  {len(counting)} active or latched", style="bold red")
                if unacked != len(counting):
                    title.append(f" ({len(counting) - unacked} acknowledged)", style="yellow")
            else:
                title.append("  all clear", style="green")
            shelved = sum(1 for a in recs if a.state == "shelved")
            if shelved:
                title.append(f"  {shelved} shelved", style="dim")
            title.append("  a: acknowledge  e: shelve  u: unshelve", style="dim")
            self.query_one("#al-title", Static).update(title)
        self._show_detail()
        hist = list(st.alarm_history)
        hkey = (len(hist), id(hist[-1]) if hist else None)
        if hkey != self._hist_key:
            self._hist_key = hkey
            ht = self.query_one("#al-history", DataTable)
            ht.clear()
            for a in reversed(hist[-100:]):
                at = {
                    "raised": a.raised_ns,
                    "cleared": a.cleared_ns,
                    "acknowledged": a.acked_ns,
                }.get(a.transition, 0) or a.since_ns
                msg = a.message
                if a.transition == "acknowledged" and a.acked_by:
                    msg += f" (by {a.acked_by})"
                elif a.transition == "shelved" and a.shelved_by:
                    msg = f"by {a.shelved_by} until {hhmmss(a.shelved_until_ns)}"
                tags = tag_text(a)
                ht.add_row(
                    hhmmss(at),
                    a.transition,
                    Text(a.severity, style=SEVERITY_STYLE.get(a.severity, "")),
                    (a.name or a.id) + (f" [{tags}]" if tags else ""),
                    msg,
                )


def _fields(rec: AlarmRecord | None) -> dict:
    if rec is None:
        return {}
    return {k: getattr(rec, k) for k in AlarmRecord.__slots__}
