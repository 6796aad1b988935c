"""Each TUI test starts with an empty unit memory (keymetrics remembers the
units of every series for the life of the process, as a viewer should)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_unit_memory():
    from cygno_online.tui import keymetrics

    keymetrics._UNITS.clear()
    yield
    keymetrics._UNITS.clear()
