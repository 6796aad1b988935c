"""Tab 7: the last runs' summaries from the daemon, newest first.

One row per run (start, duration, description, events, quality verdict and
flags, 55Fe peak, rates); Enter opens the run's full summary with a
comparison against the previous run of the same kind (data with data,
pedestal with pedestal) or, ``r``, against its reference run: the run its
quality checks used (``reference_run``), else the latest good run of the
same type and exposure. The reference run comes from the snapshot's
summaries when it is one of them, else from the daemon's run registry
(control command ``reference``, asked on a worker thread); the configured
reference values (``summary.references``) are shown beside both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from cygno_online.tui.keymetrics import fmt_age, fmt_duration
from cygno_online.tui.screens.base import Panel, ViewContext

QUALITY_STYLE = {"good": "bold green", "flagged": "bold red"}

#: (label, path in the summary document, registry column, format, unit)
#: compared between runs; a reference run from the registry is a registry row
COMPARED: tuple[tuple[str, str, str, str, str], ...] = (
    ("duration", "duration_s", "duration_s", "{:.0f}", "s"),
    ("events seen", "counters.events_seen", "events_seen", "{:.0f}", ""),
    ("dropped", "counters.drop_fraction", "drop_fraction", "{:.2%}", ""),
    ("trigger rate", "daq.trigger_rate_hz", "trigger_rate_hz", "{:.3g}", "Hz"),
    ("DAQ lag", "daq.lag_mean_s", "", "{:.2f}", "s"),
    ("images", "camera.images", "images", "{:.0f}", ""),
    ("sparks", "camera.spark_fraction", "spark_fraction", "{:.1%}", ""),
    ("cluster rate", "camera.cluster_rate_hz", "cluster_rate_hz", "{:.3g}", "Hz"),
    ("55Fe peak", "camera.fe55_peak", "fe55_peak", "{:.0f}", "ADU"),
    ("55Fe width", "camera.fe55_width", "fe55_sigma", "{:.0f}", "ADU"),
    ("pedestal age", "camera.pedestal_age_days", "", "{:.1f}", "d"),
    ("PMT triggers", "pmt_triggers", "", "{:.0f}", ""),
    ("gas temperature", "environment.gas_temperature.mean", "gas_temperature", "{:.1f}", "°C"),
    ("LIME pressure", "environment.lime_pressure.mean", "lime_pressure", "{:.4f}", "bar"),
)

#: how long the summary screen waits for the daemon's reference lookup
REFERENCE_WAIT_S = 6.0


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


def value_of(doc: dict[str, Any] | None, path: str, column: str) -> float | None:
    """A compared quantity of a summary document or of a registry row."""
    if not doc:
        return None
    v = _num(get_path(doc, path))
    if v is None and column:
        v = _num(doc.get(column))
    return v


def run_kind(doc: dict[str, Any]) -> str:
    """The run type the registry files ``doc`` under (``DATA:Fe``, ``PED``)."""
    from cygno_online.sinks.registry import run_type

    return str(doc.get("run_type") or run_type(doc))


def reference_request(doc: dict[str, Any]) -> dict[str, Any]:
    """The daemon's ``reference`` request for the run of ``doc``."""
    req: dict[str, Any] = {"run": int(doc.get("run") or 0)}
    ref = doc.get("reference_run")
    if isinstance(ref, int) and not isinstance(ref, bool):
        req["reference_run"] = ref
    else:
        req["run_type"] = run_kind(doc)
        exp = _num(doc.get("exposure_s"))
        if exp is not None:
            req["exposure_s"] = exp
    return req


def local_reference(
    summaries: list[dict[str, Any]], doc: dict[str, Any]
) -> tuple[dict[str, Any], str] | None:
    """The reference run of ``doc`` when the snapshot's summaries hold it
    (its ``reference_run``); None: ask the daemon."""
    ref = doc.get("reference_run")
    if isinstance(ref, int) and not isinstance(ref, bool):
        for d in reversed(summaries):
            if d.get("run") == ref and d is not doc:
                return d, f"the run the quality checks of run {doc.get('run')} used"
    return None


def latest_good_local(
    summaries: list[dict[str, Any]], doc: dict[str, Any]
) -> tuple[dict[str, Any] | None, str]:
    """The registry's rule (latest good run before, same type, exposure within
    1 %) applied to the summaries at hand: for a viewer that cannot ask."""
    from cygno_online.sinks.registry import verdict_of

    kind, run, exp = run_kind(doc), doc.get("run") or 0, _num(doc.get("exposure_s"))
    for d in reversed(summaries):
        if d is doc or not isinstance(d.get("run"), int) or d["run"] >= run:
            continue
        e = _num(d.get("exposure_s"))
        same_exp = exp is None or (e is not None and abs(e - exp) <= 0.01 * exp)
        if run_kind(d) == kind and same_exp and (d.get("verdict") or verdict_of(d)) == "good":
            return d, f"the latest good {kind} run before run {run} in this viewer's summaries"
    return None, f"no good {kind} run before run {run} in this viewer's summaries"


def comparison(
    doc: dict[str, Any],
    other: dict[str, Any] | None,
    references: dict[str, Any],
    *,
    other_title: str = "",
) -> Table:
    """This run against ``other`` (the previous or the reference run) and
    the configured reference values."""
    t = Table(box=None, padding=(0, 1), header_style="bold dim")
    t.add_column("quantity", no_wrap=True)
    t.add_column(f"run {doc.get('run')}", justify="right", no_wrap=True)
    t.add_column(other_title or "other: none", justify="right", no_wrap=True)
    t.add_column("change", justify="right", no_wrap=True)
    t.add_column("configured", justify="right", no_wrap=True)
    refs = {"camera.fe55_peak": _num((references or {}).get("fe55_peak"))}
    for label, path, column, fmt, unit in COMPARED:
        v = value_of(doc, path, column)
        p = value_of(other, path, column)
        if v is None and p is None:
            continue
        change = ""
        style = ""
        if unit == "d":  # an age: in s/min/h/d, and no change in % (it grows by itself)
            cells = [fmt_age(x * 86400.0) if x is not None else "-" for x in (v, p)]
            t.add_row(label, cells[0], cells[1], "", "")
            continue
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


def ask_reference(source: Any, req: dict[str, Any], wait_s: float = REFERENCE_WAIT_S) -> tuple:
    """(row or None, how) from the daemon; blocks up to ``wait_s``: call it
    from a worker thread. The daemon answers ``pending`` while its registry
    lookup runs: asked again every 0.3 s."""
    query = getattr(source, "query", None)
    if query is None:
        return None, ""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            reply = query("reference", timeout_s=2.0, **req)
        except Exception as exc:
            return None, f"cannot ask the daemon: {exc}"
        if not isinstance(reply, dict) or not reply.get("ok"):
            err = reply.get("error") if isinstance(reply, dict) else reply
            return None, f"the daemon cannot say: {err}"
        if not reply.get("pending"):
            row = reply.get("reference")
            return (row if isinstance(row, dict) else None), str(reply.get("how") or "")
        if time.monotonic() >= deadline:
            return None, "the daemon's run registry did not answer in time"
        time.sleep(0.3)  # a poll of a remote lookup, not a synchronisation


class RunSummaryScreen(ModalScreen[None]):
    """One run's full summary and its comparison with the previous run or,
    ``r``, with the reference run (Esc closes)."""

    DEFAULT_CSS = """
    RunSummaryScreen { align: center middle; }
    RunSummaryScreen > VerticalScroll { width: 98%; height: 96%; border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,q,enter", "close", "close"),
        Binding("r", "toggle_compare", "previous / reference run"),
    ]

    def __init__(
        self,
        doc: dict[str, Any],
        previous: dict[str, Any] | None,
        *,
        summaries: list[dict[str, Any]] | None = None,
        source: Any = None,
    ) -> None:
        super().__init__()
        self.doc = doc
        self.previous = previous
        self.summaries = list(summaries or [])
        self.source = source
        #: "previous" or "reference": what the comparison shows
        self.mode = "previous"
        #: the reference run: None = not asked yet; (row or None, how)
        self.reference: tuple[dict[str, Any] | None, str] | None = None
        self._asking = False

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._content(), id="run-summary")

    def _content(self) -> Group:
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
        which, other, title = self._other()
        return Group(
            head,
            verdict,
            Text(""),
            which,
            comparison(doc, other, doc.get("references") or {}, other_title=title),
            Text(""),
            body,
        )

    def _other(self) -> tuple[Text, dict[str, Any] | None, str]:
        """The heading saying which run is compared, that run, its column title."""
        kind = "pedestal" if self.doc.get("pedestal") else "data"
        t = Text("Compared with ", style="bold")
        if self.mode == "previous":
            p = self.previous
            if p is None:
                t.append(f"the previous {kind} run: none in the daemon's last summaries")
            else:
                t.append(f"the previous {kind} run, {p.get('run')}", style="bold cyan")
            t.append("   (r: the reference run)", style="dim")
            return t, p, f"previous: run {p.get('run')}" if p else "previous: none"
        if self.reference is None:
            t.append("the reference run: asking the daemon...", style="dim")
            t.append("   (r: the previous run)", style="dim")
            return t, None, "reference: ..."
        row, how = self.reference
        if row is None:
            t.append("the reference run: none", style="bold yellow")
            t.append(f" ({how})" if how else "", style="dim")
        else:
            t.append(f"the reference run, {row.get('run')}", style="bold magenta")
            t.append(f": {how}" if how else "", style="dim")
        t.append("   (r: the previous run)", style="dim")
        return t, row, f"reference: run {row.get('run')}" if row else "reference: none"

    def _show(self) -> None:
        self.query_one("#run-summary", Static).update(self._content())

    def action_toggle_compare(self) -> None:
        self.mode = "reference" if self.mode == "previous" else "previous"
        if self.mode == "reference" and self.reference is None:
            self._find_reference()
        self._show()

    def _find_reference(self) -> None:
        local = local_reference(self.summaries, self.doc)
        if local is not None:
            self.reference = local
            return
        if self._asking:
            return
        self._asking = True
        req = reference_request(self.doc)
        source = self.source

        summaries, doc = self.summaries, self.doc

        def work() -> None:
            got = ask_reference(source, req)
            if got == (None, ""):  # no control socket: the summaries at hand
                got = latest_good_local(summaries, doc)
            with contextlib.suppress(RuntimeError):  # the screen or the app closed
                self.app.call_from_thread(self._set_reference, got)

        self.run_worker(work, thread=True, exclusive=True, group="reference")

    def _set_reference(self, got: tuple[dict[str, Any] | None, str]) -> None:
        self._asking = False
        self.reference = got
        if self.is_attached:
            self._show()

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
            title.append("  Enter: summary vs previous/reference run", style="dim")
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
        self.app.push_screen(
            RunSummaryScreen(
                doc,
                previous_of(self._all, doc),
                summaries=self._all,
                source=getattr(self.app, "source", None),
            )
        )
