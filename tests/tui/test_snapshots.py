"""Snapshot tests (pytest-textual-snapshot) of the Overview, Camera, Alarms
and Runs tabs at 80x24 and 200x60 with deterministic data and a fixed clock.

Update after an intended change of the look:
``pytest tests/tui/test_snapshots.py --snapshot-update``."""

from __future__ import annotations

import time

import pytest
from fakedata import NOW, make_source

from cygno_online.tui.app import MonitorApp


@pytest.fixture
def utc(monkeypatch):
    # Clock texts are local time: pin the zone so snapshots match anywhere.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(autouse=True)
def stable_svg_ids(monkeypatch):
    """Rich names the SVG's CSS classes after a hash of the segments' reprs
    (style metadata included): pin the prefix so the comparison is about what
    is drawn (every glyph, colour and position is still compared)."""
    from rich.console import Console

    export = Console.export_svg

    def export_svg(self, *args, **kw):
        kw["unique_id"] = "terminal"
        return export(self, *args, **kw)

    monkeypatch.setattr(Console, "export_svg", export_svg)


def make_app() -> MonitorApp:
    # The palette follows the terminal by default: pin it for the snapshots.
    return MonitorApp(
        make_source(), clock=lambda: NOW, user="tester", image_interval_s=0.0, palette="truecolor"
    )


SIZES = {"80x24": (80, 24), "200x60": (200, 60)}
TABS = {"overview": [], "camera": ["2"], "alarms": ["6"], "runs": ["7"]}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("tab", list(TABS))
def test_tab_snapshot(snap_compare, utc, tab, size):
    assert snap_compare(make_app(), run_before=settled(TABS[tab]), terminal_size=SIZES[size])


def settled(keys):
    """Press ``keys``, then let the layout settle (the side panels' heights
    resize the heatmap once more) before the picture is taken."""

    async def run_before(pilot):
        # the alarm limits and references arrive from a worker thread: wait
        # for them, or the picture depends on which came first
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        for _ in range(3):
            await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    return run_before


def test_camera_zoomed_snapshot(snap_compare, utc):
    assert snap_compare(make_app(), run_before=settled(["2", "z"]), terminal_size=(80, 24))


def test_runs_summary_compared_with_the_reference_run_snapshot(snap_compare, utc):
    """The Runs tab's summary of run 42900 compared (``r``) with its reference
    run: the latest good data run before it (this viewer has no control
    socket, so the rule is applied to its summaries: 42899)."""

    async def run_before(pilot):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for key in ("7", "enter", "r"):
            await pilot.press(key)
            await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        for _ in range(3):
            await pilot.pause()

    assert snap_compare(make_app(), run_before=run_before, terminal_size=(80, 24))
