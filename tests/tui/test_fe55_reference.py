"""The 55Fe peak against where it should be (issue 14): the Clusters
spectrum and the Overview show the reference value and band
(``summary.references.fe55_peak``, the ``fe55_peak_shifted`` tolerance), and
their ranges follow the data or the reference."""

from __future__ import annotations

import numpy as np
from fakedata import NOW_NS, fe55_spectrum, make_source
from helpers import run_app, screen_text

from cygno_online.tui.screens.overview import band_gauge
from cygno_online.tui.terminal import to_ascii
from cygno_online.tui.widgets.histogram import HistogramPlot, band_line, display_range
from cygno_online.tui.widgets.sparkline import sparkline


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
    fe55_spectrum(src, np.histogram(rng.normal(9000, 700, 4000), edges)[0], NOW_NS, edges)

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


def test_gauge_places_the_peak_against_the_band():
    assert band_gauge(7000, 7000, 0.1, 13).plain == "   ├──●──┤   "
    assert band_gauge(7650, 7000, 0.1, 13).plain == "   ├──┼──●   "  # inside, at the edge
    assert band_gauge(7800, 7000, 0.1, 13).plain == "   ├──┼──┤●  "  # just outside: outside
    assert band_gauge(9000, 7000, 0.1, 13).plain == "   ├──┼──┤  ▸"  # off the gauge
    assert band_gauge(5000, 7000, 0.1).plain.startswith("◂")
    g = band_gauge(7800, 7000, 0.1)
    dot = g.plain.index("●")
    assert any("red" in str(sp.style) for sp in g.spans if sp.start <= dot < sp.end)


def test_overview_shows_the_peak_against_the_reference_at_80x24():
    src = make_source()  # reference 7200 +- 10 %
    rng = np.random.default_rng(2)
    edges = np.linspace(0, 20000, 201)
    fe55_spectrum(src, np.histogram(rng.normal(8600, 500, 3000), edges)[0], NOW_NS, edges)

    async def body(app, pilot):
        await pilot.pause()
        return screen_text(app)

    text = run_app(src, body)["value"]
    line = next(ln for ln in text.splitlines() if ln.lstrip().startswith("55Fe  peak"))
    assert "ref 7200 ±10%" in line and "OFF +" in line
    gauge = line[line.index("├") :]
    assert gauge.index("┤") < gauge.index("●")  # right of the band, on the gauge


def test_trend_scale_includes_the_band():
    # the same values, drawn alone and against a band far above them
    alone = sparkline([100, 101, 102], 3)
    banded = sparkline([100, 101, 102], 3, include=(100, 200))
    assert alone == "▁▅█" and banded == "▁▁▁"


def test_plot_glyphs_have_ascii_stand_ins():
    from cygno_online.tui.widgets.histogram import EIGHTHS
    from cygno_online.tui.widgets.scatter import DENSITY

    glyphs = "◂▸├┼┤─┊●┤│" + EIGHTHS + DENSITY + "⠉⣿"
    assert "?" not in to_ascii(glyphs)
