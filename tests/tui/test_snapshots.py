"""Snapshot tests (pytest-textual-snapshot) of the Overview and Camera tabs
at 80x24 with deterministic data and a fixed clock.

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


def test_overview_snapshot(snap_compare, utc):
    assert snap_compare(make_app(), terminal_size=(80, 24))


def test_camera_snapshot(snap_compare, utc):
    assert snap_compare(make_app(), press=["2"], terminal_size=(80, 24))


def test_camera_zoomed_snapshot(snap_compare, utc):
    assert snap_compare(make_app(), press=["2", "z"], terminal_size=(80, 24))
