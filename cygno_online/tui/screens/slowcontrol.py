"""Tab 5: every slow-control variable with value, unit, limits and trend.

Rows are grouped by equipment (environment, HV channel, gas, camera, DAQ),
physical quantities first; raw channels (unconverted 4-20 mA inputs such as
``p1uin7``) are hidden behind a toggle (``w``). Limits come from the daemon's
alarm rules.

DataTable is slow with many cells, so the table is rebuilt only when its rows
or their order change (at most once a second); otherwise only the cells whose
text changed are updated.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Input, Static

from cygno_online.tui.keymetrics import (
    SLOW_EXTRA_FAMILIES,
    SLOW_EXTRA_FIELD,
    SLOW_FAMILIES,
    field_time_ns,
    fmt_age_coarse,
    fmt_value,
    history_values,
    series_fields,
    tag_suffix,
    unit_of,
)
from cygno_online.tui.screens.base import Panel, ViewContext
from cygno_online.tui.widgets.sparkline import sparkline

SORTS = ("equipment", "value", "age", "alarm")
#: raw channels: unconverted ODB inputs (P0IIn0 -> p0iin0, ch7) and raw currents
RAW_FIELD = re.compile(r"^(p\d+[a-z]*in\d+(_out)?|ch\d+|.*_raw)$", re.IGNORECASE)
RAW_UNITS = ("mA", "ma", "ADC", "adc", "counts")
#: within an HV channel: what it does before what it was asked
FIELD_FIRST = {"measured": 0, "current": 1, "demand": 2}
PRETTY_UNITS = {"C": "°C", "degC": "°C", "deg C": "°C", "uA": "µA"}
#: equipment order: what a shifter looks at first
GROUP_ORDER = ("environment", "hv", "gas", "camera", "daq")
TREND_WIDTH = 12
#: (key, label, width): values change in place (update_cell does not resize
#: columns), so every column but the name has a fixed width
COLUMNS = (
    ("group", "Equipment", 13),
    ("name", "Variable", None),
    ("value", "Value", 10),
    ("unit", "Unit", 7),
    ("age", "Age", 5),
    ("limits", "Limits", 11),
    ("trend", "Trend", TREND_WIDTH),
)
SEVERITY_RANK = {"critical": 4, "error": 3, "warning": 2, "info": 1}
ALARM_STYLE = {
    "critical": "bold white on red",
    "error": "bold red",
    "warning": "bold yellow",
    "info": "cyan",
}
REBUILD_MIN_S = 1.0


@dataclass(slots=True)
class Row:
    key: str
    group: str
    name: str
    value: object
    unit: str
    limits: str
    trend: str
    age_s: float
    alarm: int  # 0 ok, 1 out of limits / pending, >=2 active severity rank + 1
    style: str
    raw: bool = False
    order: tuple = ()

    def cells(self, now_age: str) -> tuple[Text, ...]:
        s = self.style
        # in COLUMNS order
        return (
            Text(self.group, style=s or "bold"),
            Text(self.name, style=s),
            Text(fmt_value(self.value), style=s or "bold", justify="right"),
            Text(self.unit, style=s or "dim"),
            Text(now_age, style=s if s else "dim", justify="right"),
            Text(self.limits, style=s or "dim"),
            Text(self.trend, style=s or "green"),
        )


_TRENDS: dict[tuple[str, str], tuple[object, str]] = {}


def trend(state, sid: str, field: str) -> str:
    """Sparkline of a field, recomputed only when a point was added (the gas
    system alone has ~330 fields)."""
    pts = state.history.get(sid, {}).get(field)
    last = pts[-1] if pts else None
    cached = _TRENDS.get((sid, field))
    if cached is not None and cached[0] is last:
        return cached[1]
    text = sparkline(history_values(state, sid, field)[-TREND_WIDTH:], TREND_WIDTH)
    _TRENDS[(sid, field)] = (last, text)
    return text


def is_raw(family: str, field: str, unit: str) -> bool:
    """An unconverted channel (a raw 4-20 mA current, an ODB input name)."""
    return bool(RAW_FIELD.match(field)) or (family == "environment" and unit in RAW_UNITS)


def group_of(family: str, tags: dict[str, str]) -> str:
    if family == "hv":
        return f"HV {tags.get('channel', '')}".strip()
    if family == "camera":
        return f"camera {tags.get('camera', '')}".strip()
    if family == "environment" and tags.get("equipment"):
        return tags["equipment"]
    if family == "daq":
        return "DAQ"
    return family


def collect_rows(ctx: ViewContext) -> list[Row]:
    st = ctx.state
    rows = []
    for sid, rec in st.series.items():
        if rec.family not in SLOW_FAMILIES and rec.family not in SLOW_EXTRA_FAMILIES:
            continue
        values = series_fields(st, sid)
        numeric = {
            f: v
            for f, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if rec.family not in SLOW_FAMILIES:
            numeric = {f: v for f, v in numeric.items() if SLOW_EXTRA_FIELD.search(f)}
        for f, value in numeric.items():
            stale = ctx.stale(sid, f)
            limits = [lim for lim in ctx.limits if lim.matches(rec.family, rec.tags, f)]
            alarm = 0
            style = ""
            for lim in limits:
                if (lim.low is not None and value < lim.low) or (
                    lim.high is not None and value > lim.high
                ):
                    alarm = max(alarm, 1)
                a = st.alarms.get(lim.alarm_id(rec.tags))
                if a is not None and a.state in ("active_unack", "active_ack"):
                    alarm = max(alarm, SEVERITY_RANK.get(a.severity, 1) + 1)
                elif a is not None and (a.pending or a.state == "cleared_unack"):
                    alarm = max(alarm, 1)
            if alarm >= 2:
                sev = next(k for k, v in SEVERITY_RANK.items() if v == alarm - 1)
                style = ALARM_STYLE[sev]
            elif alarm == 1:
                style = "yellow"
            if stale:
                style = "grey50"
            unit = unit_of(st, sid, f)
            raw = is_raw(rec.family, f, unit)
            group = group_of(rec.family, rec.tags)
            shown_tags = {
                k: v for k, v in rec.tags.items() if k not in ("channel", "camera", "equipment")
            }
            name = " ".join(x for x in (tag_suffix(shown_tags), f) if x)
            fam_rank = GROUP_ORDER.index(rec.family) if rec.family in GROUP_ORDER else 9
            rows.append(
                Row(
                    f"{sid}|{f}",
                    group,
                    name,
                    value,
                    PRETTY_UNITS.get(unit, unit),
                    "  ".join(lim.text() for lim in limits),
                    trend(st, sid, f),
                    ctx.now - field_time_ns(st, sid, f) / 1e9,
                    alarm,
                    style,
                    raw,
                    (fam_rank, group, raw, not unit, FIELD_FIRST.get(f, 9), f),
                )
            )
    return rows


def sort_rows(rows: list[Row], by: str) -> list[Row]:
    if by == "value":
        return sorted(
            rows,
            key=lambda r: (-float(r.value) if isinstance(r.value, (int, float)) else 0, r.name),
        )
    if by == "age":
        return sorted(rows, key=lambda r: (-r.age_s, r.name))
    if by == "alarm":
        return sorted(rows, key=lambda r: (-r.alarm, r.order))
    # by equipment, physical quantities (with a unit) first, raw channels last
    return sorted(rows, key=lambda r: r.order)


class SlowControlPanel(Panel):
    DEFAULT_CSS = """
    SlowControlPanel #sc-title { height: 1; padding: 0 1; }
    SlowControlPanel #sc-filter { display: none; height: 3; }
    SlowControlPanel #sc-filter.-visible { display: block; }
    SlowControlPanel DataTable { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-slow")
        self.sort_index = 0
        self.filter_text = ""
        #: raw channels shown (key w)
        self.show_raw = False
        self._order: list[str] = []
        self._cells: dict[str, tuple[str, ...]] = {}
        self._last_rebuild = -1e9
        self._force = True
        self._key: tuple | None = None

    @property
    def sort_by(self) -> str:
        return SORTS[self.sort_index]

    def compose(self) -> ComposeResult:
        yield Static(id="sc-title")
        yield Input(placeholder="filter (Enter to keep, Esc to clear)", id="sc-filter")
        table = DataTable(id="sc-table", cursor_type="row", zebra_stripes=False)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table

    def focus_target(self) -> object | None:
        return self.query_one(DataTable)

    # -- keys ------------------------------------------------------------------------
    def cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._force = True

    def toggle_raw(self) -> None:
        self.show_raw = not self.show_raw
        self._force = True

    def open_filter(self) -> None:
        inp = self.query_one("#sc-filter", Input)
        inp.add_class("-visible")
        inp.focus()

    def clear_filter(self) -> None:
        inp = self.query_one("#sc-filter", Input)
        inp.value = ""
        inp.remove_class("-visible")
        self.filter_text = ""
        self._force = True
        self.query_one(DataTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._force = True
        self.app.poll_now()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.filter_text:
            event.input.remove_class("-visible")
        self.query_one(DataTable).focus()

    # -- refresh ------------------------------------------------------------------------
    def update_view(self, ctx: ViewContext) -> None:
        # only what the table shows: the slow-control records, the alarm states,
        # and the clock at 1 s (staleness); not every message of other families
        st = ctx.state
        key = (
            tuple(
                r.time_ns
                for r in st.series.values()
                if r.family in SLOW_FAMILIES or r.family in SLOW_EXTRA_FAMILIES
            ),
            tuple((k, a.state, a.pending) for k, a in st.alarms.items()),
            int(ctx.now),
            ctx.connected,
            len(ctx.limits),
        )
        if key == self._key and not self._force:
            return
        self._key = key
        rows = collect_rows(ctx)
        total = len(rows)
        n_raw = sum(r.raw for r in rows)
        if not self.show_raw:
            rows = [r for r in rows if not r.raw]
        if self.filter_text:
            needle = self.filter_text.lower()
            rows = [r for r in rows if needle in f"{r.group} {r.name}".lower()]
        rows = sort_rows(rows, self.sort_by)
        title = Text()
        title.append(f"{len(rows)}/{total} variables", style="bold")
        title.append(f"  sort: {self.sort_by} (s)", style="cyan")
        if n_raw:
            what = "shown" if self.show_raw else "hidden"
            title.append(f"  {n_raw} raw channels {what} (w)", style="dim")
        title.append(
            f"  filter: {self.filter_text!r} (/)" if self.filter_text else "  filter (/)",
            style="dim",
        )
        self.query_one("#sc-title", Static).update(title)
        table = self.query_one(DataTable)
        order = [r.key for r in rows]
        now_mono = time.monotonic()
        if order != self._order:
            if not self._force and now_mono - self._last_rebuild < REBUILD_MIN_S:
                return
            self._rebuild(table, rows)
            self._last_rebuild = now_mono
        else:
            for r in rows:
                cells = r.cells(fmt_age_coarse(r.age_s))
                old = self._cells.get(r.key)
                plain = tuple(c.plain + "\0" + str(c.style) for c in cells)
                if old == plain:
                    continue
                self._cells[r.key] = plain
                for (col, _, _), cell, prev in zip(
                    COLUMNS, cells, old or ("",) * len(cells), strict=False
                ):
                    if cell.plain + "\0" + str(cell.style) != prev:
                        table.update_cell(r.key, col, cell)
        self._force = False

    def _rebuild(self, table: DataTable, rows: list[Row]) -> None:
        cursor = table.cursor_row
        table.clear()
        self._cells.clear()
        for r in rows:
            cells = r.cells(fmt_age_coarse(r.age_s))
            self._cells[r.key] = tuple(c.plain + "\0" + str(c.style) for c in cells)
            table.add_row(*cells, key=r.key)
        self._order = [r.key for r in rows]
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))
