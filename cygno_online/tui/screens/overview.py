"""Tab 1: is the detector running and is the data good, at a glance."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from cygno_online.alarms.summary import summarize
from cygno_online.publish.state import SEVERITIES
from cygno_online.tui.keymetrics import (
    KEY_METRICS,
    field_time_ns,
    fmt_age,
    fmt_duration,
    fmt_value,
    history_values,
    key_rows,
    series_fields,
    tag_suffix,
    unit_of,
)
from cygno_online.tui.screens.base import Panel, ViewContext
from cygno_online.tui.widgets.sparkline import sparkline

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "error": "bold red",
    "warning": "bold yellow",
    "info": "cyan",
}
STATE_STYLE = {"running": "bold green", "stopped": "bold yellow", "paused": "bold yellow"}
STALE = "grey50"


def _number(v: object) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def run_summary(ctx: ViewContext) -> Table:
    st = ctx.state
    run = st.run
    h = st.health
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    dim = "" if ctx.connected else STALE
    state = str(run.get("state", "waiting")) if run else "no run yet"
    kind = " pedestal" if run.get("pedestal") else ""
    grid.add_row(
        "Experiment",
        Text(str(run.get("experiment") or "-"), style=dim),
        "Run",
        Text.assemble(
            (f"{run.get('run', '-')} ", dim or "bold"),
            (state.upper() + kind, dim or STATE_STYLE.get(state, "")),
        ),
    )
    start = _number(run.get("start_time_ns"))
    stop = _number(run.get("stop_time_ns"))
    if start:
        end = stop / 1e9 if stop else ctx.now
        runtime = fmt_duration(end - start / 1e9)
    else:
        runtime = "-"
    exposure = run.get("exposure_s")
    grid.add_row(
        "Run time",
        Text(runtime, style=dim),
        "Exposure",
        Text(
            f"{exposure:g} s" if isinstance(exposure, (int, float)) and exposure else "-", style=dim
        ),
    )
    desc = str(run.get("description") or "")
    grid.add_row("Description", Text(desc or "-", style=dim, overflow="ellipsis"), "", "")
    rate_in = h.get("rate_in_hz")
    rate_out = h.get("rate_processed_hz")
    grid.add_row(
        "Events",
        Text(
            f"{fmt_value(rate_in, '{:.2f}')} Hz in, {fmt_value(rate_out, '{:.2f}')} Hz analysed",
            style=dim,
        ),
        "Processed",
        Text(f"{fmt_value(h.get('events_processed'))}/{fmt_value(h.get('events_in'))}", style=dim),
    )
    p50, p99 = h.get("latency_ms_p50"), h.get("latency_ms_p99")
    lag = f"{fmt_value(p50, '{:.0f}')}/{fmt_value(p99, '{:.0f}')} ms (p50/p99)"
    dropped = int(_number(h.get("events_dropped")))
    drops = h.get("drops") if isinstance(h.get("drops"), dict) else {}
    other = int(sum(_number(v) for k, v in drops.items() if k != "queue_full"))
    drop_text = Text(f"{dropped} events", style=dim or ("bold red" if dropped else ""))
    if other:
        drop_text.append(f" +{other} msgs", style=dim or "yellow")
    grid.add_row("Lag", Text(lag, style=dim), "Drops", drop_text)
    counts = st.alarm_counts()
    alarms = Text()
    for sev in reversed(SEVERITIES):
        n = counts.get(sev, 0)
        alarms.append(f"{sev} {n}", style=(SEVERITY_STYLE[sev] if n else "dim"))
        alarms.append("  ")
    src = h.get("source_state")
    grid.add_row("Alarms", alarms, "Source", Text(str(src or "-"), style=dim))
    return grid


def verdict(ctx: ViewContext) -> Text:
    """One line answering "is the detector healthy and the data good?"."""
    st = ctx.state
    if not ctx.connected:
        return Text(" NOT LIVE  no contact with the monitor daemon ", style="bold white on grey30")
    # One summary for every view (issue 12): acknowledged-but-active alarms
    # count; the verdict names the most severe one and its message.
    summary = summarize(st.alarms.values())
    level = summary.level
    if level == "alarm":
        return Text(f" ALARM  {summary.verdict()}: see tab 6 ", style="bold white on red")
    running = st.run.get("state") == "running"
    if running:
        rows = key_rows(st, KEY_METRICS[0], limit=1)
        if rows and ctx.stale(rows[0][0], rows[0][2]):
            age = fmt_age(ctx.now - field_time_ns(st, rows[0][0], rows[0][2]) / 1e9)
            return Text(
                f" NO DATA  no trigger events for {age} during a run ", style="bold black on yellow"
            )
    if level == "warning":
        return Text(f" WARNING  {summary.verdict()}: see tab 6 ", style="bold black on yellow")
    what = "running, data flowing" if running else "no run in progress"
    return Text(f" OK  {what}; no alarm needs attention ", style="bold black on green")


def key_metrics_table(ctx: ViewContext, width: int) -> Table:
    st = ctx.state
    spark_w = max(8, min(60, width - 44))
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold dim", expand=False)
    table.add_column("Key metric", no_wrap=True, max_width=22)
    table.add_column("Value", justify="right", no_wrap=True, min_width=9)
    table.add_column("Age", justify="right", no_wrap=True)
    table.add_column("Trend", no_wrap=True)
    shown = 0
    for km in KEY_METRICS:
        rows = key_rows(st, km, limit=2)
        for sid, rec, fld in rows:
            stale = ctx.stale(sid, fld)
            style = STALE if stale else ""
            label = km.label
            extra = tag_suffix(rec.tags)
            if extra and len(rows) > 1:
                label = f"{label} {extra}"
            unit = unit_of(st, sid, fld)
            value = fmt_value(series_fields(st, sid).get(fld), km.fmt) + (
                f" {unit}" if unit else ""
            )
            age = fmt_age(ctx.now - field_time_ns(st, sid, fld) / 1e9)
            spark = sparkline(history_values(st, sid, fld), spark_w)
            table.add_row(
                Text(label, style=style),
                Text(value, style=style or "bold"),
                Text(age, style=STALE if stale else "dim"),
                Text(spark, style=STALE if stale else "green"),
            )
            shown += 1
    if not shown:
        table.add_row(Text("waiting for metrics...", style="dim"), "", "", "")
    return table


class OverviewPanel(Panel):
    DEFAULT_CSS = """
    OverviewPanel #ov-summary { height: auto; padding: 0 1; }
    OverviewPanel #ov-verdict { height: 1; padding: 0 1; }
    OverviewPanel #ov-metrics { height: auto; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-overview")
        self._key: tuple | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="ov-scroll"):
            yield Static(id="ov-verdict")
            yield Static(id="ov-summary")
            yield Static(id="ov-metrics")

    def focus_target(self) -> object | None:
        return self.query_one("#ov-scroll")

    def update_view(self, ctx: ViewContext) -> None:
        # Run time ticks every second; everything else changes with seq.
        key = (ctx.state.seq, int(ctx.now), ctx.connected, self.size.width)
        if key == self._key:
            return
        self._key = key
        self.query_one("#ov-verdict", Static).update(verdict(ctx))
        self.query_one("#ov-summary", Static).update(run_summary(ctx))
        self.query_one("#ov-metrics", Static).update(key_metrics_table(ctx, self.size.width))
