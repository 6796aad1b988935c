"""Event/bank parsing and encoding."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from cygno_online.errors import MidasFormatError, UnsupportedFormatError
from cygno_online.midas.event import (
    BANK16,
    BANK32,
    BANK32A,
    DTYPES,
    EVENTID_BOR,
    EVENTID_EOR,
    EVENTID_MESSAGE,
    MIDAS_MAGIC,
    TID_CHAR,
    TID_DOUBLE,
    TID_STRING,
    TID_STRUCT,
    TID_UINT16,
    TID_UINT32,
    TYPE_NAMES,
    encode_event,
    encode_message,
    encode_special,
    parse_event,
)

FORMATS = [BANK16, BANK32, BANK32A]
HEADER_SIZE = {BANK16: 8, BANK32: 12, BANK32A: 16}


def _array(tid: int, n: int) -> np.ndarray:
    dt = DTYPES[tid]
    rng = np.random.default_rng(tid)
    if dt.kind == "f":
        return rng.normal(size=n).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dt.newbyteorder("="))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("tid", sorted(DTYPES))
def test_round_trip_every_fixed_type(fmt: int, tid: int) -> None:
    # 3 items: sizes that need padding for 1-, 2- and 4-byte types
    arr = _array(tid, 3)
    raw = encode_event(7, 42, [("ABCD", tid, arr)], bank_format=fmt, time_stamp=99, trigger_mask=3)
    assert len(raw) == 24 + HEADER_SIZE[fmt] + (arr.nbytes + 7) // 8 * 8
    ev = parse_event(raw)
    assert (ev.event_id, ev.serial, ev.trigger_mask, ev.time_stamp) == (7, 42, 3, 99)
    assert ev.flags == fmt
    bank = ev.banks["ABCD"]
    assert bank.type_id == tid and bank.size == arr.nbytes
    assert bank.data.dtype == DTYPES[tid]
    np.testing.assert_array_equal(bank.data, arr)
    assert np.shares_memory(bank.data, np.frombuffer(raw, np.uint8))
    assert TYPE_NAMES[tid] == bank.type_name


@pytest.mark.parametrize("fmt", FORMATS)
def test_layout_matches_bk_create(fmt: int) -> None:
    raw = encode_event(
        1, 5, [("AA", TID_UINT16, np.arange(3, dtype="<u2")), ("TXT", TID_STRING, b"hi\0")],
        bank_format=fmt,
    )  # fmt: skip
    h = HEADER_SIZE[fmt]
    area = (h + 8) + (h + 8)  # 6 bytes -> 8, 3 bytes -> 8
    event_id, _mask, serial, _stamp, data_size = struct.unpack_from("<HHIII", raw)
    assert (event_id, serial, data_size) == (1, 5, 8 + area)
    assert struct.unpack_from("<II", raw, 16) == (area, fmt)
    assert raw[24:28] == b"AA\0\0"
    if fmt == BANK16:
        assert struct.unpack_from("<HH", raw, 28) == (TID_UINT16, 6)
    else:
        assert struct.unpack_from("<II", raw, 28) == (TID_UINT16, 6)
    assert raw[24 + h + 6 : 24 + h + 8] == b"\0\0"  # zero padding
    ev = parse_event(raw)
    assert ev.banks["AA"].name == "AA"
    assert bytes(ev.banks["TXT"].data) == b"hi\0"


def test_variable_types_are_memoryviews() -> None:
    raw = encode_event(1, 0, [("STRC", TID_STRUCT, b"\x01\x02\x03"), ("S", TID_STRING, b"abc")])
    ev = parse_event(raw)
    assert isinstance(ev.banks["STRC"].data, memoryview)
    assert bytes(ev.banks["STRC"].data) == b"\x01\x02\x03"


def test_char_bank_is_uint8() -> None:
    ev = parse_event(encode_event(1, 0, [("CH", TID_CHAR, b"xyz")]))
    assert ev.banks["CH"].data.dtype == np.uint8
    assert bytes(ev.banks["CH"].data) == b"xyz"


def test_camera_event_is_a_view() -> None:
    img = np.arange(2304 * 2304, dtype=np.uint16)
    raw = encode_event(1, 0, [("CAM0", TID_UINT16, img)], bank_format=BANK32)
    ev = parse_event(raw)
    data = ev.banks["CAM0"].data
    assert data.base is raw  # a view of the event's bytes, no copy
    assert data.shape == (2304 * 2304,)
    np.testing.assert_array_equal(data, img)


def test_duplicate_banks_first_wins() -> None:
    raw = encode_event(
        1, 0, [("DUP", TID_UINT32, np.array([1], "<u4")), ("DUP", TID_UINT32, np.array([2], "<u4"))]
    )
    ev = parse_event(raw)
    assert ev.banks["DUP"].data[0] == 1
    assert ev.duplicate_banks == ("DUP",)


def test_special_events() -> None:
    bor = encode_special(EVENTID_BOR, 12, b'{"Runinfo": {"Run number": 12}}', time_stamp=7)
    ev = parse_event(bor)
    assert ev.is_bor and ev.is_special and not ev.is_eor and ev.flags is None
    assert ev.trigger_mask == MIDAS_MAGIC and ev.serial == 12
    assert ev.odb().get("/runinfo/run number") == 12
    assert ev.odb() is ev.odb()  # cached
    eor = parse_event(encode_special(EVENTID_EOR, 12, b"{}"))
    assert eor.is_eor
    msg = parse_event(encode_message("[fe,ERROR] boom", 3))
    assert msg.is_message and msg.message() == "[fe,ERROR] boom"
    assert msg.event_id == EVENTID_MESSAGE
    with pytest.raises(MidasFormatError):
        msg.odb()
    with pytest.raises(MidasFormatError):
        ev.message()


def test_bad_odb_in_bor_names_event() -> None:
    ev = parse_event(encode_special(EVENTID_BOR, 3, b"{not json"), source="f.mid", offset=0)
    with pytest.raises(MidasFormatError) as info:
        ev.odb()
    assert info.value.source == "f.mid" and info.value.serial == 3


def _one_bank(fmt: int = BANK32) -> bytearray:
    return bytearray(
        encode_event(1, 9, [("CAM0", TID_UINT16, np.arange(4, dtype="<u2"))], bank_format=fmt)
    )


def test_wrong_length() -> None:
    raw = _one_bank()
    with pytest.raises(MidasFormatError, match="announces"):
        parse_event(bytes(raw) + b"\0" * 8)
    with pytest.raises(MidasFormatError):
        parse_event(bytes(raw[:10]))


def test_bank_overrun_names_bank() -> None:
    raw = _one_bank()
    struct.pack_into("<I", raw, 24 + 8, 4000)  # bank size beyond the area
    with pytest.raises(MidasFormatError) as info:
        parse_event(bytes(raw), source="x.mid", offset=128)
    e = info.value
    assert (e.bank, e.source, e.offset, e.serial, e.event_id) == ("CAM0", "x.mid", 128, 9, 1)


def test_size_not_multiple_of_item() -> None:
    raw = _one_bank()
    struct.pack_into("<I", raw, 24 + 8, 7)
    with pytest.raises(MidasFormatError, match="multiple") as info:
        parse_event(bytes(raw))
    assert info.value.bank == "CAM0"


def test_unknown_flags_and_area_size() -> None:
    raw = _one_bank()
    struct.pack_into("<I", raw, 20, 0x99)
    with pytest.raises(MidasFormatError, match="flags"):
        parse_event(bytes(raw))
    raw = _one_bank()
    struct.pack_into("<I", raw, 16, 8)
    with pytest.raises(MidasFormatError, match="inconsistent"):
        parse_event(bytes(raw))


def test_unprintable_name() -> None:
    raw = _one_bank()
    raw[24:28] = b"\x01AB\xff"
    with pytest.raises(MidasFormatError, match="printable"):
        parse_event(bytes(raw))


def test_big_endian_special_rejected() -> None:
    raw = struct.pack(">HHIII", EVENTID_BOR, MIDAS_MAGIC, 1, 0, 2) + b"{}"
    with pytest.raises(UnsupportedFormatError, match="big-endian"):
        parse_event(raw)


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        encode_event(1, 0, [("TOOLONG", TID_UINT16, b"\0\0")])
    with pytest.raises(ValueError):
        encode_event(1, 0, [("BIG", TID_UINT16, bytes(70000))], bank_format=BANK16)
    with pytest.raises(ValueError):
        encode_event(1, 0, [("ODD", TID_DOUBLE, b"\0" * 5)])


def test_non_contiguous_and_big_endian_arrays() -> None:
    a = np.arange(20, dtype="<u2").reshape(4, 5)[:, ::2]
    b = np.arange(3, dtype=">u4")
    ev = parse_event(encode_event(1, 0, [("NC", TID_UINT16, a), ("BE", TID_UINT32, b)]))
    np.testing.assert_array_equal(ev.banks["NC"].data, a.ravel())
    np.testing.assert_array_equal(ev.banks["BE"].data, [0, 1, 2])


def test_mutable_buffers_give_read_only_views() -> None:
    buf = bytearray(
        encode_event(
            1, 0, [("CAM0", TID_UINT16, np.arange(10, dtype="<u2")), ("S", TID_STRING, b"ab")]
        )
    )
    ev = parse_event(buf)
    cam = ev.banks["CAM0"].data
    assert not cam.flags.writeable and ev.payload.readonly and ev.banks["S"].data.readonly
    assert np.shares_memory(cam, np.frombuffer(buf, np.uint8))
    with pytest.raises(ValueError):
        cam[0] = 1
