"""The three analyzers in the real AnalysisChain, their sections through
build_summary / write_summary / summary_to_text (items built directly)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cygno_online.analyzers.pmt.reference import synthetic_block

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.outputs import Display, Metric
from cygno_online.analysis.summary import build_summary, summary_to_text, write_summary
from cygno_online.decode.items import (
    DigitizerBoard,
    EventContext,
    EventSeen,
    Reading,
    RunInfo,
    SlowControl,
)
from cygno_online.params import Params

T0 = 1_767_225_600 * 10**9
RUN = RunInfo(run=5, start_time_ns=T0, experiment="LIME", exposure_s=0.3)


class _NoDecoder:
    """Items are handed to the chain already decoded."""

    def begin_run(self, run):
        pass


def chain():
    cfg = {
        "analyzers": [
            {"plugin": "daqhealth", "params": {"sampling": "all", "window_s": 5}},
            {"plugin": "pmt", "params": {"models": {1742: {"ttt_tick_ns": 8.0}}}},
            {"plugin": "slowcontrol"},
        ]
    }
    return AnalysisChain.from_params(Params(cfg, ""), decoder=_NoDecoder())


def trigger_items(serial, rng):
    t = T0 + int(serial * 0.6e9)
    ctx = EventContext(5, serial, 1, 0, t)
    wf = synthetic_block(rng, 2, 8, 1024)
    board = DigitizerBoard(
        ctx=ctx, board=0, model=1742, nsamples=1024, nchannels=8, ntriggers=2, adcmax=4096,
        sampling=1333, sample_ns=1000 / 750, offsets=np.zeros(8, np.uint32),
        ttt=np.array([1000, 126000], np.uint32), waveforms=wf, layout="A",
    )  # fmt: skip
    return [EventSeen(ctx, 10_700_000, ("CAM0", "DGH0", "DIG0")), board]


def env_items(serial, t_s, temp):
    ctx = EventContext(5, serial, 5, 0, T0 + int(t_s * 1e9))
    readings = [Reading("P0IIn0", "input", temp, "degC", 10.0, 0)]
    return [EventSeen(ctx, 200, ("INPT",)), SlowControl(ctx, "environment", "INPT", readings)]


def test_chain_sections_to_summary(tmp_path):
    c = chain()
    rng = np.random.default_rng(11)
    outputs = list(c.begin_run(RUN))
    serials = [s for s in range(1, 31) if s not in (10, 11)]  # the DAQ lost two
    for s in serials:
        outputs += c.process_items(trigger_items(s, rng)).outputs
        if s % 10 == 2:
            outputs += c.process_items(env_items(s // 10 + 1, s * 0.6, 22.0 + s / 10)).outputs
    assert not c.analyzer_failures
    families = {m.family for m in outputs if isinstance(m, Metric)}
    assert families == {"runs", "daq", "pmt", "environment"}
    assert any(isinstance(d, Display) and d.name == "pmt/0/average" for d in outputs)
    sections = c.end_run()
    assert set(sections) == {"daqhealth", "pmt", "slowcontrol"}
    counters = {"events_seen": 31, "events_processed": 31, "events_dropped": 0,
                "decode_errors": 0, "analyzer_errors": 0, "complete": True}  # fmt: skip
    doc = build_summary(RUN, sections, counters=counters, stop_time_ns=T0 + 18 * 10**9)
    assert doc["daq"]["daq_lost"] == 2 and doc["daq"]["sampling"] == "all"
    assert doc["daq"]["frame_period_s"] > 0.55
    assert doc["pmt_triggers"] == 56
    assert set(doc["pmt"]) == {f"0/{ch}" for ch in range(1, 8)}
    assert 3840 < doc["pmt"]["0/1"]["baseline_adc"] < 3860
    assert doc["environment"]["gas_temperature"]["mean"] == pytest.approx(23.2)
    assert [f["flag"] for f in doc["quality_flags"]] == ["daq_lost_events"]
    path = write_summary(doc, tmp_path)
    assert json.loads(path.read_text())["quality_flags"][0]["flag"] == "daq_lost_events"
    text = summary_to_text(doc)
    assert "Run 5 (LIME, data) [complete]" in text and "daq_lost_events" in text
    c.close()
