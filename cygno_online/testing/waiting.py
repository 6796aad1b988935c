"""Waiting on conditions in tests (never on fixed sleeps).

Shared by every test directory through the package (not through a
``conftest`` module: pytest imports each directory's ``conftest.py`` as the
top-level module ``conftest``, so ``from conftest import ...`` finds whichever
directory's conftest came first when one call collects several directories).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60.0,
    interval: float = 0.01,
    what: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned); raise
    AssertionError naming ``what`` after ``timeout`` seconds.

    The timeout is a bound for a hung test, not a synchronisation: pass one
    generous enough for a loaded machine (the condition ends the wait).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
