"""DAQ health: gap classification, rates, lag, frame period, run metric."""

from __future__ import annotations

import pytest
from cygno_online.analyzers.daqhealth import DaqHealthAnalyzer

from cygno_online.analysis.plugin import AnalyzerEnv, discover
from cygno_online.decode.items import EventContext, EventSeen, RunInfo
from cygno_online.errors import ConfigError
from cygno_online.params import Params

T0 = 1_700_000_000 * 10**9
RUN = RunInfo(run=12, start_time_ns=T0, exposure_s=0.3, description="S003:DATA:Fe")


def seen(serial, t_s, *, eid=1, size=1000, banks=("CAM0", "DGH0", "DIG0"), errors=(), rx=0):
    ctx = EventContext(12, serial, eid, 0, T0 + int(t_s * 1e9))
    return EventSeen(ctx, size, banks, errors, rx)


def make(params=None, options=None):
    a = DaqHealthAnalyzer()
    p = Params(params or {}, "analyzers[0].params")
    a.configure(p, AnalyzerEnv(options=options or {}))
    p.finish()
    outs = list(a.begin_run(RUN))
    return a, outs


def feed(a, events):
    out = []
    for e in events:
        out.extend(a.process(e, {}))
    return out


def test_discovered_and_sampling_parameter():
    assert discover()["daqhealth"] is DaqHealthAnalyzer
    assert make()[0].sampling == "nonblocking"
    assert make(options={"sampling": "all"})[0].sampling == "all"
    assert make({"sampling": "file"}, options={"sampling": "all"})[0].sampling == "file"
    with pytest.raises(ConfigError, match="sampling"):
        make({"sampling": "sometimes"})


def test_run_metric_at_begin_of_run():
    _, outs = make()
    (m,) = outs
    assert m.family == "runs" and m.time_ns == T0
    assert m.fields == {
        "state": "running",
        "run_number": 12,
        "pedestal": False,
        "description": "S003:DATA:Fe",
        "exposure_s": 0.3,
    }
    assert set(m.units) == set(m.fields)


@pytest.mark.parametrize(
    "sampling, lossy", [("nonblocking", True), ("recent", True), ("all", False), ("file", False)]
)
def test_gap_classification(sampling, lossy):
    a, _ = make({"sampling": sampling})
    outs = feed(a, [seen(1, 0), seen(2, 1), seen(6, 2)])
    last = outs[-1].fields
    assert last["missing"] == 3
    assert last["sampled_out"] == (3 if lossy else 0)
    assert last["daq_lost"] == (0 if lossy else 3)
    assert last["monitor_dropped"] == 0


def test_monitor_drops_noted_before_or_after_the_gap():
    a, _ = make({"sampling": "all"})
    feed(a, [seen(1, 0)])
    a.note_dropped(1, 2)  # before the gap shows
    out = feed(a, [seen(5, 1)])[-1].fields
    assert (out["missing"], out["monitor_dropped"], out["daq_lost"]) == (3, 2, 1)
    out = feed(a, [seen(8, 2)])[-1].fields  # 2 more missing, classified as DAQ loss...
    assert (out["daq_lost"], out["monitor_dropped"]) == (3, 2)
    a.note_dropped(1, 1)  # ...until the host reports it dropped one of them
    out = feed(a, [seen(9, 3)])[-1].fields
    assert (out["missing"], out["daq_lost"], out["monitor_dropped"]) == (5, 2, 3)
    a.note_dropped(3, 1)  # other event id: pending, does not touch id 1
    doc = a.end_run(RUN)
    assert doc["events"]["1"]["daq_lost"] == 2 and doc["events"]["1"]["monitor_dropped"] == 3
    # a drop whose gap never showed (here: no event of id 3 at all; in the
    # demo, serial 0 of slow-control ids dropped at a run's start) is still
    # the monitor's: the summary agrees with the daemon's drop counter
    assert doc["events"]["3"]["seen"] == 0 and doc["events"]["3"]["monitor_dropped"] == 1
    assert doc["totals"]["monitor_dropped"] == 4


def test_serial_reset_is_not_a_gap():
    a, _ = make({"sampling": "all"})
    out = feed(a, [seen(10, 0), seen(11, 1), seen(1, 2), seen(2, 3)])[-1].fields
    assert out["missing"] == 0 and out["serial_resets"] == 1


def test_rates_throughput_and_frame_period():
    a, _ = make({"sampling": "nonblocking", "window_s": 10})
    # the DAQ writes a frame every 0.5 s; we see every other one
    events = [seen(1 + 2 * i, i * 1.0, size=4_000_000) for i in range(21)]
    out = feed(a, events)[-1].fields
    assert out["rate_hz"] == pytest.approx(1.0)  # window holds 10 s
    assert out["daq_rate_hz"] == pytest.approx(2.0)
    assert out["bytes_per_s"] == pytest.approx(4e6)
    assert out["frame_period_s"] == pytest.approx(0.5)
    assert out["exposure_s"] == 0.3
    assert out["frame_overhead_s"] == pytest.approx(0.2)
    assert out["sampled_out"] == 20
    assert out["run_duration_s"] == pytest.approx(20.0)
    doc = a.end_run(RUN)
    assert doc["camera"]["frame_period_s"] == pytest.approx(0.5)
    assert doc["camera"]["frame_overhead_s"] == pytest.approx(0.2)
    assert doc["events"]["1"]["rate_hz"] == pytest.approx(1.0)
    assert doc["events"]["1"]["daq_rate_hz"] == pytest.approx(2.0)
    assert doc["run_duration_s"] == pytest.approx(20.0)


def test_slow_control_ids_have_no_frame_period_and_units_are_complete():
    a, _ = make()
    outs = feed(a, [seen(i, 60.0 * i, eid=5, banks=("INPT",)) for i in range(1, 4)])
    for m in outs:
        assert m.family == "daq" and m.tags == {"event_id": "5"}
        assert "frame_period_s" not in m.fields
        assert set(m.units) == set(m.fields)


def test_lag_only_for_live_sampling():
    a, _ = make({"sampling": "nonblocking"})
    out = feed(a, [seen(1, 0, rx=T0 + 1_500_000_000), seen(2, 1, rx=T0 + 1_700_000_000)])
    assert out[0].fields["lag_s"] == pytest.approx(1.5)
    doc = a.end_run(RUN)
    assert doc["lag_s"]["mean"] == pytest.approx(1.1) and doc["lag_s"]["max"] == pytest.approx(1.5)
    f, _ = make({"sampling": "file"})
    out = feed(f, [seen(1, 0, rx=T0 + 10**15)])
    assert "lag_s" not in out[0].fields
    assert f.end_run(RUN)["lag_s"] is None


def test_decode_errors_by_kind():
    a, _ = make()
    errs = (("DIG0", "size_mismatch", "..."), ("CAM0", "shape", "..."))
    feed(a, [seen(1, 0, errors=errs), seen(2, 1, errors=errs[:1])])
    doc = a.end_run(RUN)
    assert doc["decode_errors_by_kind"] == {"shape": 1, "size_mismatch": 2}
    assert doc["totals"]["decode_errors"] == 3
