"""Shared helpers of the sink tests: real servers on loopback (fixtures) and
metric factories. Not a conftest.py: tests/conftest.py must stay the only
module named ``conftest`` (tests import ``wait_for`` from it); test modules
import the fixtures they use from here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cygno_online.analysis.outputs import Metric
from cygno_online.sinks.testservers import (
    INFLUXD,
    VICTORIA,
    InfluxDB1,
    VictoriaMetrics,
    find_binary,
)


def need_binary(name: str) -> str:
    """The server binary; in CI a missing one is a failure, locally a skip."""
    path = find_binary(name)
    if path is None:
        msg = f"{name} not installed (run: sudo bash tests/servers/install.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """One InfluxDB 1.x per test module; tests use their own databases."""
    binary = need_binary(INFLUXD)
    with InfluxDB1(tmp_path_factory.mktemp("influxd"), binary=binary) as server:
        yield server


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    binary = need_binary(VICTORIA)
    with VictoriaMetrics(tmp_path_factory.mktemp("vm"), binary=binary) as server:
        yield server


@pytest.fixture
def fresh_influxd(tmp_path: Path) -> Iterator[InfluxDB1]:
    """A private InfluxDB 1.x a test may stop and restart."""
    binary = need_binary(INFLUXD)
    with InfluxDB1(tmp_path / "influxd", binary=binary) as server:
        yield server


@pytest.fixture
def fresh_victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    binary = need_binary(VICTORIA)
    with VictoriaMetrics(tmp_path / "vm", binary=binary) as server:
        yield server


BASE_NS = 1_764_000_000_000_000_000  # 2025-11-24, inside any retention used here


def camera_metrics(n: int, *, run: int = 7, start: int = 0, camera: str = "cam0") -> list[Metric]:
    """``n`` distinct points (one per serial, distinct timestamps)."""
    return [
        Metric(
            "camera",
            BASE_NS + (start + i) * 1000,
            run,
            start + i,
            {"mean": 100.0 + 0.25 * (start + i), "clusters": (start + i) % 17, "ok": i % 2 == 0},
            {"camera": camera},
            {"mean": "ADC", "clusters": ""},
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One MariaDB per test module (Debian's mariadb-server) on loopback."""
    from cygno_online.sinks.testservers import MARIADBD, MariaDB

    binary = need_binary(MARIADBD)
    with MariaDB(tmp_path_factory.mktemp("mariadb"), binary=binary) as server:
        yield server


@pytest.fixture(scope="module")
def postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One PostgreSQL per test module (Debian's postgresql) on loopback."""
    from cygno_online.sinks.testservers import PostgreSQL, find_postgres_bindir

    bindir = find_postgres_bindir()
    if bindir is None:
        msg = "postgres not installed (run: sudo bash tests/servers/install.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    with PostgreSQL(tmp_path_factory.mktemp("pg"), bindir) as server:
        yield server
