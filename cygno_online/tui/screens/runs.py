"""Tab 7: the last runs' summaries from the daemon, newest first.

One row per run (start, duration, description, events, quality verdict and
flags, 55Fe peak, rates); Enter opens the run's full summary with a
comparison against the previous run of the same kind (data with data,
pedestal with pedestal) and against the configured reference values.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from cygno_online.tui.keymetrics import fmt_duration
from cygno_online.tui.screens.base import Panel, ViewContext

QUALITY_STYLE = {"good": "bold green", "flagged": "bold red"}

#: (label, path in the summary document, format, unit) compared between runs
COMPARED: tuple[tuple[str, str, str, str], ...] = (
    ("duration", "duration_s", "{:.0f}", "s"),
    ("events seen", "counters.events_seen", "{:.0f}", ""),
    ("dropped", "counters.drop_fraction", "{:.2%}", ""),
    ("trigger rate", "daq.trigger_rate_hz", "{:.3g}", "Hz"),
    ("DAQ lag", "daq.lag_mean_s", "{:.2f}", "s"),
    ("images", "camera.images", "{:.0f}", ""),
    ("sparks", "camera.spark_fraction", "{:.1%}", ""),
    ("cluster rate", "camera.cluster_rate_hz", "{:.3g}", "Hz"),
    ("55Fe peak", "camera.fe55_peak", "{:.0f}", "ADU"),
    ("55Fe width", "camera.fe55_width", "{:.0f}", "ADU"),
    ("pedestal age", "camera.pedestal_age_days", "{:.1f}", "d"),
    ("PMT triggers", "pmt_triggers", "{:.0f}", ""),
    ("gas temperature", "environment.gas_temperature.mean", "{:.1f}", "°C"),
    ("LIME pressure", "environment.lime_pressure.mean", "{:.4f}", "bar"),
)


def get_path(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _fmt(v: Any, fmt: str) -> str:
    x = _num(v)
    return "-" if x is None else fmt.format(x)


def summary_rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table cells per summary, newest first (pure: tested directly)."""
    out = []
    for doc in reversed(summaries):
        start = _num(doc.get("start_time_ns"))
        start_text = (
            dt.datetime.fromtimestamp(start / 1e9).strftime("%m-%d %H:%M") if start else "-"
        )
        dur = _num(doc.get("duration_s"))
        counters = doc.get("counters") or {}
        flags = [f.get("flag", "?") for f in doc.get("quality_flags") or [] if isinstance(f, dict)]
        quality = str(doc.get("quality") or "-")
        part = doc.get("part")
        out.append(
            {
                "run": f"{doc.get('run', '-')}" + (f" p{part}" if part and part > 1 else ""),
                "start": start_text,
                "duration": fmt_duration(dur) if dur is not None else "-",
                "kind": "ped" if doc.get("pedestal") else "data",
                "description": str(doc.get("description") or ""),
                "events": _fmt(counters.get("events_seen"), "{:.0f}"),
                "quality": quality,
                "flags": ", ".join(flags),
                "fe55": _fmt(get_path(doc, "camera.fe55_peak"), "{:.0f}"),
                "trigger": _fmt(get_path(doc, "daq.trigger_rate_hz"), "{:.2f}"),
                "clusters": _fmt(get_path(doc, "camera.cluster_rate_hz"), "{:.2f}"),
            }
        )
    return out


def previous_of(summaries: list[dict[str, Any]], doc: dict[str, Any]) -> dict[str, Any] | None:
    """The run before ``doc`` of the same kind (data or pedestal)."""
    items = list(summaries)
    try:
        i = next(k for k, d in enumerate(items) if d is doc)
    except StopIteration:
        return None
    for d in reversed(items[:i]):
        if bool(d.get("pedestal")) == bool(doc.get("pedestal")):
            return d
    return None


def comparison(
    doc: dict[str, Any], previous: dict[str, Any] | None, references: dict[str, Any]
) -> Table:
    """This run against the previous one and the reference values."""
    t = Table(box=None, padding=(0, 1), header_style="bold dim")
    t.add_column("quantity", no_wrap=True)
    t.add_column(f"run {doc.get('run')}", justify="right", no_wrap=True)
    prev_name = f"previous (run {previous.get('run')})" if previous else "previous: none"
    t.add_column(prev_name, justify="right", no_wrap=True)
    t.add_column("change", justify="right", no_wrap=True)
    t.add_column("reference", justify="right", no_wrap=True)
    refs = {"camera.fe55_peak": _num((references or {}).get("fe55_peak"))}
    for label, path, fmt, unit in COMPARED:
        v = _num(get_path(doc, path))
        p = _num(get_path(previous, path)) if previous else None
        if v is None and p is None:
            continue
        change = ""
        style = ""
        if v is not None and p is not None and p != 0 and "%" not in fmt:
            rel = v / p - 1
            change = f"{rel:+.1%}" if abs(rel) >= 0.0005 else "same"
            style = "bold yellow" if abs(rel) > 0.1 else ""
        ref = refs.get(path)
        ref_text = ""
        if ref is not None:
            ref_text = fmt.format(ref)
            if v is not None and ref:
                ref_text += f" {v / ref - 1:+.0%}"
        u = f" {unit}" if unit else ""
        t.add_row(
            label,
            (_fmt(v, fmt) + u) if v is not None else "-",
            (_fmt(p, fmt) + u) if p is not None else "-",
            Text(change, style=style),
            ref_text,
        )
    return t


class RunSummaryScreen(ModalScreen[None]):
    """One run's full summary and its comparison (Esc closes)."""

    DEFAULT_CSS = """
    RunSummaryScreen { align: center middle; }
    RunSummaryScreen > VerticalScroll { width: 98%; height: 96%; border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,enter", "close", "close")]

    def __init__(self, doc: dict[str, Any], previous: dict[str, Any] | None) -> None:
        super().__init__()
        self.doc = doc
        self.previous = previous

    def compose(self) -> ComposeResult:
        from cygno_online.analysis.summary import summary_to_text

        doc = self.doc
        head = Text(f"Run {doc.get('run')} summary - Esc closes\n", style="bold")
        flags = doc.get("quality_flags") or []
        verdict = Text(
            f"quality: {doc.get('quality') or '-'}",
            style=QUALITY_STYLE.get(str(doc.get("quality")), "bold"),
        )
        for f in flags:
            if isinstance(f, dict):
                verdict.append(f"\n  {f.get('flag')}: {f.get('reason')}", style="yellow")
        try:
            body = Text(summary_to_text(doc))
        except Exception as exc:  # a summary of another version must not end the TUI
            body = Text(f"cannot render this summary: {exc}", style="red")
        with VerticalScroll():
            yield Static(
                Group(
                    head,
                    verdict,
                    Text(""),
                    Text("Compared with", style="bold"),
                    comparison(doc, self.previous, doc.get("references") or {}),
                    Text(""),
                    body,
                )
            )

    def action_close(self) -> None:
        self.dismiss(None)


class RunsPanel(Panel):
    DEFAULT_CSS = """
    RunsPanel #runs-title { height: 1; padding: 0 1; }
    RunsPanel DataTable { height: 1fr; }
    """

    #: the first columns fit 80 terminal columns: run, when, verdict and why
    COLUMNS = (
        ("run", "Run", 6),
        ("start", "Start", 11),
        ("duration", "Duration", 8),
        ("kind", "Kind", 4),
        ("quality", "Quality", 7),
        ("fe55", "55Fe ADU", 8),
        ("flags", "Flags", 17),
        ("events", "Events", 7),
        ("trigger", "Trig Hz", 7),
        ("clusters", "Clus Hz", 7),
        ("description", "Description", 36),
    )

    def __init__(self) -> None:
        super().__init__(id="panel-runs")
        self.docs: list[dict[str, Any]] = []
        self._all: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title")
        table = DataTable(id="runs-table", cursor_type="row")
        for key, label, width in self.COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table

    def focus_target(self) -> object | None:
        return self.query_one(DataTable)

    def update_view(self, ctx: ViewContext) -> None:
        summaries = list(ctx.state.summaries)
        sig = (
            tuple((d.get("run"), d.get("part"), d.get("generated_ns")) for d in summaries),
            ctx.connected,
        )
        if not self._changed("runs", sig):
            return
        self._all = summaries
        self.docs = list(reversed(summaries))
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        dim = "" if ctx.connected else "grey50"
        for row in summary_rows(summaries):
            cells = []
            for key, _label, _w in self.COLUMNS:
                style = dim
                if key == "quality" and not dim:
                    style = QUALITY_STYLE.get(row[key], "")
                cells.append(Text(row[key], style=style))
            table.add_row(*cells)
        if 0 <= cursor < len(self.docs):
            table.move_cursor(row=cursor)
        title = Text("Runs", style="bold")
        if summaries:
            n_bad = sum(1 for d in summaries if d.get("quality") == "flagged")
            n = len(summaries)
            title.append(f"  last {n} summar{'y' if n == 1 else 'ies'}", style="")
            if n_bad:
                title.append(f", {n_bad} flagged", style="bold red")
            title.append("  (Enter: full summary and comparison)", style="dim")
        else:
            title.append("  no run has ended since the daemon started", style="dim")
        self.query_one("#runs-title", Static).update(title)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_selected()

    def open_selected(self) -> None:
        table = self.query_one(DataTable)
        i = table.cursor_row
        if not 0 <= i < len(self.docs):
            return
        doc = self.docs[i]
        self.app.push_screen(RunSummaryScreen(doc, previous_of(self._all, doc)))
