"""Tab 1: the shifter's questions answered at a glance.

At 80x24, in a data run, without scrolling: is it healthy (the verdict names
the worst alarm), is it taking data (run, state, rates), is the 55Fe peak
where it should be, are the pedestal boxes on the map, are the PMTs alive,
gas pressure and temperature, camera temperature; then as many trends as fit.
Wider than :data:`WIDE` columns the answers, the alarm list and the recent
log sit on the left and the trends on the right, so a 200x60 terminal is
filled, not two thirds empty.
"""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from cygno_online.publish.state import AlarmRecord
from cygno_online.tui import answers
from cygno_online.tui.alarmview import STATE_SHORT, AlarmSummary, alarm_state, summarize
from cygno_online.tui.keymetrics import (
    KEY_METRICS,
    KeyMetric,
    cameras,
    field_time_ns,
    fmt_age,
    fmt_age_coarse,
    fmt_duration,
    fmt_value,
    history_values,
    key_rows,
    numeric,
    series_fields,
    tag_suffix,
    unit_of,
)
from cygno_online.tui.screens.base import Panel, ViewContext
from cygno_online.tui.widgets.difftext import DiffText
from cygno_online.tui.widgets.sparkline import outlier_marks, sparkline

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "error": "bold red",
    "warning": "bold yellow",
    "info": "cyan",
}
STATE_STYLE = {"running": "bold green", "stopped": "bold yellow", "paused": "bold yellow"}
STATUS_STYLE = {"ok": "bold green", "warn": "bold yellow", "bad": "bold red", "unknown": "dim"}
STALE = "grey50"
#: from this width on, two columns
WIDE = 150
#: the trends below the answers (those the answers already show are left out
#: at 80 columns, shown on the right when wide)
#: the answers and trends are rebuilt from new data at most this often
DATA_EVERY_S = 1.0

TRENDS = (
    "Trigger rate",
    "Events analysed",
    "DAQ lag",
    "Clusters/image",
    "55Fe/image",
    "Pixels over thr.",
    "Image mean",
    "Image RMS",
    "PMT multiplicity",
    "55Fe integral",
    "LIME pressure",
    "Gas temp.",
    "Camera temp.",
)


def fmt_fraction(x: float) -> str:
    """A fraction as a percentage with two significant digits (0.03%, 12%)."""
    if x == 0:
        return "0%"
    pct = 100 * x
    return f"{pct:.2g}%" if pct < 10 else f"{pct:.0f}%"


def _number(v: object) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


# -- fast fixed-width columns (Rich tables cost ~20 ms per render) -------------
def columns(
    rows: list[list[Text]], justify: str, header: list[str] | None = None, gap: int = 2
) -> Text:
    """Rows of cells as one Text with aligned columns; ``justify`` has one
    letter per column, ``l`` or ``r``."""
    ncol = len(justify)
    widths = [0] * ncol
    for row in ([[Text(h) for h in header]] if header else []) + rows:
        for i, cell in enumerate(row[:ncol]):
            widths[i] = max(widths[i], cell.cell_len)
    out = Text(no_wrap=True, overflow="ellipsis")
    lines = []
    if header:
        lines.append([Text(h, style="bold dim") for h in header])
    lines.extend(rows)
    for k, row in enumerate(lines):
        if k:
            out.append("\n")
        for i, cell in enumerate(row[:ncol]):
            pad = widths[i] - cell.cell_len
            if i:
                out.append(" " * gap)
            if justify[i] == "r":
                out.append(" " * pad)
                out.append_text(cell)
            else:
                out.append_text(cell)
                if i < ncol - 1:
                    out.append(" " * pad)
    return out


# -- verdict ------------------------------------------------------------------------------
def verdict(ctx: ViewContext, summary: AlarmSummary | None = None, width: int = 80) -> Text:
    """One line answering "is the detector healthy and the data good?",
    naming the worst alarm."""
    st = ctx.state
    room = max(20, width - 2)
    if not ctx.connected:
        return Text(
            " NOT LIVE  values are the last received; alarms unknown "[:room],
            style="bold white on grey30",
        )
    summary = summary or summarize(st)
    worst = summary.worst
    running = st.run.get("state") == "running"
    if worst is not None and worst.severity in ("critical", "error") and _is_active(worst):
        return _alarm_line(" ALARM ", worst, summary, ctx, room, "bold white on red")
    if running:
        rows = key_rows(st, KEY_METRICS[0], limit=1)
        if rows and ctx.stale(rows[0][0], rows[0][2]):
            age = fmt_age(ctx.now - field_time_ns(st, rows[0][0], rows[0][2]) / 1e9)
            return Text(
                f" NO DATA  no trigger events for {age} during a run "[:room],
                style="bold black on yellow",
            )
    if worst is not None and _is_active(worst):
        return _alarm_line(" WARNING ", worst, summary, ctx, room, "bold black on yellow")
    if worst is not None:
        return _alarm_line(" CHECK ", worst, summary, ctx, room, "bold black on yellow")
    what = "running, data flowing" if running else "no run in progress"
    return Text(f" OK  {what}; no alarm needs attention "[:room], style="bold black on green")


def _is_active(rec: AlarmRecord) -> bool:
    return alarm_state(rec).startswith("active")


def _alarm_line(
    head: str, worst: AlarmRecord, summary: AlarmSummary, ctx: ViewContext, room: int, style: str
) -> Text:
    state = STATE_SHORT.get(alarm_state(worst), worst.state)
    since = worst.raised_ns if _is_active(worst) else (worst.cleared_ns or worst.raised_ns)
    age = f" {fmt_age(ctx.now - since / 1e9)}" if since else ""
    others = len([a for a in ctx.state.alarms.values() if alarm_state(a) != "normal"]) - 1
    more = f" +{others} more" if others > 0 else ""
    name = worst.name or worst.id
    if worst.message and worst.message != name:
        # the worst alarm's message, e.g. "LIME pressure 0.95 bar outside ..."
        name = f"{name}: {worst.message}" if not worst.message.startswith(name) else worst.message
    tail = f" ({worst.severity}, {state}{age}){more} tab 6 "
    body = f"{head} {name}"
    if len(body) + len(tail) > room:
        body = body[: max(len(head) + 4, room - len(tail) - 1)] + "…"
    t = Text(body + tail[: max(0, room - len(body))], style=style)
    return t


# -- the answers --------------------------------------------------------------------------
def _style(status: str, stale: bool) -> str:
    return STALE if stale else STATUS_STYLE.get(status, "")


def run_line(ctx: ViewContext) -> Text:
    st = ctx.state
    run = st.run
    dim = "" if ctx.connected else STALE
    state = str(run.get("state", "waiting")) if run else "no run yet"
    t = Text("Run   ", style="bold")
    t.append(f"{run.get('run', '-')} ", style=dim or "bold")
    t.append(state.upper(), style=dim or STATE_STYLE.get(state, ""))
    if run.get("pedestal"):
        t.append(" PEDESTAL", style=dim or "bold cyan")
    start = _number(run.get("start_time_ns"))
    stop = _number(run.get("stop_time_ns"))
    if start:
        end = stop / 1e9 if stop and state != "running" else ctx.now
        t.append(f" {fmt_duration(end - start / 1e9)}", style=dim)
    exposure = run.get("exposure_s")
    if isinstance(exposure, (int, float)) and exposure:
        t.append(f"  exp {exposure:g} s", style=dim or "dim")
    desc = str(run.get("description") or "")
    if desc:
        t.append(f"  {desc}", style=dim)
    t.no_wrap = True
    t.overflow = "ellipsis"
    return t


def data_line(ctx: ViewContext) -> Text:
    st = ctx.state
    h = st.health
    dim = "" if ctx.connected else STALE
    t = Text("Data  ", style="bold")
    trig = key_rows(st, KEY_METRICS[0], limit=1)
    if trig:
        sid, _rec, fld = trig[0]
        v = series_fields(st, sid).get(fld)
        stale = ctx.stale(sid, fld)
        t.append(f"trigger {fmt_value(v, '{:.2f}')} Hz", style=STALE if stale else "bold")
        t.append("  ")
    # every MIDAS event analysed (slow control too), not only triggers: next
    # to "trigger" it had read as a frame rate above the trigger rate
    t.append(f"events {fmt_value(h.get('rate_processed_hz'), '{:.2f}')} Hz", style=dim)
    p50 = h.get("latency_ms_p50")
    if isinstance(p50, (int, float)):
        t.append(f"  latency {p50:.0f} ms", style=dim)
    dropped = int(_number(h.get("events_dropped")))
    seen = _number(h.get("events_in"))
    frac = f" ({fmt_fraction(dropped / seen)})" if seen else ""
    t.append("  dropped ", style=dim)
    t.append(f"{dropped}{frac}", style=dim or ("bold red" if dropped else ""))
    drops = h.get("drops") if isinstance(h.get("drops"), dict) else {}
    other = int(sum(_number(v) for k, v in drops.items() if k != "queue_full"))
    if other:
        t.append(f" +{other} msgs", style=dim or "yellow")
    t.no_wrap = True
    t.overflow = "ellipsis"
    return t


#: cells of the 55Fe gauge: the reference band fills its middle half
GAUGE_W = 11


def band_gauge(value: float, ref: float, tol: float, width: int = GAUGE_W) -> Text:
    """Where ``value`` sits against the band ``ref`` +- ``tol`` (relative):
    ``├──┼─●┤`` with the band in the middle half of the gauge, the value as
    ``●``; off the gauge a red ``◂``/``▸`` at its end. A plot in one line."""
    lo_g, hi_g = ref * (1 - 2 * tol), ref * (1 + 2 * tol)
    span = hi_g - lo_g
    if not span > 0:
        return Text("")

    def col(v: float) -> int:
        return round((v - lo_g) / span * (width - 1))

    cells = [" "] * width
    a, b = col(ref * (1 - tol)), col(ref * (1 + tol))
    for c in range(a, b + 1):
        cells[c] = "─"
    cells[a], cells[b], cells[col(ref)] = "├", "┤", "┼"
    t = Text("".join(cells), style="dim")
    inside = ref * (1 - tol) <= value <= ref * (1 + tol)
    style = "bold green" if inside else "bold red"
    c = col(value)
    if not inside and a <= c <= b:  # rounded onto the band: one cell out, as it is
        c = b + 1 if value > ref else a - 1
    elif inside:
        c = min(max(c, a), b)
    if c < 0:
        t = Text("◂", style=style) + t[1:]
    elif c >= width:
        t = t[:-1] + Text("▸", style=style)
    else:
        t = t[:c] + Text("●", style=style) + t[c + 1 :]
    return t


def fe55_line(ctx: ViewContext, cam: str | None) -> Text:
    a = answers.fe55(ctx.state, ctx.expect, cam)
    stale = not ctx.connected
    t = Text("55Fe  ", style="bold")
    if a.peak is None:
        t.append(a.text, style="dim")
    else:
        t.append(f"peak {a.peak:.0f} ADU", style=STALE if stale else "bold")
        if a.sigma:
            t.append(f" σ {a.sigma:.0f}", style=STALE if stale else "")  # noqa: RUF001
        what = "clusters" if a.where != "per-image mean" else "images"
        t.append(f", {a.entries} {what}", style="dim")
        if a.band is not None and a.reference is not None:
            t.append(f"  ref {a.reference:.0f} ±{ctx.expect.fe55_tolerance:.0%}", style="dim")
            if ctx.expect.fe55_from:
                t.append(f" {ctx.expect.fe55_from}", style="dim")
            # "+19% off" -> "OFF +19%": the verdict first, the gauge after it
            # (a narrow terminal cuts the gauge, not the verdict)
            mark = "OK" if a.status == "ok" else f"OFF {a.text.removesuffix(' off')}"
            t.append(f"  {mark}", style=_style(a.status, stale))
            gauge = band_gauge(a.peak, a.reference, ctx.expect.fe55_tolerance)
            if stale:
                gauge.stylize(STALE)
            t.append(" ")
            t.append_text(gauge)
        else:
            t.append(f"  {a.text}", style="dim")
    t.no_wrap = True
    t.overflow = "ellipsis"
    return t


def boxes_block(ctx: ViewContext, cam: str | None) -> Text:
    a = answers.pedestal_check(ctx.state, cam, ctx.expect.pedestal_k_sigma)
    stale = not ctx.connected
    heads = ("Ped.", "boxes", "ADU")
    notes = _boxes_notes(a, ctx, cam)
    rows = []
    for r in range(3):
        cells = [Text(heads[r], style="bold" if r < 2 else "dim")]
        for c in range(3):
            i = 3 * r + c
            if i >= len(a.boxes) or math.isnan(a.boxes[i][0]):
                cells.append(Text("-", style="dim"))
                continue
            cells.append(box_cell(*a.boxes[i], stale))
        cells.append(notes[r])
        rows.append(cells)
    return columns(rows, "lrrrl", gap=1)


def box_cell(off: float, rms: float, flag: str, stale: bool) -> Text:
    """One pedestal box as offset±RMS: ``!`` in red when off or noisy,
    ``~`` dimmed when a cluster's light moved it this frame (not a flag)."""
    txt = f"{off:+.1f}±{rms:.1f}" if rms < 10 else f"{off:+.0f}±{rms:.0f}"
    if flag == "light":
        return Text("~" + txt, style=STALE if stale else "dim")
    if flag:
        return Text("!" + txt, style=STALE if stale else "bold red")
    return Text(txt, style=STALE if stale else "")


def _boxes_notes(a: answers.BoxesAnswer, ctx: ViewContext, cam: str | None) -> list[Text]:
    stale = not ctx.connected
    if not a.boxes:
        return [Text(a.text or "no camera yet", style="dim"), Text(""), Text("")]
    first = Text(a.text, style=_style(a.status, stale))
    second = Text(f"vs {a.against}", style="dim")
    if a.sigma is not None:
        second.append(f", σ {a.sigma:.1f}, k {a.k:g}", style="dim")  # noqa: RUF001
    third = Text("")
    if cam is not None:
        from cygno_online.tui.keymetrics import camera_fields

        f = camera_fields(ctx.state, cam)
        age = f.get("pedestal_age_days")
        if isinstance(age, (int, float)) and not isinstance(age, bool):
            old = bool(f.get("pedestal_too_old"))
            third = Text(f"map age {fmt_age(age * 86400)}", style="bold red" if old else "dim")
            if f.get("pedestal_map_run") is not None:
                third.append(f" (run {f['pedestal_map_run']})", style="dim")
    return [first, second, third]


def pmt_line(ctx: ViewContext, width: int) -> Text:
    chans = answers.pmt_channels(ctx.state, ctx.now)
    t = Text("PMT   ", style="bold")
    if not chans:
        t.append("no PMT channels published", style="dim")
        return t
    boards = {c.board for c in chans}
    n_ok = sum(c.state == "ok" for c in chans)
    style = {"ok": "green", "silent": "bold red", "saturated": "bold yellow", "flat": "bold red"}
    # many channels (several boards): name only those that are not ok
    listed = chans if len(chans) <= 6 else [c for c in chans if c.state != "ok"][:6]
    for c in listed:
        # "b0 ch5", not "0/5": that reads as a fraction next to "8/11 alive"
        name = f"b{c.board} ch{c.channel}" if len(boards) > 1 else f"ch{c.channel}"
        s = STALE if not ctx.connected or c.state == "stale" else style.get(c.state, "")
        t.append(f"{name} ", style="")
        t.append(c.state if c.state != "ok" else "ok", style=s)
        t.append("  ")
    where = f" ({len(boards)} boards)" if len(boards) > 1 else ""
    t.append(f"{n_ok}/{len(chans)} alive{where}", style=STALE if not ctx.connected else "bold")
    mult = key_rows(ctx.state, next(k for k in KEY_METRICS if k.label == "PMT multiplicity"), 1)
    if mult:
        v = series_fields(ctx.state, mult[0][0]).get(mult[0][2])
        t.append(f"  mult {fmt_value(v, '{:.2g}')}", style="dim")
    t.no_wrap = True
    t.overflow = "ellipsis"
    return t


def ref_line(ctx: ViewContext) -> Text | None:
    """The run-quality reference checks, when the daemon publishes them."""
    a = answers.reference_checks(ctx.state)
    if a is None:
        return None
    stale = not ctx.connected
    t = Text("Ref.  ", style="bold")
    t.append(a.verdict or "checks", style=_style(a.status, stale))
    if a.reference_run is not None:
        t.append(f" vs run {a.reference_run}", style="dim")
    n = sum(a.counts.values())
    parts = ", ".join(f"{v} {k}" for k, v in sorted(a.counts.items()))
    t.append(f"  {n} checks: {parts}", style="dim")
    if a.worst:
        check, status, _reason = a.worst[0]
        t.append(f"  {status}: {check}", style=STALE if stale else "bold yellow")
    t.no_wrap = True
    t.overflow = "ellipsis"
    return t


def env_line(ctx: ViewContext) -> Text:
    t = Text("Gas   ", style="bold")
    for label, short, fmt in (
        ("LIME pressure", "P", "{:.4g}"),
        ("Gas temp.", "T", "{:.1f}"),
        ("Camera temp.", "camera T", "{:.1f}"),
    ):
        r = answers.reading(ctx.state, label, ctx.limits, ctx.now)
        stale = not ctx.connected or r.stale
        t.append(f"{short} ", style="")
        if r.value is None:
            t.append("-", style="dim")
        else:
            unit = _unit(r.unit)
            t.append(f"{fmt.format(r.value)}{unit}", style=STALE if stale else "bold")
            if r.status == "bad":
                t.append(f" {r.text}", style=STALE if stale else "bold red")
            if r.limits:
                t.append(f" ({r.limits})", style="dim")
            if stale and r.age_s is not None:
                t.append(f" {fmt_age(r.age_s)} old", style=STALE)
        t.append("   ")
    t.no_wrap = True
    t.overflow = "ellipsis"
    return t


def _unit(u: str) -> str:
    if not u:
        return ""
    return {"C": " °C", "degC": " °C", "deg C": " °C"}.get(u, f" {u}")


# -- trends -------------------------------------------------------------------------------
def trends_table(ctx: ViewContext, width: int, max_rows: int, labels=TRENDS) -> Text:
    st = ctx.state
    wide = width >= 70
    spark_w = max(8, min(120, width - (58 if wide else 42)))
    header = (
        ["Metric", "Now", "Age"] + (["Range"] if wide else []) + [f"Trend, last {spark_w} points"]
    )
    rows: list[list[Text]] = []
    by_label = {k.label: k for k in KEY_METRICS}
    for label in labels:
        km: KeyMetric | None = by_label.get(label)
        if km is None:
            continue
        found = key_rows(st, km, limit=2)
        for sid, rec, fld in found:
            if len(rows) >= max_rows:
                break
            stale = ctx.stale(sid, fld)
            style = STALE if stale else ""
            name = km.label
            extra = tag_suffix(rec.tags)
            if extra and len(found) > 1:
                name = f"{name} {extra}"
            unit = unit_of(st, sid, fld)
            value = km.show(series_fields(st, sid).get(fld), _unit(unit).strip())
            age = fmt_age_coarse(ctx.now - field_time_ns(st, sid, fld) / 1e9)
            vals = history_values(st, sid, fld)
            cells = [
                Text(name[:22], style=style),
                Text(value, style=style or "bold"),
                Text(age, style=STALE if stale else "dim"),
            ]
            shown_vals = numeric(vals[-spark_w:])
            lo_t = _bare(km, min(shown_vals)) if shown_vals else ""
            hi_t = _bare(km, max(shown_vals)) if shown_vals else ""
            if wide:
                cells.append(Text(f"{lo_t}..{hi_t}" if shown_vals else "", style="dim"))
            if shown_vals and lo_t == hi_t:
                # changes below the shown precision: a flat line, not magnified noise
                vals = [shown_vals[0]] * len(shown_vals)
            band = ctx.expect.fe55_band() if km.label == "55Fe integral" else None
            if band is None:
                cells.append(_spark(vals, spark_w, stale))
            else:
                cells.append(_banded_spark(vals, spark_w, band, stale))
            rows.append(cells)
    if not rows:
        return Text("waiting for metrics...", style="dim")
    return columns(rows, "lrrrl" if wide else "lrrl", header, gap=2)


def _spark(vals: list, width: int, stale: bool) -> Text:
    """A sparkline, its isolated outliers (``▲``/``▼``: drawn outside the
    scale, e.g. a spark frame) in yellow so the eye finds them."""
    t = Text(sparkline(vals, width), style=STALE if stale else "green")
    if not stale:
        for i in outlier_marks(t.plain):
            t.stylize("bold yellow", i, i + 1)
    return t


def _banded_spark(vals: list, width: int, band: tuple[float, float], stale: bool) -> Text:
    """A sparkline on a scale that includes the reference band, points
    outside the band in yellow: the trend against where it should be."""
    shown = numeric(vals[-width:])
    t = Text(sparkline(shown, width, include=band), style=STALE if stale else "green")
    if not stale:
        for i, v in enumerate(shown):
            if not band[0] <= v <= band[1]:
                t.stylize("bold yellow", i, i + 1)
    return t


# -- wide extras --------------------------------------------------------------------------
def alarms_block(ctx: ViewContext, rows: int, width: int) -> Table | Text:
    recs = [a for a in ctx.state.alarms.values() if alarm_state(a) != "normal"]
    if not recs:
        return Text(
            "Alarms: none active or unacknowledged", style=STALE if not ctx.connected else "green"
        )
    order = {"critical": 0, "error": 1, "warning": 2, "info": 3}
    recs.sort(key=lambda a: (order.get(a.severity, 9), -a.raised_ns))
    t = Table(box=None, padding=(0, 1), show_header=True, header_style="bold dim")
    t.add_column("Alarm", no_wrap=True, max_width=28)
    t.add_column("Severity", no_wrap=True)
    t.add_column("State", no_wrap=True)
    t.add_column("Since", justify="right", no_wrap=True)
    t.add_column("Message", no_wrap=True, overflow="ellipsis", max_width=max(10, width - 54))
    for a in recs[:rows]:
        st = alarm_state(a)
        style = STALE if not ctx.connected else SEVERITY_STYLE.get(a.severity, "")
        since = a.raised_ns if st.startswith("active") else (a.cleared_ns or a.raised_ns)
        t.add_row(
            Text(a.name or a.id, style=style),
            Text(a.severity, style=style),
            Text(STATE_SHORT.get(st, st), style="" if ctx.connected else STALE),
            Text(fmt_age(ctx.now - since / 1e9) if since else "-", style="dim"),
            Text(a.message or "", style="dim"),
        )
    return t


def log_block(ctx: ViewContext, rows: int) -> Text:
    import datetime as dt

    lines = list(ctx.state.log)[-rows:]
    t = Text()
    t.append("Recent log\n", style="bold dim")
    style = {"error": "bold red", "warning": "yellow", "critical": "bold white on red"}
    for r in lines:
        when = dt.datetime.fromtimestamp(r.time_ns / 1e9).strftime("%H:%M:%S")
        t.append(f"{when} ", style="dim")
        t.append(f"{r.text}\n", style=STALE if not ctx.connected else style.get(r.level, ""))
    t.no_wrap = True
    t.overflow = "ellipsis"
    return t


class OverviewPanel(Panel):
    DEFAULT_CSS = """
    OverviewPanel #ov-body { height: 1fr; }
    OverviewPanel #ov-left { width: 1fr; height: 1fr; padding: 0 1; }
    OverviewPanel #ov-right { display: none; width: 1fr; height: 1fr; padding: 0 1; }
    OverviewPanel.-wide #ov-left { width: 82; }
    OverviewPanel.-wide #ov-right { display: block; }
    OverviewPanel #ov-verdict { height: 1; }
    OverviewPanel #ov-answers { height: auto; }
    OverviewPanel #ov-below { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-overview")
        self._key: tuple | None = None
        self._answers: list = []
        self._answers_key: tuple | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="ov-body"):
            with Vertical(id="ov-left"):
                yield DiffText(id="ov-verdict")
                yield DiffText(id="ov-answers")
                yield DiffText(id="ov-below")
            yield DiffText(id="ov-right")

    def focus_target(self) -> object | None:
        return None

    def update_view(self, ctx: ViewContext) -> None:
        # The run time and the verdict's ages tick every second; the other
        # answers change with the data (seq); the trends' ages every 10 s.
        width, height = self.size.width, self.size.height
        view = (ctx.connected, width, height, id(ctx.expect), id(ctx.limits))
        key = (ctx.state.seq, int(ctx.now), *view)
        if key == self._key:
            return
        self._key = key
        wide = width >= WIDE
        self.set_class(wide, "-wide")
        left_w = 80 if wide else max(20, width - 2)
        summary = summarize(ctx.state)
        cams = cameras(ctx.state)
        cam = ctx.camera if ctx.camera in cams else (cams[0] if cams else None)
        self.query_one("#ov-verdict", DiffText).update(verdict(ctx, summary, left_w + 2))
        # the answers and the trends follow the data at most once a second
        # (messages arrive at ~35/s: every poll would rebuild them), a change of
        # the view (link, size, references) at once
        if self._due("answers", (ctx.state.seq,), view, ctx.now, DATA_EVERY_S):
            ref = ref_line(ctx)
            self._answers = [
                data_line(ctx),
                fe55_line(ctx, cam),
                boxes_block(ctx, cam),
                pmt_line(ctx, left_w),
                env_line(ctx),
                *([ref] if ref is not None else []),
            ]
        run = run_line(ctx)
        answers_key = (id(self._answers), run.plain, tuple(map(str, run.spans)))
        if answers_key != self._answers_key:  # the run time ticks once a second
            self._answers_key = answers_key
            self.query_one("#ov-answers", DiffText).update(Group(run, *self._answers))
        if not self._due(
            "below", (ctx.state.seq,), (int(ctx.now // 10), *view), ctx.now, DATA_EVERY_S
        ):
            return
        used = 1 + 1 + len(self._answers) + 2  # verdict, run line, answers (boxes: 3)
        below = max(1, height - used)
        if wide:
            n_alarms = min(8, max(1, below // 3))
            left_below = Group(
                Text(""),
                alarms_block(ctx, n_alarms, left_w),
                Text(""),
                log_block(ctx, max(1, below - n_alarms - 4)),
            )
            self.query_one("#ov-below", DiffText).update(left_below)
            self.query_one("#ov-right", DiffText).update(
                trends_table(ctx, width - left_w - 4, max(1, height - 1))
            )
        else:
            self.query_one("#ov-below", DiffText).update(
                trends_table(ctx, left_w, max(1, below - 1))
            )


def _bare(km: KeyMetric, v: float) -> str:
    return fmt_value(v * km.scale if km.scale != 1.0 else v, km.fmt)
