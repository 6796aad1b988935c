from __future__ import annotations

import numpy as np
import pytest
from decode_helpers import TID_FLOAT, TID_UINT16, TID_UINT32, dgh0_c, event, lime_dgh0_a
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cygno_online.decode.bankmap import EventDecoder
from cygno_online.decode.digitizer import sample_ns
from cygno_online.decode.items import DigitizerBoard


def boards_of(res):
    return [i for i in res.items if isinstance(i, DigitizerBoard)]


def run(banks, **kw):
    ev = event(1, banks, **kw)
    return ev, EventDecoder.lime().decode(ev, run=3, source="t")


def test_sample_ns_units_differ_per_model():
    assert sample_ns(1742, 1333) == pytest.approx(1.333)
    assert sample_ns(1720, 250) == pytest.approx(4.0)
    assert sample_ns(1742, 200) == pytest.approx(0.2)


@pytest.mark.parametrize("ntrig", [(0, 0), (1, 1), (3, 3), (1, 3), (0, 2)])
def test_layout_a_lime_boards(ntrig):
    dgh, dig = lime_dgh0_a(ntrig)
    ev, res = run([("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig)])
    assert not res.errors, res.errors
    fast, slow = boards_of(res)
    assert (fast.board, fast.model, fast.layout) == (0, 1742, "A")
    assert (slow.board, slow.model, slow.layout) == (1, 1720, "A")
    assert fast.waveforms.shape == (ntrig[0], 32, 1024)
    assert slow.waveforms.shape == (ntrig[1], 8, 4000)
    assert fast.ntriggers == ntrig[0] and slow.ntriggers == ntrig[1]
    assert fast.sample_ns == pytest.approx(1.333) and slow.sample_ns == pytest.approx(4.0)
    assert fast.sampling == 1333 and slow.sampling == 250 and fast.adcmax == 4096
    assert list(fast.offsets) == list(range(100, 132))
    assert list(fast.ttt) == [1000 + k for k in range(ntrig[0])]
    assert list(fast.sic) == list(range(ntrig[0]))
    assert slow.sic is None and fast.ttt1 is None and fast.pattern is None
    n0 = fast.waveforms.size
    assert np.array_equal(fast.waveforms.reshape(-1), dig[:n0])
    assert np.array_equal(slow.waveforms.reshape(-1), dig[n0:])
    if dig.size:
        assert np.shares_memory(fast.waveforms if n0 else slow.waveforms, ev.banks["DIG0"].data)
    # trigger t, channel c is samples [(t*nch + c)*ns : ...] of the board block
    if ntrig[1] >= 2:
        off = n0 + (1 * 8 + 5) * 4000
        assert np.array_equal(slow.waveforms[1, 5], dig[off : off + 4000])
    assert fast.key == "board0"


@pytest.mark.parametrize("ntrig", [(0, 0), (1, 3)])
def test_layout_b_trigger_counts(ntrig):
    dgh, dig = lime_dgh0_a(ntrig, versioned=True)
    _, res = run([("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig)])
    assert not res.errors
    assert [(b.layout, b.ntriggers, len(b.ttt1)) for b in boards_of(res)] == [
        ("B", ntrig[0], ntrig[0]),
        ("B", ntrig[1], ntrig[1]),
    ]


def test_several_fitting_layouts_refused(monkeypatch):
    from cygno_online.decode import digitizer

    monkeypatch.setattr(digitizer, "LAYOUTS", (*digitizer.LAYOUTS, ("A2", digitizer.LAYOUTS[0][1])))
    dgh, dig = lime_dgh0_a((1, 1))
    _, res = run([("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig)])
    (err,) = res.errors
    assert "fits several layouts (A, A2): refusing to guess" in str(err)


def test_layout_b():
    dgh, dig = lime_dgh0_a((2, 1), versioned=True)
    _, res = run([("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig)])
    assert not res.errors, res.errors
    fast, slow = boards_of(res)
    assert fast.layout == slow.layout == "B"
    assert list(fast.ttt) == [1000, 1001] and list(fast.ttt1) == [2000, 2001]
    assert list(fast.sic) == [0, 1] and list(slow.ttt1) == [2000]
    assert fast.waveforms.shape == (2, 32, 1024) and slow.waveforms.shape == (1, 8, 4000)


def test_layout_c_concatenated_headers():
    dgh = dgh0_c([(1742, 1024, 32, 2, 1333), (1720, 4000, 8, 1, 250)])
    dig = np.arange(2 * 32 * 1024 + 8 * 4000, dtype=np.uint32).astype(np.uint16)
    ev, res = run([("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig)])
    assert not res.errors, res.errors
    fast, slow = boards_of(res)
    assert fast.layout == "C" and (fast.board, slow.board) == (0, 1)
    assert list(fast.pattern) == [5, 6] and list(slow.pattern) == [5]
    assert list(fast.sic) == [0, 1] and slow.sic is None
    assert slow.waveforms.shape == (1, 8, 4000)
    assert np.shares_memory(slow.waveforms, ev.banks["DIG0"].data)


def test_layout_c_single_board():
    dgh = dgh0_c([(1720, 100, 4, 3, 250)], version=1002)
    dig = np.zeros(3 * 4 * 100, np.uint16)
    _, res = run([("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig)])
    (b,) = boards_of(res)
    assert b.layout == "C" and b.waveforms.shape == (3, 4, 100)


def test_missing_banks_and_zero_triggers_are_normal():
    _, res = run([])
    assert not res.errors and not boards_of(res)
    dgh, dig = lime_dgh0_a((0, 0))
    assert dig.size == 0
    # header announcing no triggers, DIG0 absent: boards with ntriggers=0
    _, res = run([("DGH0", TID_UINT32, dgh)])
    assert not res.errors
    assert [b.ntriggers for b in boards_of(res)] == [0, 0]
    # empty DIG0 without a header
    _, res = run([("DIG0", TID_UINT16, np.zeros(0, np.uint16))])
    assert not res.errors and not boards_of(res)


def test_data_without_header_is_an_error():
    _, res = run([("DIG0", TID_UINT16, np.zeros(10, np.uint16))])
    (err,) = res.errors
    assert err.bank == "DIG0" and "no digitizer header bank" in str(err)


def test_header_announcing_data_but_dig0_missing():
    dgh, _ = lime_dgh0_a((1, 0))
    _, res = run([("DGH0", TID_UINT32, dgh)])
    (err,) = res.errors
    assert err.bank == "DGH0" and "data bank missing" in str(err)


def test_off_by_one_word_rejected():
    dgh, dig = lime_dgh0_a((1, 1))
    for bad in (dgh[:-1], np.append(dgh, np.uint32(0))):
        _, res = run([("DGH0", TID_UINT32, bad), ("DIG0", TID_UINT16, dig)])
        (err,) = res.errors
        assert err.bank == "DGH0" and err.kind == "digitizer_header"
        assert "fit no known layout" in str(err)
        assert "A:" in str(err) and "B:" in str(err) and "C:" in str(err)
    _, res = run([("DGH0", TID_UINT32, np.append(dgh, np.uint32(0))), ("DIG0", TID_UINT16, dig)])
    assert "1 word(s) left over after 2 board(s)" in str(res.errors[0])
    _, res = run([("DGH0", TID_UINT32, dgh[:-1]), ("DIG0", TID_UINT16, dig)])
    assert "header ends inside board 1" in str(res.errors[0])


def test_wrong_dig0_length_rejected():
    dgh, dig = lime_dgh0_a((1, 1))
    _, res = run([("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig[:-1])])
    (err,) = res.errors
    assert f"header announces {dig.size} samples" in str(err)
    assert f"DIG0 has {dig.size - 1}" in str(err)


def test_absurd_nboard_rejected():
    dgh, dig = lime_dgh0_a((1, 1))
    bad = dgh.copy()
    bad[0] = 500
    _, res = run([("DGH0", TID_UINT32, bad), ("DIG0", TID_UINT16, dig)])
    (err,) = res.errors
    assert "nboard 500 larger than 16" in str(err)


def test_absurd_channel_count_rejected():
    dgh, dig = lime_dgh0_a((1, 1))
    bad = dgh.copy()
    bad[3] = 100000  # board 0 nchannels
    _, res = run([("DGH0", TID_UINT32, bad), ("DIG0", TID_UINT16, dig)])
    assert "nchannels 100000 outside" in str(res.errors[0])


def test_layout_c_inconsistent_headers():
    dgh = dgh0_c([(1720, 100, 4, 1, 250), (1720, 100, 4, 1, 250)])
    dig = np.zeros(2 * 400, np.uint16)
    bad = dgh.copy()
    first_len = dgh.size // 2
    bad[first_len + 2] = 0  # second header claims board_index 0 again
    _, res = run([("DGH0", TID_UINT32, bad), ("DIG0", TID_UINT16, dig)])
    assert "board_index repeated" in str(res.errors[0])
    _, res = run([("DGH0", TID_UINT32, dgh[:first_len]), ("DIG0", TID_UINT16, dig[:400])])
    assert "1 header(s) but nboard says 2" in str(res.errors[0])


def test_header_type_checked_and_other_banks_survive():
    dgh, dig = lime_dgh0_a((1, 1))
    img = np.zeros((64, 64), np.uint16)
    _, res = run(
        [
            ("CAM0", TID_UINT16, img),
            ("DGH0", TID_FLOAT, dgh.view(np.float32)),
            ("DIG0", TID_UINT16, dig),
        ]
    )
    (err,) = res.errors
    assert err.bank == "DGH0" and err.kind == "type"
    assert any(getattr(i, "bank", "") == "CAM0" for i in res.items)


def test_custom_data_bank_name():
    dgh, dig = lime_dgh0_a((1, 0))
    dec = EventDecoder.from_config(
        {"banks": [{"bank": "HDR?", "decoder": "digitizer", "data_bank": "WAV{n}"}]}
    )
    ev = event(1, [("HDR2", TID_UINT32, dgh), ("WAV2", TID_UINT16, dig)])
    res = dec.decode(ev, run=1)
    assert not res.errors and len(boards_of(res)) == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 40), max_size=60),
    nsamples=st.integers(0, 300),
)
def test_garbage_headers_never_raise(words, nsamples):
    dgh = np.array(words, dtype=np.uint32)
    dig = np.zeros(nsamples, np.uint16)
    _, res = run([("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig)])
    for b in boards_of(res):
        assert b.waveforms.shape == (b.ntriggers, b.nchannels, b.nsamples)
    assert sum(b.waveforms.size for b in boards_of(res)) in (0, nsamples)
    assert all(e.bank == "DGH0" for e in res.errors)
