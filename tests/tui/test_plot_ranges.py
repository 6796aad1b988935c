"""Plots for humans: the Clusters and PMT plots show the range their data
occupy, with labelled axes, and count what lies outside."""

from __future__ import annotations

import re

import numpy as np
from fakedata import NOW_NS, make_source
from helpers import run_app, screen_text

from cygno_online.tui.widgets.histogram import HistogramPlot, display_range
from cygno_online.tui.widgets.scatter import ScatterPlot


def fe55_source():
    """A 55Fe spectrum on the analyzer's wide fixed axis (0-50000 ADU, 200
    bins): the peak at 7000 +- 800 ADU and a few pile-up clusters far above."""
    src = make_source()
    rng = np.random.default_rng(7)
    edges = np.linspace(0.0, 50000.0, 201)
    vals = np.r_[rng.normal(7000, 800, 5000), np.full(10, 42000.0)]
    src.display(
        "histogram",
        "clusters/cam0/fe55_integral",
        {"counts": np.histogram(vals, edges)[0].astype(float), "edges": edges},
        meta={"units": "ADU", "fit": {"mu": 7000.0, "sigma": 800.0}},
        time_ns=NOW_NS,
    )
    return src


def bar_rows(plot) -> list[str]:
    lines = plot.render().plain.split("\n")
    return lines[1:-1]  # header, bars..., x axis


def test_fe55_peak_fills_a_sensible_share_of_the_width_and_outliers_are_counted():
    async def body(app, pilot):
        await pilot.press("3")
        await pilot.pause()
        hp = app.query_one("#cl-hist", HistogramPlot)
        return bar_rows(hp), hp.render().plain, hp.size.width, screen_text(app)

    rows, plain, width, _text = run_app(fe55_source(), body)["value"]
    # columns above half the peak height (the FWHM) span a fifth of the width or
    # more (on the fixed 0-50000 axis they were 1 or 2 of ~45)
    half = rows[len(rows) // 2]
    fwhm_cols = sum(ch != " " for ch in half)
    assert fwhm_cols >= 0.2 * width, (fwhm_cols, width, rows)
    # the 10 pile-up clusters are outside the shown range, and said so
    axis = plain.split("\n")[-1]
    m = re.search(r" (\d+)▸$", axis.rstrip())
    assert m and 10 <= int(m[1]) <= 15, axis
    assert "◂" not in axis  # nothing below the range
    axis = axis.rstrip()[: m.start()]
    assert "integral (ADU)" in axis
    ticks = [
        float(t.replace("k", "e3"))
        for t in axis.replace("integral (ADU)", " ").replace("┴", " ").split()
    ]
    assert len(ticks) == 3 and ticks[0] < 7000 < ticks[-1] and ticks[-1] < 15000
    assert ticks[0] < ticks[1] < ticks[2]
    assert re.search(r"\d+ counts", rows[0])  # the y axis: counts, with the top value


def test_scatter_has_labelled_axes_with_ticks():
    async def body(app, pilot):
        await pilot.press("3")
        await pilot.pause()
        return app.query_one("#cl-scatter", ScatterPlot).render().plain

    plain = run_app(make_source(), body)["value"]
    lines = plain.split("\n")
    assert lines[0].startswith("integral (ADU) vs length (px)")  # y (unit) vs x (unit)
    assert "length (px)" in lines[-1]
    # y ticks in the gutter: the top above the bottom
    top = float(lines[1].split("┤")[0].replace("k", "e3"))
    bottom = float(lines[-2].split("┤")[0].replace("k", "e3"))
    assert top > bottom
    assert len([t for t in lines[-1].replace("length (px)", " ").split() if t != "┴"]) == 3


def test_pmt_amplitude_peak_is_spread_over_the_width():
    src = make_source()
    rng = np.random.default_rng(1)
    edges = np.linspace(0.0, 4096.0, 129)  # the analyzer's default: 128 bins over the ADC
    src.display(
        "histogram",
        "pmt/0/amplitude/ch1",
        {"counts": np.histogram(rng.normal(300, 20, 2000), edges)[0].astype(float), "edges": edges},
        meta={"units": "ADC", "label": "PMT1", "x": "amplitude"},
        time_ns=NOW_NS,
    )

    async def body(app, pilot):
        await pilot.press("4")
        await pilot.pause()
        hp = app.query_one("#pmt-amp", HistogramPlot)
        return bar_rows(hp), hp.render().plain, hp.size.width

    rows, plain, width = run_app(src, body)["value"]
    bottom = rows[-1]
    assert sum(ch != " " for ch in bottom) >= 0.3 * width  # not all in the first column
    axis = plain.split("\n")[-1]
    assert "amplitude (ADC)" in axis
    assert not axis.rstrip().endswith("4096")


def test_display_range_follows_the_entries_and_the_reference():
    counts = np.zeros(100)
    counts[40:50] = 10
    lo, hi = display_range(counts)
    assert lo < 40 and hi > 50 and hi - lo < 20
    # a reference outside the data widens the range to show it
    lo, hi = display_range(counts, ref=70.5, edges=np.arange(101.0))
    assert hi > 71
    assert display_range(np.zeros(5)) == (0, 5)  # nothing to go on: everything
