"""Tab 3: cluster spectrum with the 55Fe fit, length vs integral, counts by class."""

from __future__ import annotations

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from cygno_online.publish.state import series_id
from cygno_online.tui.keymetrics import cameras, fmt_age, fmt_value, unit_of
from cygno_online.tui.screens.base import Panel, ViewContext
from cygno_online.tui.widgets.difftext import DiffText
from cygno_online.tui.widgets.histogram import HistogramPlot, axis_label
from cygno_online.tui.widgets.scatter import ScatterPlot

#: spectra in the order the ``i`` key cycles them (first present is the default)
SPECTRA = ("fe55_integral", "integral")


def peak_fit(counts: np.ndarray | None, edges: np.ndarray | None) -> dict | None:
    """The camera analyzer's own 55Fe peak fit, run on the live spectrum
    (a few hundred bins: well under a millisecond)."""
    if counts is None or edges is None:
        return None
    try:
        from cygno_online.analyzers.camera.clusters import fit_peak
    except ImportError:
        return None
    try:
        res = fit_peak(np.asarray(counts, dtype=np.float64), np.asarray(edges, dtype=np.float64))
    except Exception:
        return None
    return res if res.get("ok") else None


def fit_note(meta: dict, fit: dict | None = None) -> tuple[str, float | None]:
    if fit is None:
        fit = meta.get("fit") if isinstance(meta, dict) else None
    if not isinstance(fit, dict):
        return "", None
    mu = fit.get("mu", fit.get("mean"))
    sigma = fit.get("sigma")
    if not isinstance(mu, (int, float)):
        return "", None
    note = f"μ={mu:.4g}"
    if isinstance(sigma, (int, float)):
        note += f" σ={sigma:.3g}"  # noqa: RUF001
        if mu:
            note += f" ({100 * sigma / mu:.0f}%)"
    return note, float(mu)


RATE_WINDOW_S = 60.0
#: plots and tables that change with every display (2 Hz) or image (1.7 Hz)
#: are redrawn at most this often: a shifter reads a spectrum, not a movie
PLOT_EVERY_S = 1.0
#: short labels of the camera analyzer's per-image cluster fields
LABELS = {
    "n_clusters": "clusters",
    "n_fe55": "55Fe",
    "n_alpha": "alpha",
    "n_muon": "muon",
    "n_other": "other",
    "integral_total": "integral",
    "fe55_integral_mean": "55Fe mean",
}


def label_of(field: str) -> str:
    return LABELS.get(field, field)


def class_rate(state, sid: str, field: str, now: float) -> float | None:
    """Counts per second over the last minute (from the field's history)."""
    pts = state.history.get(sid, {}).get(field)
    if not pts:
        return None
    t0 = (now - RATE_WINDOW_S) * 1e9
    recent = [(t, v) for t, v in pts if t > t0]
    if len(recent) < 3:
        return None if len(pts) < 3 else 0.0
    # images in the window = len(recent); their time span ~ len-1 periods
    span = (recent[-1][0] - recent[0][0]) / 1e9 * len(recent) / (len(recent) - 1)
    return sum(v for _, v in recent) / span if span > 0 else None


class ClustersPanel(Panel):
    DEFAULT_CSS = """
    ClustersPanel #cl-plots { width: 1fr; }
    ClustersPanel HistogramPlot { height: 1fr; min-height: 6; padding: 0 1; }
    ClustersPanel ScatterPlot { height: 1fr; min-height: 6; padding: 0 1; }
    ClustersPanel #cl-stats { width: 34; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-clusters")
        self.log_scale = False
        self.spectrum_index = 0

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="cl-plots"):
                yield HistogramPlot("Cluster integral", id="cl-hist")
                yield ScatterPlot("Length vs integral", id="cl-scatter")
            yield DiffText(id="cl-stats")

    def toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self.query_one(HistogramPlot).set_log(self.log_scale)

    def next_spectrum(self) -> None:
        self.spectrum_index += 1
        self._seen.pop("hist", None)

    def update_view(self, ctx: ViewContext) -> None:
        st = ctx.state
        cams = cameras(st)
        cam = ctx.camera if ctx.camera in cams else (cams[0] if cams else None)
        prefix = f"clusters/{cam}/" if cam else "clusters/"
        present = [n for n in SPECTRA if f"{prefix}{n}" in st.displays]
        hist = None
        if present:
            hist = st.displays[f"{prefix}{present[self.spectrum_index % len(present)]}"]
        if hist is None:
            hist = next(
                (
                    d
                    for n, d in st.displays.items()
                    if n.startswith(prefix) and d.kind == "histogram"
                ),
                None,
            )
        scat = next(
            (
                d
                for n, d in sorted(st.displays.items())
                if n.startswith(prefix) and d.kind == "scatter"
            ),
            None,
        )
        hp = self.query_one(HistogramPlot)
        stale_h = hist is not None and ctx.display_stale(hist.time_ns)
        is_fe = hist is not None and hist.name.endswith("fe55_integral")
        band = ctx.expect.fe55_band() if is_fe else None
        if self._due(
            "hist",
            (id(hist), getattr(hist, "time_ns", 0)),
            (getattr(hist, "name", None), stale_h, band),
            ctx.now,
            PLOT_EVERY_S,
        ):
            if hist is None:
                hp.set_data(None, None)
            else:
                fit = None
                if "fit" not in hist.meta and is_fe:
                    fit = peak_fit(hist.arrays.get("counts"), hist.arrays.get("edges"))
                text, mu = fit_note(hist.meta, fit)
                note: str | Text = text
                ref = ctx.expect.fe55_peak if is_fe else None
                if ref is not None and band is not None:
                    note = Text(text, style="yellow")
                    if mu is not None:
                        ok = band[0] <= mu <= band[1]
                        note.append(
                            "  OK" if ok else f"  OFF {mu / ref - 1:+.0%}",
                            style="green" if ok else "bold red",
                        )
                short = hist.name.rsplit("/", 1)[-1]
                hp.title = {"integral": "Cluster integral", "fe55_integral": "55Fe integral"}.get(
                    short, short
                )
                if hist.meta.get("log_x"):
                    hp.title += " (log x)"
                # the key hint goes last (HistogramPlot.hint): a narrow plot cuts it first
                hp.hint = "i: next spectrum" if len(present) > 1 else ""
                hp.set_data(
                    hist.arrays.get("counts"),
                    hist.arrays.get("edges"),
                    mark=mu,
                    note=note,
                    stale=stale_h,
                    xlabel=axis_label(hist.meta, "integral"),
                    ref=ref,
                    band=band,
                    ref_label=(
                        f"ref {ref:.0f} ±{ctx.expect.fe55_tolerance:.0%} {ctx.expect.fe55_from}"
                        if ref is not None
                        else ""
                    ).strip(),
                )
        sp = self.query_one(ScatterPlot)
        stale_s = scat is not None and ctx.display_stale(scat.time_ns)
        if self._due(
            "scatter", (id(scat), getattr(scat, "time_ns", 0)), (stale_s,), ctx.now, PLOT_EVERY_S
        ):
            if scat is None:
                sp.set_data(None, None)
            else:
                xl = scat.meta.get("x", "x")
                yl = scat.meta.get("y", "y")
                sp.set_data(
                    scat.arrays.get("x"),
                    scat.arrays.get("y"),
                    title=f"{yl} vs {xl}" if "x" in scat.meta else scat.name,
                    stale=stale_s,
                    xlabel=xl,
                    ylabel=yl,
                )
        # counts and rates: every numeric field of the clusters family
        recs = [
            r
            for r in st.series.values()
            if r.family == "clusters"
            and r.tags.get("camera", cam) == cam
            and "cluster" not in r.tags
        ]
        data = tuple((r.time_ns, len(r.fields)) for r in recs)
        if self._due("stats", data, (ctx.connected, int(ctx.now) // 5), ctx.now, PLOT_EVERY_S):
            t = Table(box=None, padding=(0, 1), show_header=True, header_style="bold dim")
            t.add_column("per image", style="bold", no_wrap=True, max_width=16)
            t.add_column("last", justify="right", no_wrap=True)
            t.add_column("/s", justify="right", no_wrap=True)
            for r in sorted(recs, key=lambda r: sorted(r.tags.items())):
                sid = series_id(r.family, r.tags)
                stale = ctx.stale(sid)
                style = "grey50" if stale else ""
                extra = {k: v for k, v in r.tags.items() if k != "camera"}
                if extra:
                    t.add_row(Text(" ".join(extra.values()), style="underline"), "", "")
                for k, v in r.fields.items():
                    if not isinstance(v, (int, float)) or isinstance(v, bool):
                        continue
                    unit = unit_of(st, sid, k)
                    # counts by class -> rates over the last minute
                    rate = class_rate(st, sid, k, ctx.now) if k.startswith("n_") else None
                    t.add_row(
                        label_of(k),
                        Text(fmt_value(v) + (f" {unit}" if unit else ""), style=style),
                        Text(fmt_value(rate, "{:.3g}") if rate is not None else "", style=style),
                    )
                t.add_row(
                    Text("age", style="dim"),
                    Text(fmt_age(ctx.now - r.time_ns / 1e9), style="dim"),
                    "",
                )
            note = Text(f"/s: rate over the last {RATE_WINDOW_S:.0f} s", style="dim")
            self.query_one("#cl-stats", DiffText).update(
                Group(t, note) if recs else Text("no cluster metrics yet", style="dim")
            )
