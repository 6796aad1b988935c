"""Plots repaint only when what they show changes, at most once a second for
data that change with every display, and then only the lines that changed
(the CPU and bandwidth side of issue 14; the figures are the benchmark's)."""

from __future__ import annotations

import numpy as np
from fakedata import NOW, NOW_NS, make_source
from helpers import run_app

from cygno_online.tui.screens.base import Panel
from cygno_online.tui.widgets.histogram import HistogramPlot, band_line, display_range


def _fe55(src, counts, t_ns, edges=None):
    edges = np.linspace(0.0, 20000.0, 51) if edges is None else edges
    src.display(
        "histogram",
        "clusters/cam0/fe55_integral",
        {"counts": np.asarray(counts, dtype=float), "edges": edges},
        meta={"units": "ADU"},
        time_ns=t_ns,
    )


def test_panel_due_throttles_data_but_not_view_changes():
    p = Panel()
    assert p._due("h", (1,), ("live",), 100.0, 1.0)  # first time: drawn
    assert not p._due("h", (1,), ("live",), 100.1, 1.0)  # nothing new
    assert not p._due("h", (2,), ("live",), 100.5, 1.0)  # new data within 1 s: later
    assert p._due("h", (2,), ("stale",), 100.6, 1.0)  # the view changed: at once
    assert not p._due("h", (3,), ("stale",), 101.0, 1.0)
    assert p._due("h", (3,), ("stale",), 101.7, 1.0)  # the deferred data, a second on


def test_same_data_is_not_redrawn_and_a_small_change_repaints_few_lines():
    src = make_source()
    rng = np.random.default_rng(3)
    base = np.histogram(rng.normal(7000, 800, 3000), np.linspace(0, 20000, 51))[0]
    _fe55(src, base, NOW_NS)
    clock = [NOW]

    async def body(app, pilot):
        await pilot.press("3")
        await pilot.pause()
        hp = app.query_one("#cl-hist", HistogramPlot)
        draws, lines = hp.draws, hp.lines_refreshed
        # a display message with the same content (a re-publish): no draw at all
        clock[0] += 2
        _fe55(src, base, NOW_NS + 2 * 10**9)
        app.poll_now()
        await pilot.pause()
        same = (hp.draws - draws, hp.lines_refreshed - lines)
        # one more entry in one bin: redrawn, but only the changed lines repainted
        clock[0] += 2
        more = base.copy()
        more[np.argmax(more) + 3] += 1
        _fe55(src, more, NOW_NS + 4 * 10**9)
        app.poll_now()
        await pilot.pause()
        changed = (hp.draws - draws, hp.lines_refreshed - lines)
        return same, changed, hp.size.height

    same, changed, height = run_app(src, body, clock=lambda: clock[0])["value"]
    assert same == (0, 0)
    assert changed[0] == 1
    assert 1 <= changed[1] <= 3 < height  # header (n=) and the bin's rows, not all


def test_display_range_keeps_the_reference_band_in_view():
    counts = np.zeros(50)
    counts[10:14] = 100  # data at 4000-5600 on 0-20000
    edges = np.linspace(0, 20000, 51)
    lo, hi = display_range(counts, edges=edges, include=(6300.0, 7700.0))
    assert edges[lo] <= 4000 and edges[hi] >= 7700
    # no entries yet: the reference alone decides the range, not the full axis
    lo, hi = display_range(np.zeros(50), ref=7000.0, edges=edges, include=(6300.0, 7700.0))
    assert edges[lo] <= 6300 and edges[hi] >= 7700 and hi - lo < 25


def test_band_line_marks_band_reference_and_label():
    edges = np.linspace(5000.0, 9000.0, 41)
    line = band_line(edges, 40, (6300.0, 7700.0), 7000.0, "ref 7000 ±10%").plain
    assert line.index("├") < line.index("┼") < line.index("┤")
    assert "ref 7000" in line  # the tolerance too where there is room
    wide = band_line(edges, 60, (6300.0, 7700.0), 7000.0, "ref 7000 ±10%").plain
    assert "ref 7000 ±10%" in wide
    # a band wider than the shown range: open ends, not a false edge
    line = band_line(edges, 40, (4000.0, 10000.0), 7000.0, "").plain
    assert line[0] == "◂" and line.rstrip()[-1] == "▸"


def test_clusters_spectrum_shows_peak_against_the_reference_band():
    src = make_source()  # reference 7200 ADU, tolerance 10 %
    rng = np.random.default_rng(5)
    edges = np.linspace(0, 50000, 201)
    # the peak 25 % high: outside the band
    _fe55(src, np.histogram(rng.normal(9000, 700, 4000), edges)[0], NOW_NS, edges)

    async def body(app, pilot):
        await pilot.press("3")
        await pilot.pause()
        return app.query_one("#cl-hist", HistogramPlot).render().plain

    plain = run_app(src, body, size=(120, 30))["value"]
    lines = plain.split("\n")
    assert "OFF +2" in lines[0]  # +25 % or so, in the header
    band = next(ln for ln in lines if "├" in ln or "◂" in ln)
    assert "ref 7200 ±10%" in band
    # the ticks span both the data (9000) and the band (6480..7920)
    ticks = [float(t.replace("k", "e3")) for t in lines[-1].replace("integral (ADU)", " ").split()]
    assert ticks[0] < 6480 and ticks[-1] > 9000
