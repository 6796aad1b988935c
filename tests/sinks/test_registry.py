# ruff: noqa: F811 - pytest fixtures imported from sinks_helpers are parameters here
"""The run registry: URLs, the record of a summary, SQLite and a real MariaDB."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from sinks_helpers import mariadb, postgresql  # noqa: F401 - fixtures

from cygno_online.errors import ConfigError
from cygno_online.sinks.registry import (
    RunRegistry,
    default_url,
    parse_url,
    run_record,
    run_summary_metric,
    run_type,
    verdict_of,
)

T0 = 1_764_000_000_000_000_000


def summary(run: int, *, peak: float = 1850.0, verdict: str | None = None, **extra) -> dict:
    """A summary document as build_summary makes it (the blocks the record reads)."""
    doc = {
        "run": run,
        "experiment": "LIME",
        "description": "S003:DATA:Fe, source at 25 cm",
        "pedestal": False,
        "exposure_s": 0.3,
        "start_time_ns": T0 + run * 600 * 10**9,
        "stop_time_ns": T0 + run * 600 * 10**9 + 240 * 10**9,
        "duration_s": 240.0,
        "counters": {"events_seen": 1200, "events_processed": 1200, "events_dropped": 0,
                     "drop_fraction": 0.0},
        "daq": {"trigger_rate_hz": 1.6},
        "camera": {"images": 400, "sparks": 4, "spark_fraction": 0.01, "cluster_rate_hz": 30.0},
        "cameras": {"cam0": {"fe55_peak": peak, "fe55_width": 300.0, "fe55_resolution": 0.16,
                             "fe55_entries": 900, "alpha_rate_hz": 0.05, "muon_rate_hz": 0.2}},
        "pmt": {"0/1": {"amplitude_adc": 120.0, "baseline_adc": 3850.0, "rms_adc": 2.0,
                        "charge_pc": 1.5}},
        "environment": {"gas_temperature": {"mean": 22.5, "unit": "degC"},
                        "lime_pressure": {"mean": 0.99, "unit": "bar"},
                        "humidity": {"mean": 40.0, "unit": "%"}},
        "quality_flags": [],
    }  # fmt: skip
    if verdict:
        doc["verdict"] = verdict
    doc.update(extra)
    return doc


# -- URL -----------------------------------------------------------------------------------
def test_urls(tmp_path: Path):
    u = parse_url("sqlite:///var/lib/cygno/runs.sqlite")
    assert (u.dialect, u.path) == ("sqlite", "/var/lib/cygno/runs.sqlite")
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    u = parse_url(f"mysql://cygno@db.example:3307/runs?password_file={pw}&table=lime_runs")
    assert (u.dialect, u.host, u.port, u.user, u.database, u.table) == (
        "mysql",
        "db.example",
        3307,
        "cygno",
        "runs",
        "lime_runs",
    )
    assert u.password == "s3cret" and "s3cret" not in u.display() and "s3cret" not in repr(u)
    assert parse_url("mariadb://x@h/db").dialect == "mysql"
    assert parse_url("postgresql://x@h/db").dialect == "postgresql"
    assert default_url(tmp_path).endswith("/runs.sqlite")


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("mysql://u:secret@h/db", "no password in the URL"),
        ("oracle://u@h/db", "unknown database"),
        ("mysql://u@h/", "names no database"),
        ("sqlite://", "sqlite needs a file"),
        ("mysql://u@h/db?table=x;drop", "plain SQL name"),
        ("mysql://u@h/db?password_env=CYGNO_NO_SUCH_VAR", "is not set"),
        ("runs.sqlite", "must be a URL"),
    ],
)
def test_bad_urls_name_the_problem(url: str, what: str):
    with pytest.raises(ConfigError) as err:
        parse_url(url)
    assert what in str(err.value)
    assert "secret" not in str(err.value)


# -- the record ------------------------------------------------------------------------------
def test_record_fields_from_a_summary():
    rec, extra = run_record(summary(7))
    assert rec["run_type"] == "DATA:Fe"
    assert rec["events_seen"] == 1200 and rec["event_rate_hz"] == pytest.approx(5.0)
    assert rec["fe55_peak"] == 1850.0 and rec["light_yield"] == pytest.approx(1850.0 / 5.9)
    assert rec["spark_rate_hz"] == pytest.approx(4 / 240)
    assert rec["gas_temperature"] == 22.5 and rec["verdict"] == "good"
    assert extra["pmt_b0_ch1_amplitude_adc"] == 120.0
    assert extra["env_humidity_mean"] == 40.0
    m = run_summary_metric(summary(7))
    assert m.family == "run_summary" and m.run == 7 and m.time_ns == summary(7)["start_time_ns"]
    assert m.fields["verdict"] == "good" and m.fields["verdict_level"] == 0.0
    assert m.fields["alpha_rate_hz"] == 0.05 and m.fields["muon_rate_hz"] == 0.2


def test_run_type_and_verdict():
    assert run_type({"description": "S000:PED:camera only"}) == "PED"
    assert run_type({"description": "free text", "pedestal": True}) == "pedestal"
    assert run_type({"description": ""}) == "data"
    assert verdict_of({"quality_flags": [{"severity": "info"}]}) == "good"
    assert verdict_of({"quality_flags": [{"severity": "warning"}]}) == "warning"
    assert verdict_of({"checks": [{"status": "good"}, {"status": "bad"}]}) == "bad"


# -- the database ------------------------------------------------------------------------------
def exercise(reg: RunRegistry) -> None:
    """The same assertions on every database."""
    reg.record(summary(10), {"fe55": {"counts": [1, 2, 3], "edges": [0, 1, 2, 3]}})
    reg.record(summary(11, peak=1700.0, verdict="bad"))
    reg.record(summary(12, exposure_s=0.5))
    reg.record(summary(13))
    row = reg.get(10)
    assert row is not None and row["experiment"] == "LIME" and row["fe55_peak"] == 1850.0
    assert row["histograms"]["fe55"]["counts"] == [1, 2, 3]
    assert row["extra"]["pmt_b0_ch1_amplitude_adc"] == 120.0
    # writing a run again replaces its row
    again = copy.deepcopy(summary(10, peak=1900.0))
    reg.record(again)
    assert reg.get(10)["fe55_peak"] == 1900.0
    assert [r["run"] for r in reg.runs()] == [10, 11, 12, 13]
    since = summary(12)["start_time_ns"]
    assert [r["run"] for r in reg.runs(since_ns=since)] == [12, 13]
    # the automatic reference: latest good run, same type and exposure, earlier
    ref = reg.latest_good(run_type="DATA:Fe", exposure_s=0.3, before_run=13)
    assert ref is not None and ref["run"] == 10
    assert reg.latest_good(run_type="DATA:Fe", exposure_s=0.5, before_run=13)["run"] == 12
    assert reg.latest_good(run_type="PED", exposure_s=0.3, before_run=13) is None
    assert reg.get(99) is None


def test_sqlite_registry(tmp_path: Path):
    with RunRegistry(f"sqlite://{tmp_path}/state/runs.sqlite") as reg:
        exercise(reg)
    # the file keeps the rows for the next process
    with RunRegistry(f"sqlite://{tmp_path}/state/runs.sqlite") as reg:
        assert len(reg.runs()) == 4


@pytest.mark.servers
def test_mariadb_registry_tcp_and_socket(mariadb, tmp_path: Path):
    mariadb.create_database("cygno_runs", "cygno", "pw-registry")
    pw = tmp_path / "pw"
    pw.write_text("pw-registry\n")
    with RunRegistry(
        f"mysql://cygno@127.0.0.1:{mariadb.port}/cygno_runs?password_file={pw}"
    ) as reg:
        exercise(reg)
    # the same rows through the unix socket, seen by a second client
    with RunRegistry(
        f"mysql://cygno@localhost/cygno_runs?password_file={pw}&unix_socket={mariadb.socket}"
    ) as reg:
        assert [r["run"] for r in reg.runs()] == [10, 11, 12, 13]
        assert reg.get(11)["verdict"] == "bad"
    # the server itself holds one row per run
    assert mariadb.sql("SELECT COUNT(*) FROM cygno_runs", "cygno_runs") == [(4,)]


@pytest.mark.servers
def test_mariadb_wrong_password_is_a_clear_error(mariadb, tmp_path: Path):
    from cygno_online.sinks.registry import RegistryError

    mariadb.create_database("cygno_runs", "cygno", "pw-registry")
    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    reg = RunRegistry(f"mysql://cygno@127.0.0.1:{mariadb.port}/cygno_runs?password_file={pw}")
    with pytest.raises(RegistryError) as err:
        reg.runs()
    assert "cannot connect" in str(err.value) and "wrong" not in str(err.value)


@pytest.mark.servers
def test_postgresql_registry(postgresql, tmp_path: Path):
    postgresql.create_database("cygno_runs", "cygno", "pw-pg")
    pw = tmp_path / "pw"
    pw.write_text("pw-pg\n")
    url = f"postgresql://cygno@127.0.0.1:{postgresql.port}/cygno_runs?password_file={pw}"
    with RunRegistry(url) as reg:
        exercise(reg)
    assert postgresql.sql("SELECT COUNT(*) FROM cygno_runs", "cygno_runs") == [(4,)]
    pw.write_text("wrong\n")
    from cygno_online.sinks.registry import RegistryError

    with pytest.raises(RegistryError) as err, RunRegistry(url) as reg:
        reg.runs()
    assert "cannot connect" in str(err.value)
