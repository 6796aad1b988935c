"""The pmt analyzer plugin on DigitizerBoard items built directly."""

from __future__ import annotations

import numpy as np
import pytest
from cygno_online.analyzers.pmt import PmtAnalyzer
from cygno_online.analyzers.pmt.analyzer import ttt_deltas
from cygno_online.analyzers.pmt.reference import synthetic_block, ttt_deltas_reference

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.analysis.plugin import AnalyzerEnv, discover
from cygno_online.decode.items import DigitizerBoard, EventContext, RunInfo
from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.params import Params

RUN = RunInfo(run=42, start_time_ns=1_700_000_000_000_000_000)


def board_item(wf, *, board=0, model=1742, serial=1, ttt=None, sample_ns=1000 / 750):
    ntr, nch, ns = wf.shape
    ctx = EventContext(42, serial, 1, 0, RUN.start_time_ns + serial * 10**9)
    if ttt is None:
        ttt = np.arange(ntr, dtype=np.uint32) * 1000
    return DigitizerBoard(
        ctx=ctx,
        board=board,
        model=model,
        nsamples=ns,
        nchannels=nch,
        ntriggers=ntr,
        adcmax=4096,
        sampling=1333 if model == 1742 else 250,
        sample_ns=sample_ns,
        offsets=np.zeros(nch, np.uint32),
        ttt=np.asarray(ttt, dtype=np.uint32),
        waveforms=wf,
        layout="A",
    )


def make(params=None):
    a = PmtAnalyzer()
    p = Params(params or {}, "analyzers[0].params")
    a.configure(p, AnalyzerEnv())
    p.finish()
    a.begin_run(RUN)
    return a


def metrics(outs, **tags):
    return [
        o
        for o in outs
        if isinstance(o, Metric) and all(o.tags.get(k) == v for k, v in tags.items())
    ]


def test_discovered_as_pmt():
    assert discover()["pmt"] is PmtAnalyzer


def test_channel_and_board_metrics_with_units():
    wf = np.full((3, 8, 1024), 3850, dtype=np.uint16)
    wf[:, 1, 500:505] = [3800, 3700, 3600, 3700, 3800]  # 250 ADC negative pulse
    a = make()
    outs = list(a.process(board_item(wf, ttt=[0, 1000, 2000]), {}))
    ch1 = metrics(outs, channel="1")
    assert len(ch1) == 1
    m = ch1[0]
    assert m.family == "pmt" and m.tags == {"board": "0", "channel": "1"}
    assert m.fields["baseline"] == 3850.0 and m.fields["rms"] == 0.0
    assert m.fields["amplitude"] == 250.0
    assert m.fields["npeaks"] == 1.0 and m.fields["no_signal"] is False
    assert m.fields["peak_time"] == pytest.approx(502 * 1000 / 750)
    integral = 50 + 150 + 250 + 150 + 50
    assert m.fields["integral"] == pytest.approx(integral * 1000 / 750)
    # 1 V / 4096 counts, 50 ohm: counts*samples -> pC
    assert m.fields["charge"] == pytest.approx(integral / 4096 * (1000 / 750) / 50 * 1e3)
    assert set(m.units) == set(m.fields) and m.units["charge"] == "pC"
    assert m.units["tot"] == "ns" and m.units["amplitude"] == "ADC"
    # ch0 (trigger copy) is never analysed, ch5-7 (GEM) are on the fast board
    chans = sorted(int(x.tags["channel"]) for x in metrics(outs) if "channel" in x.tags)
    assert chans == [1, 2, 3, 4, 5, 6, 7]
    # no peak in ch2's 3 triggers: counted, not yet silent (20 triggers)
    quiet = metrics(outs, channel="2")[0]
    assert quiet.fields["triggers_since_peak"] == 3 and quiet.fields["no_signal"] is False
    assert m.fields["triggers_since_peak"] == 0
    b = next(x for x in metrics(outs, board="0") if "channel" not in x.tags)
    assert b.fields["multiplicity"] == 3
    assert b.fields["rate"] == pytest.approx(2 / (2000 * 8.5e-9))
    assert b.units["rate"] == "Hz"
    assert b.fields["silent_channels"] == 0
    a3 = make({"silent_after_triggers": 3})
    outs = list(a3.process(board_item(wf, ttt=[0, 1000, 2000]), {}))
    assert metrics(outs, channel="2")[0].fields["no_signal"] is True
    assert metrics(outs, channel="1")[0].fields["no_signal"] is False
    b = next(x for x in metrics(outs, board="0") if "channel" not in x.tags)
    assert b.fields["silent_channels"] == 6


def _image(ntr, pulses, nch=8):
    """A fast-board image of ``ntr`` triggers; ``pulses`` maps channel ->
    the triggers with a 250 ADC pulse."""
    wf = np.full((ntr, nch, 1024), 3850, dtype=np.uint16)
    for ch, trigs in pulses.items():
        for t in trigs:
            wf[t, ch, 500:505] = [3800, 3700, 3600, 3700, 3800]
    return wf


def test_silent_means_no_peak_for_n_triggers_not_one_image():
    # ch1 pulses in one trigger of every second image (4 triggers each): a
    # shifter's "silent" must not flicker on it; ch2 never pulses: silent
    # once 20 triggers passed without a peak, across images; ch3 pulses
    # once, then goes dead: silent 20 triggers after its last peak.
    a = make()
    states = {1: [], 2: [], 3: []}
    since = {1: [], 2: [], 3: []}
    for i in range(8):
        pulses = {1: [1] if i % 2 == 0 else []}
        if i == 0:
            pulses[3] = [2]
        outs = list(a.process(board_item(_image(4, pulses), serial=i + 1), {}))
        for ch in states:
            f = metrics(outs, channel=str(ch))[0].fields
            states[ch].append(f["no_signal"])
            since[ch].append(f["triggers_since_peak"])
    assert states[1] == [False] * 8 and since[1] == [2, 6, 2, 6, 2, 6, 2, 6]
    assert since[2] == [4, 8, 12, 16, 20, 24, 28, 32]
    assert states[2] == [False] * 4 + [True] * 4
    # ch3's peak in trigger 2 of 4: one trigger after it in the first image
    assert since[3] == [1, 5, 9, 13, 17, 21, 25, 29]
    assert states[3] == [False] * 5 + [True] * 3
    # an image without triggers changes nothing; a peak ends the silence
    a.process(board_item(np.zeros((0, 8, 1024), np.uint16), serial=9), {})
    outs = list(a.process(board_item(_image(4, {2: [3]}), serial=10), {}))
    f = metrics(outs, channel="2")[0].fields
    assert f["no_signal"] is False and f["triggers_since_peak"] == 0
    # the run summary still counts images without any peak (a channel dead
    # for the whole run: quality rule pmt_no_signal)
    chans = a.end_run(RUN)["boards"]["0"]["channels"]
    # ch1: the 4 odd images and the last; ch2: its first 8
    assert chans["1"]["silent_images"] == 5 and chans["2"]["silent_images"] == 8
    # a new run starts counting again
    a.begin_run(RUN)
    outs = list(a.process(board_item(_image(4, {}), serial=1), {}))
    assert metrics(outs, channel="2")[0].fields["triggers_since_peak"] == 4


def test_silent_after_triggers_per_board_and_bad_values():
    a = make({"silent_after_triggers": 50, "boards": {0: {"silent_after_triggers": 2}}})
    outs = list(a.process(board_item(_image(2, {}), board=0), {}))
    assert metrics(outs, channel="1")[0].fields["no_signal"] is True
    outs = list(a.process(board_item(_image(2, {}), board=1), {}))
    assert metrics(outs, channel="1")[0].fields["no_signal"] is False
    # per channel: the model's and the board's thresholds merge
    a = make(
        {
            "models": {1742: {"silent_after": {5: 100, 6: 100}}},
            "boards": {0: {"silent_after": {6: 3, 1: 1}}},
        }
    )
    outs = list(a.process(board_item(_image(2, {}), board=0), {}))
    got = {ch: metrics(outs, channel=str(ch))[0].fields["no_signal"] for ch in (1, 2, 5, 6)}
    assert got == {1: True, 2: False, 5: False, 6: False}
    outs = list(a.process(board_item(_image(2, {}), board=0, serial=2), {}))
    got = {ch: metrics(outs, channel=str(ch))[0].fields["no_signal"] for ch in (1, 2, 5, 6)}
    assert got == {1: True, 2: False, 5: False, 6: True}
    for bad, where in (
        ({"silent_after_triggers": 0}, "silent_after_triggers"),
        ({"models": {1742: {"silent_after_triggers": "x"}}}, "silent_after_triggers"),
        ({"boards": {0: {"silent_after": {5: 0}}}}, "boards.0.silent_after.5"),
        ({"boards": {0: {"silent_after": {"gem": 5}}}}, "silent_after.gem"),
        ({"boards": {0: {"silent_after": [5]}}}, "boards.0.silent_after"),
    ):
        with pytest.raises((ConfigError, ConfigErrors)) as e:
            make(bad)
        assert where in str(e.value)


def test_slow_board_uses_its_own_baseline_window_and_channels():
    wf = np.full((2, 8, 4000), 2100, dtype=np.uint16)
    # A pulse at sample 200 is inside the slow board's 400-sample window:
    wf[:, 1, 200] = 1900
    a = make()
    outs = a.process(board_item(wf, board=1, model=1720, sample_ns=4.0), {})
    chans = sorted(int(x.tags["channel"]) for x in metrics(outs) if "channel" in x.tags)
    assert chans == [1, 2, 3, 4]
    m = metrics(outs, board="1", channel="1")[0]
    assert m.fields["baseline"] == pytest.approx(2100 - 200 / 400)
    assert m.fields["rms"] > 0


def test_board_overrides_and_bad_config():
    a = make({"boards": {0: {"channels": [2, 9]}}, "polarity": "positive"})
    wf = np.full((1, 8, 128), 100, dtype=np.uint16)
    outs = a.process(board_item(wf), {})
    chans = sorted(x.tags["channel"] for x in metrics(outs) if "channel" in x.tags)
    assert chans == ["2"]  # channel 9 does not exist on an 8-channel board
    with pytest.raises((ConfigError, ConfigErrors)) as err:
        make({"nsigma": -1, "models": {"x": {}}, "boards": {1: {"bogus": 1}}})
    text = str(err.value)
    assert "analyzers[0].params.nsigma" in text and "bogus" in text and "models.x" in text


def test_saturation_baseline_drift_and_zero_triggers():
    a = make()
    wf = np.full((2, 8, 256), 3850, dtype=np.uint16)
    a.process(board_item(wf, serial=1), {})
    wf2 = np.full((2, 8, 256), 3860, dtype=np.uint16)
    wf2[1, 3, 150:160] = 0  # clipped at the lower rail
    wf2[0, 4, 10] = 4095  # upper rail
    outs = a.process(board_item(wf2, serial=2), {})
    assert metrics(outs, channel="1")[0].fields["baseline_drift"] == 10.0
    assert metrics(outs, channel="3")[0].fields["saturated"] == 1
    assert metrics(outs, channel="4")[0].fields["saturated"] == 1
    assert metrics(outs, channel="2")[0].fields["saturated"] == 0
    empty = np.zeros((0, 8, 256), dtype=np.uint16)
    outs = list(a.process(board_item(empty, serial=3), {}))
    ms = metrics(outs)
    assert len(ms) == 1 and ms[0].fields == {"multiplicity": 0}
    summary = a.end_run(RUN)
    b0 = summary["boards"]["0"]
    assert summary["triggers_total"] == 4 and b0["images"] == 3
    ch3 = b0["channels"]["3"]
    assert ch3["saturated_triggers"] == 1 and ch3["baseline_drift_max_adc"] == 10.0
    assert b0["channels"]["1"]["baseline_mean_adc"] == 3855.0
    assert b0["multiplicity_mean"] == pytest.approx(4 / 3)


def test_ttt_wrap():
    ttt = np.array([2**31 - 100, 2**31 - 1, 50, 1000], dtype=np.uint32)
    np.testing.assert_array_equal(ttt_deltas(ttt), [99, 51, 950])
    np.testing.assert_array_equal(ttt_deltas(ttt), ttt_deltas_reference(ttt))
    # bit 31 set (upper bit not part of the counter) is ignored
    np.testing.assert_array_equal(ttt_deltas(np.array([2**31 + 5, 10], np.uint32)), [5])
    a = make()
    wf = np.full((3, 8, 64), 3850, dtype=np.uint16)
    outs = a.process(board_item(wf, ttt=[2**31 - 1000, 500, 2000]), {})
    b = next(x for x in metrics(outs) if "channel" not in x.tags)
    assert b.fields["rate"] == pytest.approx(2 / (3000 * 8.5e-9))


def test_displays_average_latest_and_histograms():
    rng = np.random.default_rng(3)
    a = make({"average_triggers": 4})
    blocks = [synthetic_block(rng, 3, 8, 256) for _ in range(2)]
    a.process(board_item(blocks[0], serial=1), {})
    outs = a.process(board_item(blocks[1], serial=2), {})
    disp = {d.name: d for d in outs if isinstance(d, Display)}
    avg = disp["pmt/0/average"]
    assert avg.kind == "waveforms" and avg.meta["triggers"] == 4
    assert set(avg.arrays) == {f"ch{c}" for c in range(1, 8)}
    # the last 4 triggers: 1 of the first block, 3 of the second
    sig = []
    for blk in (blocks[0][2:], blocks[1]):
        for t in blk:
            w = t[1].astype(np.float64)
            sig.append(-(w - w[:100].mean()))
    np.testing.assert_allclose(avg.arrays["ch1"], np.mean(sig, axis=0), atol=1e-3)
    latest = disp["pmt/0/latest"]
    np.testing.assert_allclose(latest.arrays["ch1"], sig[-1], atol=1e-3)
    mult = disp["pmt/0/multiplicity"]
    assert mult.kind == "histogram" and mult.arrays["counts"][3] == 2
    amp = disp["pmt/0/amplitude/ch1"]
    assert amp.arrays["counts"].sum() == 6
    assert len(amp.arrays["edges"]) == len(amp.arrays["counts"]) + 1


def test_warm_up_and_readonly_views():
    a = make()
    a.warm_up()
    wf = np.full((1, 8, 64), 3850, dtype=np.uint16)
    wf.setflags(write=False)
    outs = a.process(board_item(wf), {})
    assert metrics(outs, channel="1")[0].fields["baseline"] == 3850.0


def test_ttt_bits_and_tick_per_model():
    a = make({"models": {1742: {"ttt_bits": 30, "ttt_tick_ns": 10.0}}})
    wf = np.full((2, 8, 64), 3850, dtype=np.uint16)
    outs = a.process(board_item(wf, ttt=[2**30 - 100, 100]), {})
    b = next(x for x in metrics(outs) if "channel" not in x.tags)
    assert b.fields["rate"] == pytest.approx(1 / (200 * 10e-9))
