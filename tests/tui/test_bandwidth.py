"""Repaint only on change: the line-diffing text widget, the image refresh
budget and the ``bench tui`` command (figures are reported, never asserted)."""

from __future__ import annotations

import asyncio
import types

from fakedata import make_source
from helpers import run_app
from rich.text import Text

from cygno_online.bench import tui as bench_tui
from cygno_online.tui.widgets.difftext import DiffText


def test_difftext_refreshes_only_the_changed_lines():
    async def body(app, pilot):
        w = app.query_one("#ov-answers", DiffText)
        w.update(Text("a\nb\nc"))
        await pilot.pause()
        before = w.lines_refreshed
        w.update(Text("a\nB\nc"))
        one = w.lines_refreshed - before
        w.update(Text("a\nB\nc"))
        none = w.lines_refreshed - before - one
        return one, none, w.text

    one, none, text = run_app(make_source(), body)["value"]
    assert (one, none) == (1, 0) and text == "a\nB\nc"


def test_bench_counts_terminal_output_and_idle_costs_less():
    live = asyncio.run(bench_tui.measure("overview", (80, 24), 4.0))
    idle = asyncio.run(bench_tui.measure("overview", (80, 24), 4.0, idle=True))
    assert live["bytes_per_s"] > idle["bytes_per_s"] >= 0
    assert live["full_screen_bytes"] > 1000  # the first paint went through the counter
    assert live["messages_per_s"] > 10  # LIME rates: images, PMT, health, heartbeats
    # the TUI's CPU is reported without the test driver's synchronisation, and beside it
    assert live["cpu_with_driver_fraction"] >= live["cpu_fraction"] >= 0
    assert live["driver_fraction"] >= 0


def test_bench_command_reports_every_mode():
    args = types.SimpleNamespace(seconds=1.0, tabs="camera", sizes="80x24", palette="256")
    report = bench_tui.run(args)
    names = [r.name for r in report.rows]
    assert names == ["camera 80x24 live", "camera 80x24 idle", "camera 80x24 low-bandwidth"]
    assert all("kB_per_s" in r.extra and "cpu_percent" in r.extra for r in report.rows)


def test_image_refresh_follows_the_byte_budget():
    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        from cygno_online.tui.screens.camera import CameraPanel

        panel = app.query_one(CameraPanel)
        return panel.heatmap.cells, panel.budget_interval()

    cells, interval = run_app(make_source(), body, image_interval_s=0.5)["value"]
    assert cells > 0 and interval > 0
    # low bandwidth: the same frame far less often
    _cells_lb, interval_lb = run_app(make_source(), body, image_interval_s=0.5, low_bandwidth=True)[
        "value"
    ]
    assert interval_lb > 4 * interval
