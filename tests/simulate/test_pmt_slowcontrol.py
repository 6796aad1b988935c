"""DGH0/DIG0 consistency and PMT pulses; slow-control readings; ODB."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import FORMULAS, parse_dgh0, split_dig0

from cygno_online.simulate import Rates, Simulator
from cygno_online.simulate.slowcontrol import (
    EVENTID_CAMERA,
    EVENTID_CATHODE,
    EVENTID_ENVIRONMENT,
    EVENTID_HV,
    EVENTID_TRIGGER_MODULE,
    HV_NAMES,
    INPUT_NAMES,
    SlowControlModel,
)


@pytest.mark.parametrize(("layout", "dgh"), [("crop:128", "A"), ("cygno04", "B")])
def test_dgh0_dig0_consistent(layout: str, dgh: str) -> None:
    rates = Rates(fe55=2, alpha=0.5, muon=0.5, spark=0.05)
    if layout == "cygno04":
        rates = Rates(fe55=0.7, alpha=0.2, muon=0.2, spark=0)
    sim = Simulator(layout, seed=21, rates=rates)
    seen = set()
    last_ttt = -1
    for k in range(4 if layout == "cygno04" else 10):
        t = sim.trigger(k, reuse_buffers=True)
        boards = parse_dgh0(t.dgh0, dgh)
        assert [b["model"] for b in boards] == [1742, 1720]
        assert sum(b["nevents"] * b["nchannels"] * b["nsamples"] for b in boards) == t.dig0.size
        nev = {b["nevents"] for b in boards}
        assert nev == {t.truth.n_pmt_triggers}
        assert t.truth.n_pmt_triggers == sum(o.pmt_triggers for o in t.truth.objects)
        assert t.truth.n_pmt_triggers == len(t.truth.objects)
        seen.add(t.truth.n_pmt_triggers)
        fast, slow = split_dig0(t.dig0, boards)
        b0 = boards[0]
        assert b0["adcmax"] == 4096 and b0["sampling"] == 1333 and boards[1]["sampling"] == 250
        assert len(b0["sic"]) == b0["nevents"] and boards[1]["sic"] is None
        if dgh == "B":
            assert len(b0["ttt1"]) == b0["nevents"]
        ttt = b0["ttt"]
        assert ttt == sorted(ttt) and (not ttt or ttt[0] > last_ttt)
        if ttt:
            last_ttt = ttt[-1]
        # Same trigger times on both boards, counted with each board's clock.
        tick = {1742: 8.5, 1720: 8.0}
        assert [int(v * tick[1742] // tick[1720]) for v in ttt] == pytest.approx(
            boards[1]["ttt"], abs=2
        )
        for e in range(b0["nevents"]):
            base_f = fast[e, :, :100].mean(axis=1)
            base_s = slow[e, :, :400].mean(axis=1)
            assert np.all(np.abs(base_f - 3850) < 30) and np.all(np.abs(base_s - 2100) < 30)
            assert 1.5 < fast[e, 10, :].std() < 5  # an unconnected channel: noise only
            # ch0 trigger copy and the four PMTs go negative
            assert base_f[0] - fast[e, 0].min() > 500
            depth = base_f[1:5] - fast[e, 1:5].min(axis=1)
            assert depth.sum() > 40 and (depth > 8).all(), depth
    assert max(seen) >= 1


def test_pulse_amplitude_follows_energy() -> None:
    sim = Simulator("crop:512", seed=5, rates=Rates(fe55=0, alpha=0, muon=0, spark=0))
    from cygno_online.simulate.pmt import DigitizerModel, trigger_for
    from cygno_online.simulate.truth import InjectedObject

    digi = DigitizerModel(sim.layout.boards, 0)
    rng = np.random.Generator(np.random.PCG64(1))
    depths = []
    for integral in (1500.0, 3000.0, 6000.0):
        o = InjectedObject("fe55", 0, (256.0, 256.0), (0, 0, 1, 1), 0.0, 0.0, integral, 3.0, 1)
        dgh, dig = digi.render(rng, [trigger_for(o, (512, 512), 1e6)], 0, "A")
        fast, _slow = split_dig0(dig, parse_dgh0(dgh, "A"))
        depths.append(float((fast[0, 1:5, :100].mean(axis=1) - fast[0, 1:5].min(axis=1)).sum()))
    assert depths[0] < depths[1] < depths[2]
    assert depths[2] / depths[0] == pytest.approx(4, rel=0.3)


def test_no_pmt_no_digitizer_banks() -> None:
    sim = Simulator("crop:64", pmt=False, seed=1)
    t = sim.trigger(0)
    assert t.dgh0 is None and t.dig0 is None
    assert [b[0] for b in t.banks] == ["CAM0"]
    assert t.truth.n_pmt_triggers == 0 and all(o.pmt_triggers == 0 for o in t.truth.objects)


def test_cygno04_time_bank_only_on_first_trigger() -> None:
    sim = Simulator("cygno04", cameras=3, seed=1, rates=Rates(spark=0), pmt=False)
    names0 = [b[0] for b in sim.trigger(0, reuse_buffers=True).banks]
    names1 = [b[0] for b in sim.trigger(1, reuse_buffers=True).banks]
    assert names0 == ["CAM0", "CAM1", "CAM2", "TIME"] and names1 == ["CAM0", "CAM1", "CAM2"]
    time_bank = sim.trigger(0, reuse_buffers=True).banks[-1][2]
    assert time_bank.dtype == np.uint32 and int(time_bank[0]) == int(sim.start_time)
    assert sim._header_stamp(sim.trigger_time_ns(5), True) == round(6 * sim.period_s * 1000)
    assert sim._header_stamp(sim.trigger_time_ns(5), False) == int(sim.start_time + 3.6)


def _banks(model: SlowControlModel, eid: int, t: float, seed: int = 0) -> dict:
    rng = np.random.Generator(np.random.PCG64(seed))
    return {name: (tid, arr) for name, tid, arr in model.banks(eid, rng, t, 1.5)}


def test_environment_converts_to_plausible_values() -> None:
    model = SlowControlModel(ncameras=1, pedestal=False)
    t0 = 1_767_225_600.0
    values = {i: [] for i in FORMULAS}
    for j in range(30):
        tid, inpt = _banks(model, EVENTID_ENVIRONMENT, t0 + 3600 * j, j)["INPT"]
        assert tid == 9 and inpt.dtype == np.float32 and inpt.size == len(INPUT_NAMES) == 24
        for i, f in FORMULAS.items():
            values[i].append(f(float(inpt[i])))
    v = {i: np.array(x) for i, x in values.items()}
    assert ((v[0] > 20) & (v[0] < 24)).all()  # gas temperature C
    assert ((v[5] > 0.88) & (v[5] < 1.0)).all()  # LIME pressure bar
    assert ((v[3] > 0.88) & (v[3] < 0.95)).all()  # atmospheric pressure bar
    assert ((v[9] > 18) & (v[9] < 24)).all()  # atmospheric temperature C
    assert ((v[13] > 30) & (v[13] < 55)).all()  # humidity %
    assert ((v[22] > 1.3) & (v[22] < 1.5)).all()  # gas density g/l
    # it drifts (slowly): values over 30 hours are not constant
    assert v[0].std() > 0.05 and v[13].std() > 0.5
    # the LIME vessel is slightly above atmospheric pressure
    assert np.mean(v[5] - v[3]) > 0


def test_hv_cathode_camera_trigger_module() -> None:
    on = SlowControlModel(ncameras=2, pedestal=False)
    off = SlowControlModel(ncameras=2, pedestal=True)
    t = 1_767_225_600.0
    hv = _banks(on, EVENTID_HV, t)
    assert set(hv) == {"DMND", "MSRD", "CRNT", "STAT", "TPTR"}
    assert hv["STAT"][0] == 6 and hv["DMND"][0] == 9
    dmnd, msrd = hv["DMND"][1], hv["MSRD"][1]
    assert dmnd.size == len(HV_NAMES) == 26
    assert dmnd[HV_NAMES.index("VGEM1")] == 400 and abs(msrd - dmnd).max() < 2
    hv_off = _banks(off, EVENTID_HV, t)
    assert hv_off["DMND"][1].max() == 0 and np.abs(hv_off["MSRD"][1]).max() < 1
    cat = _banks(on, EVENTID_CATHODE, t)
    assert cat["DMND"][1][0] == 41250 and -41500 < cat["MSRD"][1][0] < -41000
    assert abs(_banks(off, EVENTID_CATHODE, t)["MSRD"][1][0]) < 20
    tid, tcam = _banks(on, EVENTID_CAMERA, t)["TCAM"]
    assert tid == 10 and tcam.dtype == np.float64 and tcam.shape == (2,)
    assert np.all(np.abs(tcam + 18.5) < 0.5)
    tid, tmod = _banks(on, EVENTID_TRIGGER_MODULE, t)["TMOD"]
    assert tid == 9 and tmod.shape == (5,) and tmod[0] == pytest.approx(1.5)


def test_odb_shape() -> None:
    data = Simulator("crop:256", run=42, exposure_s=0.5).odb()
    assert data["Runinfo"]["Run number"] == 42
    assert isinstance(data["Runinfo"]["Start time binary"], int)
    assert data["Experiment"]["Run Parameters"]["Run description"].startswith("S003:DATA:Fe")
    cfg = data["Configurations"]
    assert cfg["Exposure"] == 0.5 and cfg["Pedestal"] is False and cfg["FreeRunning"] is False
    assert data["Equipment"]["Environment"]["Settings"]["Names Input"] == INPUT_NAMES
    assert data["Equipment"]["HV"]["Settings"]["Names"] == HV_NAMES
    env = data["History"]["Display"]["Environment"]
    assert env["Temperature"]["Formula"][1] == "(x-4)/16*200-50"
    assert data["Simulation"]["Cameras"] == [{"Bank": "CAM0", "Rows": 256, "Cols": 256}]
    ped = Simulator("crop:256", pedestal=True).odb()
    assert "PED" in ped["Experiment"]["Run Parameters"]["Run description"]
    assert ped["Configurations"]["Pedestal"] is True


def test_time_tags_follow_trigger_times_and_wrap_like_the_boards() -> None:
    sim = Simulator("cygno04", cameras=1, seed=3, rates=Rates(fe55=3, alpha=0, muon=0, spark=0))
    period_ns = sim.period_s * 1e9
    wrapped = False
    for serial in (0, 1, 40, 41):  # 40 * 0.6 s = 24 s: past one 17.2 s wrap
        t = sim.trigger(serial, reuse_buffers=True)
        boards = parse_dgh0(t.dgh0, "B")
        b = boards[0]
        assert b["nevents"] >= 1
        full = [hi * 2**31 + lo for hi, lo in zip(b["ttt1"], b["ttt"], strict=True)]
        wrapped |= any(hi > 0 for hi in b["ttt1"])
        assert all(v < 2**31 for v in b["ttt"])
        start = serial * period_ns
        tick = {1742: 8.5, 1720: 8.0}[b["model"]]
        for ticks in full:
            assert start - tick <= ticks * tick <= start + sim.exposure_s * 1e9
        assert full == sorted(full)
    assert wrapped
