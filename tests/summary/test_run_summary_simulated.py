"""End to end: simulator -> MIDAS bytes -> decoder -> chain (daqhealth, pmt,
slowcontrol) -> run summary, checked against the simulator's truth."""

from __future__ import annotations

import numpy as np
import pytest

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.outputs import Metric
from cygno_online.analysis.summary import build_summary, summary_to_text
from cygno_online.decode.runinfo import run_info_from_odb
from cygno_online.midas.event import parse_event
from cygno_online.params import Params
from cygno_online.simulate.run import Simulator

NTRIG = 16


@pytest.fixture(scope="module")
def simulated():
    sim = Simulator("crop:256", seed=3, run=7, sc_every_n_triggers=5)
    bor = parse_event(sim.bor(), source="sim")
    run = run_info_from_odb(
        bor.odb(), run=bor.header.serial_number, time_stamp=bor.header.time_stamp, source="sim"
    )
    cfg = {
        "analyzers": [
            {"plugin": "daqhealth", "params": {"sampling": "simulator"}},
            # the simulator's time tags tick at 8 ns on both boards
            {"plugin": "pmt", "params": {"models": {1742: {"ttt_tick_ns": 8.0}}}},
            {"plugin": "slowcontrol"},
        ]
    }
    chain = AnalysisChain.from_params(Params(cfg, ""))
    outputs = list(chain.begin_run(run))
    truth = {}
    counters = {"events_seen": 0, "events_processed": 0, "events_dropped": 0,
                "decode_errors": 0, "analyzer_errors": 0, "complete": True}  # fmt: skip
    last_ns = 0
    for ev in sim.events(NTRIG):
        event = parse_event(ev.data, source="sim")
        if ev.truth is not None:
            truth[ev.serial] = ev.truth
        res = chain.process_event(event, run=run.run, source="sim", received_ns=ev.time_ns)
        counters["events_seen"] += 1
        counters["events_processed"] += 1
        counters["decode_errors"] += len(res.errors)
        counters["analyzer_errors"] += len(res.analyzer_errors)
        outputs += res.outputs
        last_ns = max(last_ns, ev.time_ns)
    sections = chain.end_run()
    doc = build_summary(run, sections, counters=counters, stop_time_ns=last_ns)
    chain.close()
    metrics = [o for o in outputs if isinstance(o, Metric)]
    return sim, run, truth, metrics, doc


def test_no_decode_or_analyzer_errors(simulated):
    _, _, truth, _, doc = simulated
    assert len(truth) == NTRIG
    assert doc["counters"]["decode_errors"] == 0 and doc["counters"]["analyzer_errors"] == 0


def test_pmt_multiplicity_and_baselines_match_the_simulation(simulated):
    _, _, truth, metrics, doc = simulated
    board = [m for m in metrics if m.family == "pmt" and "channel" not in m.tags]
    assert len(board) == 2 * NTRIG
    for m in board:
        assert m.fields["multiplicity"] == truth[m.serial].n_pmt_triggers
    total = sum(t.n_pmt_triggers for t in truth.values())
    assert total > 0 and doc["pmt_triggers"] == total
    chans = [m for m in metrics if m.family == "pmt" and "channel" in m.tags]
    fast = [m for m in chans if m.tags["board"] == "0"]
    slow = [m for m in chans if m.tags["board"] == "1"]
    assert {m.tags["channel"] for m in fast} == {str(c) for c in range(1, 8)}
    assert {m.tags["channel"] for m in slow} == {"1", "2", "3", "4"}
    for m in fast:
        assert abs(m.fields["baseline"] - 3850) < 25 and 1.0 < m.fields["rms"] < 6.0
    for m in slow:
        assert abs(m.fields["baseline"] - 2100) < 25 and 1.0 < m.fields["rms"] < 6.0
    # objects make pulses on the fast PMTs
    pmts = [m for m in fast if m.tags["channel"] in ("1", "2", "3", "4")]
    assert max(m.fields["amplitude"] for m in pmts) > 50
    assert any(m.fields["npeaks"] > 0 for m in pmts)
    rates = [m.fields["rate"] for m in board if "rate" in m.fields]
    assert all(r > 0 for r in rates)


def test_daq_health_sees_every_event(simulated):
    sim, run, _, metrics, doc = simulated
    daq = doc["daq"]
    assert daq["sampling"] == "simulator"
    assert daq["missing"] == 0 and daq["daq_lost"] == 0 and daq["monitor_dropped"] == 0
    assert daq["events_seen"] == doc["counters"]["events_seen"]
    # 0.3 s exposure + 0.3 s readout per frame; MIDAS stamps have 1 s resolution
    assert daq["frame_period_s"] == pytest.approx(sim.period_s, rel=0.3)
    assert run.exposure_s == pytest.approx(0.3)
    runs = [m for m in metrics if m.family == "runs"]
    assert len(runs) == 1 and runs[0].fields["run_number"] == 7


def test_slow_control_metrics_named_and_with_units(simulated):
    _, _, _, metrics, doc = simulated
    env = [m for m in metrics if m.family == "environment"]
    assert env
    fields = {k: m.units[k] for m in env for k in m.fields}
    assert fields["gas_temperature"] == "degC" and fields["lime_pressure"].startswith("bar")
    hv = [m for m in metrics if m.family == "hv"]
    assert {m.units[k] for m in hv for k in m.fields if k == "measured"} == {"V"}
    cams = [m for m in metrics if m.family == "camera"]
    assert cams and all(m.tags == {"camera": "cam0"} for m in cams)
    assert all(-30 < m.fields["sensor_temperature"] < 0 for m in cams)
    trg = [m for m in metrics if m.family == "daq" and m.tags.get("equipment")]
    assert trg and all(u == "Hz" for m in trg for u in m.units.values())
    assert doc["environment"]["gas_temperature"]["unit"] == "degC"
    assert doc["hv"]


def test_summary_of_a_clean_simulated_run(simulated):
    _, _, _, _, doc = simulated
    assert doc["quality_flags"] == [], doc["quality_flags"]
    text = summary_to_text(doc)
    assert "Run 7" in text and "quality: good" in text
    assert np.isfinite(doc["duration_s"])
