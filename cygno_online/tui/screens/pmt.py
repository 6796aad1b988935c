"""Tab 4: PMT waveforms per channel, amplitude and multiplicity spectra, baselines."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Static

from cygno_online.publish.state import series_id
from cygno_online.tui.keymetrics import fmt_value, unit_of
from cygno_online.tui.screens.base import Panel, ViewContext
from cygno_online.tui.widgets.difftext import DiffText
from cygno_online.tui.widgets.histogram import HistogramPlot, axis_label
from cygno_online.tui.widgets.waveform import WaveformPlot

BASELINE_FIELDS = ("baseline", "rms", "amplitude", "npeaks", "charge")
STATE_STYLE = {"ok": "green", "silent": "bold red", "flat": "bold red", "saturated": "bold yellow"}
#: waveforms, spectra and the channel table change with every display or
#: event; redrawn at most this often (a human reads them at 1 Hz at best)
PLOT_EVERY_S = 1.0


def boards(state) -> list[str]:
    out = set()
    for name in state.displays:
        parts = name.split("/")
        if len(parts) >= 3 and parts[0] == "pmt":
            out.add(parts[1])
    for r in state.series.values():
        if r.family == "pmt" and "board" in r.tags:
            out.add(r.tags["board"])
    return sorted(out, key=lambda b: (len(b), b))


def _chan_key(name: str) -> tuple:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 1 << 30, name)


class PmtPanel(Panel):
    DEFAULT_CSS = """
    PmtPanel #pmt-title { height: 1; padding: 0 1; }
    PmtPanel #pmt-waves { grid-size: 2; grid-gutter: 0 2; height: auto; grid-rows: 4; padding: 0 1; }
    PmtPanel WaveformPlot { height: 4; }
    PmtPanel #pmt-hists { height: 9; }
    PmtPanel HistogramPlot { width: 1fr; height: 9; padding: 0 1; }
    PmtPanel #pmt-base { height: auto; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-pmt")
        self.board: str | None = None
        self.mode = "latest"
        self.channel_index = 0
        self._channels: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield DiffText(id="pmt-title")
        with VerticalScroll(id="pmt-scroll"):
            # the per-channel numbers first: at 80x24 with 7 channels a board's
            # waveforms alone fill the screen, and "is every PMT alive" is
            # answered by the numbers
            yield DiffText(id="pmt-base")
            yield Grid(id="pmt-waves")
            with Horizontal(id="pmt-hists"):
                yield HistogramPlot("Amplitude", id="pmt-amp")
                yield HistogramPlot("Multiplicity", id="pmt-mult")

    def focus_target(self) -> object | None:
        return self.query_one("#pmt-scroll")

    def toggle_mode(self) -> None:
        self.mode = "average" if self.mode == "latest" else "latest"
        self._seen.clear()

    def next_channel(self) -> None:
        self.channel_index += 1
        self._seen.clear()

    def update_view(self, ctx: ViewContext) -> None:
        st = ctx.state
        bs = boards(st)
        b = self.board if self.board in bs else (bs[0] if bs else None)
        self.board = b
        waves = st.displays.get(f"pmt/{b}/{self.mode}") if b else None
        chans = tuple(sorted(waves.arrays, key=_chan_key)) if waves is not None else ()
        amp_names = sorted(
            (n for n in st.displays if n.startswith(f"pmt/{b}/amplitude/")), key=_chan_key
        )
        sel = amp_names[self.channel_index % len(amp_names)] if amp_names else None
        title_sig = (b, tuple(bs), self.mode, sel, ctx.connected)
        if self._changed("title", title_sig):
            t = Text()
            t.append(f"board {b or '-'}", style="bold")
            if len(bs) > 1:
                t.append(f" ({len(bs)} boards, n)", style="dim")
            t.append(f"  waveforms: {self.mode} (v)", style="cyan")
            if sel:
                t.append(f"  amplitude: {sel.rsplit('/', 1)[-1]} (h)", style="dim")
            self.query_one("#pmt-title", DiffText).update(t)
        grid = self.query_one("#pmt-waves", Grid)
        if chans != self._channels:
            self._channels = chans
            grid.remove_children()
            plots: list = []
            for c in chans:
                plot = WaveformPlot(c)
                plot.channel = c
                plots.append(plot)
            grid.mount_all(plots or [Static(Text("no waveforms yet", style="dim"))])
            self._seen.pop("waves", None)
        stale_w = waves is not None and ctx.display_stale(waves.time_ns)
        if waves is not None and self._due(
            "waves",
            (id(waves), waves.time_ns),
            (stale_w, len(grid.children), self.mode),
            ctx.now,
            PLOT_EVERY_S,
        ):
            labels = waves.meta.get("labels") or {}
            for plot in grid.query(WaveformPlot):
                c = plot.channel
                lab = labels.get(c)
                plot.set_data(
                    waves.arrays.get(c),
                    label=f"{c} {lab}" if lab and lab != c else c,
                    stale=stale_w,
                )
        amp = st.displays.get(sel) if sel else None
        ap = self.query_one("#pmt-amp", HistogramPlot)
        if self._due("amp", (id(amp), getattr(amp, "time_ns", 0)), (sel,), ctx.now, PLOT_EVERY_S):
            if amp is not None:
                ap.title = f"Amplitude {amp.meta.get('label', sel.rsplit('/', 1)[-1])}"
                ap.set_data(
                    amp.arrays.get("counts"),
                    amp.arrays.get("edges"),
                    stale=ctx.display_stale(amp.time_ns),
                    xlabel=axis_label(amp.meta, "amplitude"),
                )
            else:
                ap.set_data(None, None)
        mult = st.displays.get(f"pmt/{b}/multiplicity") if b else None
        mp = self.query_one("#pmt-mult", HistogramPlot)
        if self._due("mult", (id(mult), getattr(mult, "time_ns", 0)), (b,), ctx.now, PLOT_EVERY_S):
            if mult is not None:
                mp.set_data(
                    mult.arrays.get("counts"),
                    mult.arrays.get("edges"),
                    stale=ctx.display_stale(mult.time_ns),
                    xlabel=axis_label(mult.meta, "multiplicity"),
                )
            else:
                mp.set_data(None, None)
        recs = [
            r
            for r in st.series.values()
            if r.family == "pmt" and r.tags.get("board") == b and "channel" in r.tags
        ]
        board_rec = next(
            (r for r in st.series.values() if r.family == "pmt" and r.tags == {"board": b}), None
        )
        data = (tuple(r.time_ns for r in recs), getattr(board_rec, "time_ns", 0))
        if self._due("base", data, (b, ctx.connected, int(ctx.now) // 5), ctx.now, PLOT_EVERY_S):
            # plain aligned text, not a Rich Table: redrawn every second, and
            # a Table costs ~10 ms to lay out each time
            from cygno_online.tui.answers import pmt_channels
            from cygno_online.tui.screens.overview import columns

            units = {}
            for r in recs:
                for f in BASELINE_FIELDS:
                    u = unit_of(st, series_id(r.family, r.tags), f)
                    if u and f not in units:
                        units[f] = u
            states = {(c.board, c.channel): c.state for c in pmt_channels(st, ctx.now)}
            rows = []
            for r in sorted(recs, key=lambda r: _chan_key(r.tags["channel"])):
                style = "grey50" if ctx.stale(series_id(r.family, r.tags)) else ""
                cs = states.get((r.tags.get("board", "0"), r.tags["channel"]), "")
                rows.append(
                    [
                        Text(r.tags["channel"], style=style or "bold"),
                        Text(cs, style=style or STATE_STYLE.get(cs, "")),
                        *(
                            Text(fmt_value(r.fields.get(f), "{:.1f}"), style=style)
                            for f in BASELINE_FIELDS
                        ),
                    ]
                )
            parts: list[Text] = []
            if board_rec is not None:
                items = [
                    f"{k} {fmt_value(v, '{:.3g}')}{(' ' + board_rec.units.get(k, '')) if board_rec.units.get(k) else ''}"
                    for k, v in board_rec.fields.items()
                ]
                parts.append(
                    Text(
                        "  ".join(items),
                        style="grey50" if ctx.stale(series_id("pmt", board_rec.tags)) else "",
                    )
                )
            if rows:
                header = ["ch", "state", *BASELINE_FIELDS]
                parts.append(columns(rows, "ll" + "r" * len(BASELINE_FIELDS), header, gap=2))
            else:
                parts.append(Text("no PMT channel metrics yet", style="dim"))
            if units:
                # the units under the table: in the headers they push it past 80 columns
                by_unit: dict[str, list[str]] = {}
                for f, u in units.items():
                    by_unit.setdefault(u, []).append(f)
                parts.append(
                    Text(
                        "; ".join(f"{', '.join(fs)} in {u}" for u, fs in by_unit.items()),
                        style="dim",
                    )
                )
            out = Group(*parts)
            self.query_one("#pmt-base", DiffText).update(out)
