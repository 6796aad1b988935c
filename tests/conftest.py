"""Shared fixtures."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CYGNO_SHARED", ROOT.parent / "shared"))
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real MIDAS/ODB files of ../shared/data (present locally and in CI)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


def wait_for(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str = "condition",
):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``.

    Tests synchronise on conditions, never on fixed sleeps.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def experiment(tmp_path):
    """A local MIDAS stand-in experiment "lime" (a process; stopped at the end)."""
    from cygno_online.testing.midas_standin.experiment import Experiment

    exp = Experiment.start(tmp_path / "exp", "lime")
    yield exp
    exp.close()


@pytest.fixture
def remote_experiment(tmp_path):
    """The same, reached through "mserver" (MIDAS_SERVER_HOST)."""
    from cygno_online.testing.midas_standin.experiment import Experiment

    exp = Experiment.start(tmp_path / "rexp", "lime", remote=True)
    yield exp
    exp.close()
