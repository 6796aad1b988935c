"""The event stream: determinism of the bytes, time order, serials, bank
formats, BOR/EOR, CYGNO-04 time stamps, files and the command."""

from __future__ import annotations

import itertools
import json
import struct
from collections import Counter

import numpy as np
import pytest
from sim_helpers import parse_dgh0

from cygno_online.simulate import Rates, Simulator, load_truth, write_run

HEADER = struct.Struct("<HHIII")


def header(data: bytes) -> tuple[int, int, int, int, int]:
    return HEADER.unpack_from(data, 0)


def banks_of(data: bytes) -> tuple[int, dict[str, tuple[int, bytes]]]:
    """(flags, {name: (type, payload)}) of an event, parsed from midas.md."""
    size, flags = struct.unpack_from("<II", data, 16)
    p, end, out = 24, 24 + size, {}
    while p < end:
        name = data[p : p + 4].decode()
        if flags & 0x10:
            tid, n = struct.unpack_from("<II", data, p + 4)
            h = 16 if flags & 0x20 else 12
        else:
            tid, n = struct.unpack_from("<HH", data, p + 4)
            h = 8
        out[name] = (tid, data[p + h : p + h + n])
        p += h + (n + 7) // 8 * 8
    assert p == end
    return flags, out


def small(seed: int = 1, **kw) -> Simulator:
    kw.setdefault("sc_every_n_triggers", 4)
    return Simulator("crop:128", seed=seed, **kw)


def test_same_seed_same_bytes_different_seed_differs() -> None:
    a = b"".join(small(7).run_events(10))
    b = b"".join(small(7).run_events(10))
    c = b"".join(small(8).run_events(10))
    assert a == b and a != c
    # events() restarts the run on every call
    sim = small(7)
    first = [e.data for e in sim.events(5)]
    assert [e.data for e in sim.events(5)] == first


def test_sequence_order_serials_and_formats() -> None:
    sim = Simulator("crop:128", seed=3)  # real slow-control periods
    evs = list(sim.events(150))  # 150 * 0.6 s = 90 s of run
    times = [e.time_ns for e in evs]
    assert all(a < b for a, b in itertools.pairwise(times))
    by_id: dict[int, list[int]] = {}
    for e in evs:
        eid, mask, serial, stamp, size = header(e.data)
        assert (eid, serial) == (e.event_id, e.serial) and size == len(e.data) - 16
        assert mask == 0 and stamp == e.time_ns // 10**9
        by_id.setdefault(eid, []).append(serial)
        flags, banks = banks_of(e.data)
        if eid == 1:
            assert flags == 0x11 and e.truth is not None and e.truth.serial == serial
            assert set(banks) == {"CAM0", "DGH0", "DIG0"}
        else:
            assert flags == 0x01 and e.truth is None
    for serials in by_id.values():
        assert serials == list(range(len(serials)))
    counts = Counter({k: len(v) for k, v in by_id.items()})
    assert counts[1] == 150
    assert counts[3] == counts[4] == counts[5] == 2  # every 60 s from t=0.4 s
    assert counts[7] == counts[8] == 9  # every 10 s
    assert evs[-1].event_id == 1  # the run stops after the last trigger


def test_time_compression() -> None:
    evs = list(small(sc_every_n_triggers=5).events(12))
    ids = [e.event_id for e in evs]
    assert ids[:6] == [3, 4, 5, 7, 8, 1]
    assert Counter(ids) == {1: 12, 3: 3, 4: 3, 5: 3, 7: 3, 8: 3}


def test_slow_control_banks_in_events() -> None:
    sim = small(pedestal=False)
    seen = {}
    for e in sim.events(4):
        if e.event_id != 1:
            seen[e.event_id] = banks_of(e.data)[1]
    inpt = np.frombuffer(seen[5]["INPT"][1], "<f4")
    assert seen[5]["INPT"][0] == 9 and inpt.size == 24
    assert 20 < (inpt[0] - 4) / 16 * 200 - 50 < 24
    assert set(seen[3]) == {"DMND", "MSRD", "CRNT", "STAT", "TPTR"}
    assert np.frombuffer(seen[7]["TCAM"][1], "<f8").size == 1
    assert np.frombuffer(seen[8]["TMOD"][1], "<f4").size == 5


def test_bor_eor() -> None:
    sim = small(run=77)
    bor = sim.bor()
    eid, mask, serial, stamp, size = header(bor)
    assert (eid, mask, serial, stamp) == (0x8000, 0x494D, 77, int(sim.start_time))
    odb = json.loads(bor[16 : 16 + size])
    assert odb["Runinfo"]["Run number"] == 77 and odb["Configurations"]["Exposure"] == 0.3
    n = sum(1 for _ in sim.events(6))
    eor = sim.eor()
    eid, mask, serial, stamp, size = header(eor)
    assert (eid, mask, serial) == (0x8001, 0x494D, 77)
    odb = json.loads(eor[16 : 16 + size])
    stats = odb["Equipment"]["Trigger"]["Statistics"]
    assert stats["Events sent"] == 6 and n == 6 + 2 * 5
    assert odb["Runinfo"]["Stop time binary"] >= stamp - 1 > int(sim.start_time)


def test_pedestal_run_stream() -> None:
    sim = small(pedestal=True, rates=Rates(fe55=10, alpha=3, muon=3, spark=1))
    assert "PED" in sim.odb()["Experiment"]["Run Parameters"]["Run description"]
    for e in sim.events(5):
        if e.event_id == 1:
            assert e.truth.objects == [] and e.truth.n_pmt_triggers == 0
            _flags, banks = banks_of(e.data)
            boards = parse_dgh0(np.frombuffer(banks["DGH0"][1], "<u4"), "A")
            assert [b["nevents"] for b in boards] == [0, 0] and banks["DIG0"][1] == b""
        elif e.event_id == 3:
            msrd = np.frombuffer(banks_of(e.data)[1]["MSRD"][1], "<f4")
            assert np.abs(msrd).max() < 1


def test_no_pmt_stream_has_no_digitizer_banks() -> None:
    for e in small(pmt=False).events(3):
        if e.event_id == 1:
            assert set(banks_of(e.data)[1]) == {"CAM0"}


def test_cygno04_time_bank_and_millisecond_stamps() -> None:
    sim = Simulator(
        "cygno04", seed=1, sc_every_n_triggers=2, rates=Rates(fe55=0.5, alpha=0, muon=0, spark=0)
    )
    triggers = []
    for e in sim.events(3):
        eid, _m, _s, stamp, _n = header(e.data)
        _flags, banks = banks_of(e.data)
        if eid != 1:
            assert stamp == e.time_ns // 10**9  # slow control keeps Unix seconds
            continue
        triggers.append(e)
        assert {"CAM0", "CAM1", "DGH0", "DIG0"} <= set(banks)
        assert banks["CAM0"][0] == 4 and len(banks["CAM1"][1]) == 2304 * 4096 * 2
        if e.serial == 0:
            tid, raw = banks["TIME"]
            assert tid == 6 and np.frombuffer(raw, "<u4")[0] == int(sim.start_time)
        else:
            assert "TIME" not in banks
        assert stamp == round((e.time_ns / 1e6) - int(sim.start_time) * 1000)
        boards = parse_dgh0(np.frombuffer(banks["DGH0"][1], "<u4"), "B")
        n = sum(b["nevents"] * b["nchannels"] * b["nsamples"] for b in boards)
        assert n * 2 == len(banks["DIG0"][1])
    assert [header(e.data)[3] for e in triggers] == [600, 1200, 1800]


@pytest.mark.parametrize("ext", [".mid", ".mid.gz", ".mid.lz4"])
def test_write_run_reads_back(tmp_path, ext: str) -> None:
    from cygno_online.midas.reader import read_events

    path = tmp_path / f"run00005{ext}"
    truth = write_run(path, events=5, layout="crop:128", seed=2, run=5, sc_every_n_triggers=3)
    expected = b"".join(small(2, run=5, sc_every_n_triggers=3).run_events(5))
    events = list(read_events(path))
    assert len(events) == 2 + 5 + 2 * 5
    assert events[0].header.event_id == 0x8000 and events[-1].header.event_id == 0x8001
    triggers = [e for e in events if e.header.event_id == 1]
    assert [e.header.serial_number for e in triggers] == list(range(5))
    assert len(truth.frames) == 5 and truth.event_counts[1] == 5
    if ext == ".mid":
        assert path.read_bytes() == expected


def test_simulate_command(tmp_path, capsys) -> None:
    from cygno_online.cli import main
    from cygno_online.midas.reader import read_events

    out = tmp_path / "run00009.mid.lz4"
    tj = tmp_path / "truth.json"
    rc = main(
        ["simulate", "--out", str(out), "--events", "4", "--layout", "crop:256", "--seed", "4",
         "--run", "9", "--truth", str(tj), "--sc-every", "2"]
    )  # fmt: skip
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and str(out) in line and "run 9" in line and "4 triggers" in line
    truth = load_truth(tj)
    assert truth["run"] == 9 and truth["layout"] == "crop:256" and len(truth["frames"]) == 4
    assert truth["cameras"][0]["shape"] == [256, 256]
    ids = [e.header.event_id for e in read_events(out)]
    assert ids.count(1) == 4 and ids[0] == 0x8000 and ids[-1] == 0x8001
    sim = Simulator("crop:256", seed=4, run=9, sc_every_n_triggers=2)
    for _ in sim.events(4):
        pass
    assert truth["frames"] == [sim.frame_truth(k).to_dict() for k in range(4)]
    rc = main(["simulate", "--out", str(tmp_path / "x.mid"), "--events", "1", "--layout", "bad"])
    assert rc == 2


def test_project_parser_and_run_info() -> None:
    from cygno_online.decode.runinfo import run_info_from_odb
    from cygno_online.midas.event import BANK16, BANK32, parse_event

    for pedestal in (False, True):
        sim = small(run=12, pedestal=pedestal, exposure_s=0.5)
        bor = parse_event(sim.bor(), source="sim", offset=0)
        assert bor.is_bor and bor.serial == 12
        info = run_info_from_odb(bor.odb(), run=12, time_stamp=bor.time_stamp, source="sim")
        assert info.pedestal is pedestal and info.exposure_s == 0.5
        assert info.start_time_ns == int(sim.start_time) * 10**9
        for e in sim.events(3):
            ev = parse_event(e.data, source="sim", offset=0)
            assert (ev.event_id, ev.serial) == (e.event_id, e.serial)
            if ev.event_id == 1:
                assert ev.flags == BANK32
                img = ev.banks["CAM0"].data.reshape(128, 128)
                assert np.array_equal(img, sim.trigger(e.serial).images[0])
            else:
                assert ev.flags == BANK16
        eor = parse_event(sim.eor(), source="sim", offset=0)
        assert eor.is_eor and eor.odb()["/Equipment/Trigger/Statistics/Events sent"] == 3
