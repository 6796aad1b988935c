"""Plots repaint only when what they show changes, at most once a second for
data that change with every display, and then only the lines that changed
(the CPU and bandwidth side of issue 14; the figures are the benchmark's)."""

from __future__ import annotations

import numpy as np
from fakedata import NOW, NOW_NS, fe55_spectrum, make_source
from helpers import run_app

from cygno_online.tui.screens.base import Panel
from cygno_online.tui.widgets.histogram import HistogramPlot


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
    fe55_spectrum(src, base, NOW_NS)
    clock = [NOW]

    async def body(app, pilot):
        await pilot.press("3")
        await pilot.pause()
        hp = app.query_one("#cl-hist", HistogramPlot)
        draws, lines = hp.draws, hp.lines_refreshed
        # a display message with the same content (a re-publish): no draw at all
        clock[0] += 2
        fe55_spectrum(src, base, NOW_NS + 2 * 10**9)
        app.poll_now()
        await pilot.pause()
        same = (hp.draws - draws, hp.lines_refreshed - lines)
        # one more entry in one bin: redrawn, but only the changed lines repainted
        clock[0] += 2
        more = base.copy()
        more[np.argmax(more) + 3] += 1
        fe55_spectrum(src, more, NOW_NS + 4 * 10**9)
        app.poll_now()
        await pilot.pause()
        changed = (hp.draws - draws, hp.lines_refreshed - lines)
        return same, changed, hp.size.height

    same, changed, height = run_app(src, body, clock=lambda: clock[0])["value"]
    assert same == (0, 0)
    assert changed[0] == 1
    assert 1 <= changed[1] <= 3 < height  # header (n=) and the bin's rows, not all
