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
    assert snap_compare(make_app(), press=TABS[tab], terminal_size=SIZES[size])


def test_camera_zoomed_snapshot(snap_compare, utc):
    assert snap_compare(make_app(), press=["2", "z"], terminal_size=(80, 24))
