"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Shared helpers live in cygno_online.testing (importable from any test
# directory); this name stays for tests that still import it from here.
from cygno_online.testing.waiting import wait_for  # noqa: F401

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


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A test that runs a command in-process (``cli.main``) calls
    ``setup_logging``, which points the root logger at that test's captured
    stderr; pytest closes that stream after the test, and a later test's log
    line then prints 'Logging error ... I/O operation on closed file'. Remove
    such plain stream handlers after the test and restore the level (pytest's
    own capture handlers are subclasses, added and removed by pytest)."""
    import logging

    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if type(h) is logging.StreamHandler and h not in before:
            root.removeHandler(h)
    root.setLevel(level)
