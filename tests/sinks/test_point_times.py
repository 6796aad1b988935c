# ruff: noqa: F811 - pytest fixtures imported from sinks_helpers are parameters here
"""Point times: every event is its own point, and a replay writes the same points.

The scheme (decode.timebase.point_time_ns, docs/influx-schema.md) is checked
on its own, through the decoder and chain, and against the real servers:
N events of one kind in one MIDAS second give N points, a replay of the
same events still N, and the real logger file gives one environment point
per INPT event.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sinks_helpers import influxd, victoria  # noqa: F401 - fixtures
from test_real_servers import v1_sink, v2_sink

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.outputs import Metric
from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.decode.items import RunInfo
from cygno_online.decode.timebase import MS, NS, SLOTS, TimeBase, point_time_ns
from cygno_online.midas.event import BANK16, encode_event, parse_event
from cygno_online.params import Params
from cygno_online.simulate.slowcontrol import SlowControlModel

STAMP = 1_764_000_000  # MIDAS header time stamp (Unix seconds)
ENV_ID = 5


# -- the scheme -----------------------------------------------------------------------------
def test_point_times_distinct_within_a_second_and_inside_it():
    times = [point_time_ns(STAMP * NS, s, ENV_ID, NS) for s in range(SLOTS)]
    assert len(set(times)) == SLOTS
    assert all(STAMP * NS <= t < (STAMP + 1) * NS for t in times)
    # distinct at millisecond resolution too (VictoriaMetrics keeps ms)
    assert len({t // MS for t in times}) == SLOTS
    # deterministic: the same event always gets the same time
    assert times == [point_time_ns(STAMP * NS, s, ENV_ID, NS) for s in range(SLOTS)]
    # two event ids in the same second and slot are still distinct points
    assert point_time_ns(STAMP * NS, 7, 1, NS) != point_time_ns(STAMP * NS, 7, 5, NS)


def test_point_times_of_millisecond_stamps_stay_in_their_millisecond():
    base = STAMP * NS + 123 * MS
    times = [point_time_ns(base, s, 1, MS) for s in range(SLOTS)]
    assert len(set(times)) == SLOTS
    assert all(base <= t < base + MS for t in times)


def test_timebase_point_ns_follows_the_stamp_mode():
    tb = TimeBase()
    tb.begin_run(STAMP * NS)
    assert tb.point_ns(1, STAMP, 3) == STAMP * NS + 3 * MS + 1000
    tb.set_time_zero(1, STAMP)  # CYGNO-04: trigger stamps now count milliseconds
    assert tb.point_ns(1, 250, 3) == STAMP * NS + 250 * MS + 3 * 1000 + 1
    assert tb.point_ns(5, STAMP, 3) == STAMP * NS + 3 * MS + 5 * 1000


# -- through decoder and chain --------------------------------------------------------------
def env_events(n: int, stamp: int = STAMP) -> list:
    """``n`` environment events (INPT/OUTP, 16-bit banks) with the same header second."""
    model = SlowControlModel(1, False, 0)
    rng = np.random.default_rng(1)
    return [
        parse_event(
            encode_event(
                ENV_ID, s, model.environment(rng, stamp + 0.05 * s), time_stamp=stamp,
                bank_format=BANK16,
            )
        )
        for s in range(n)
    ]  # fmt: skip


def slow_chain() -> AnalysisChain:
    cfg = {
        "analyzers": [
            {"plugin": "slowcontrol"},
            {"plugin": "daqhealth", "params": {"sampling": "file"}},
        ]
    }
    return AnalysisChain.from_params(Params(cfg, ""), AnalyzerEnv(experiment="LIME"))


def replay(chain: AnalysisChain, events: list, run: int) -> list[Metric]:
    out: list[Metric] = []
    chain.begin_run(RunInfo(run=run, start_time_ns=STAMP * NS, experiment="LIME"))
    for ev in events:
        res = chain.process_event(ev, run=run, source="test")
        assert not res.errors
        out.extend(m for m in res.outputs if isinstance(m, Metric))
    chain.end_run()
    return out


def env_points(metrics: list[Metric]) -> list[Metric]:
    """The environment points of INPT banks (OUTP adds fields to the same point)."""
    return [m for m in metrics if m.family == "environment" and "gas_temperature" in m.fields]


def test_chain_gives_each_event_its_own_point_time():
    chain = slow_chain()
    try:
        first = replay(chain, env_events(20), run=5)
        again = replay(chain, env_events(20), run=5)
    finally:
        chain.close()
    env = env_points(first)
    assert len(env) == 20
    assert len({m.time_ns for m in env}) == 20
    assert all(STAMP * NS <= m.time_ns < (STAMP + 1) * NS for m in env)
    # a replay gives exactly the same points
    assert [(m.family, m.time_ns, m.serial) for m in first] == [
        (m.family, m.time_ns, m.serial) for m in again
    ]


# -- real servers -------------------------------------------------------------------------------
def count_env(influxd, db: str, run: int) -> int:
    rows = influxd.rows(
        f'SELECT count("gas_temperature") FROM "environment" WHERE "run" = \'{run}\'', db
    )
    return rows[0]["count"] if rows else 0


def write_all(sink, metrics: list[Metric]) -> None:
    sink.start()
    try:
        assert sink.submit(metrics) == len(metrics)
        assert sink.flush(30)
    finally:
        sink.stop(5)


def test_influx1_n_events_in_one_second_give_n_points_also_after_replay(influxd, tmp_path: Path):
    influxd.create_database("points")
    chain = slow_chain()
    try:
        metrics = replay(chain, env_events(20), run=8)
        write_all(v1_sink(influxd, "points", tmp_path / "s1"), metrics)
        assert count_env(influxd, "points", 8) == 20
        # the same events replayed (new process, new spool) are the same points
        write_all(v1_sink(influxd, "points", tmp_path / "s2"), replay(chain, env_events(20), 8))
    finally:
        chain.close()
    assert count_env(influxd, "points", 8) == 20
    daq = influxd.rows(
        'SELECT count("size_bytes") FROM "daq" WHERE "run" = \'8\' AND "event_id" = \'5\'',
        "points",
    )
    assert daq[0]["count"] == 20


def test_victoria_n_events_in_one_second_give_n_points_also_after_replay(victoria, tmp_path: Path):
    chain = slow_chain()
    try:
        write_all(v2_sink(victoria, tmp_path / "s1"), replay(chain, env_events(20), 9))
        write_all(v2_sink(victoria, tmp_path / "s2"), replay(chain, env_events(20), 9))
    finally:
        chain.close()
    series = victoria.export('{__name__="environment_serial",run="9"}')
    assert len(series) == 1
    # the export shows raw samples: each line written (INPT and OUTP, twice)
    # is one, but they share their millisecond - queries see one per event
    samples: dict[int, set[float]] = {}
    for t, v in zip(series[0]["timestamps"], series[0]["values"], strict=True):
        samples.setdefault(t, set()).add(v)
    assert len(samples) == 20
    assert sorted(v for vals in samples.values() for v in vals) == list(range(20))


def test_influx1_real_file_one_environment_point_per_inpt_event(
    influxd, tmp_path: Path, shared_data: Path
):
    from cygno_online.analysis.offline import OfflineRunner

    path = shared_data / "midas" / "run00010.mid.lz4"
    from cygno_online.midas.reader import MidasReader

    n_inpt = sum(
        1 for ev in MidasReader(path) if ev.header.event_id == ENV_ID and "INPT" in ev.banks
    )
    assert n_inpt == 5
    influxd.create_database("realfile")
    for k in range(2):  # replayed twice
        got: list[Metric] = []

        def keep(outs: list, got: list[Metric] = got) -> None:
            got.extend(o for o in outs if isinstance(o, Metric))

        chain = slow_chain()
        try:
            OfflineRunner(chain, on_outputs=keep).run_files([path])
        finally:
            chain.close()
        assert len(env_points(got)) == n_inpt
        write_all(v1_sink(influxd, "realfile", tmp_path / f"s{k}"), got)
        assert count_env(influxd, "realfile", 10) == n_inpt


@pytest.mark.parametrize("n", [1, 2, 999])
def test_serial_slots_never_collide_below_the_limit(n: int):
    base = STAMP * NS
    times = {point_time_ns(base, 5000 + s, 1, NS) for s in range(n)}
    assert len(times) == n


def test_influx1_one_run_summary_point_per_run_also_when_rewritten(influxd, tmp_path: Path):
    """The run record in InfluxDB: one point per run (time = run start), so
    ``summary --registry`` or a daemon restart rewriting it replaces it."""
    from cygno_online.sinks.registry import run_summary_metric

    influxd.create_database("records")
    docs = [
        {"run": r, "experiment": "LIME", "description": "S003:DATA:Fe", "exposure_s": 0.3,
         "start_time_ns": STAMP * NS + r * 600 * NS, "stop_time_ns": STAMP * NS + r * 600 * NS
         + 240 * NS, "duration_s": 240.0, "counters": {"events_seen": 100 + r},
         "cameras": {"cam0": {"fe55_peak": 1800.0 + r, "fe55_resolution": 0.15}},
         "checks": [{"name": "fe55_peak", "status": "warning", "reason": "55Fe peak: off"}]}
        for r in (1, 2, 3)
    ]  # fmt: skip
    for k in range(2):
        write_all(v1_sink(influxd, "records", tmp_path / f"s{k}"),
                  [run_summary_metric(d) for d in docs])  # fmt: skip
    rows = influxd.rows(
        'SELECT "fe55_peak", "light_yield", "verdict", "reasons" FROM "run_summary" GROUP BY "run"',
        "records",
    )
    assert sorted((r["run"], r["fe55_peak"]) for r in rows) == [
        ("1", 1801.0),
        ("2", 1802.0),
        ("3", 1803.0),
    ]
    assert all(r["verdict"] == "warning" and "55Fe peak" in r["reasons"] for r in rows)
