"""Property tests: arbitrary bytes never crash the parser or the reader."""

from __future__ import annotations

import contextlib
import io
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cygno_online.errors import MidasFormatError
from cygno_online.midas.event import (
    BANK16,
    BANK32,
    BANK32A,
    EVENTID_BOR,
    TID_STRING,
    TID_UINT16,
    TID_UINT32,
    encode_event,
    encode_special,
    parse_event,
)
from cygno_online.midas.odb import Odb
from cygno_online.midas.reader import MidasReader

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_events() -> list[bytes]:
    return [
        encode_event(
            1,
            3,
            [
                ("CAM0", TID_UINT16, np.arange(40, dtype="<u2")),
                ("DGH0", TID_UINT32, np.arange(3, dtype="<u4")),
                ("TXT", TID_STRING, b"abc"),
            ],
            bank_format=fmt,
        )
        for fmt in (BANK16, BANK32, BANK32A)
    ] + [encode_special(EVENTID_BOR, 1, b'{"a/key": {"type": 7}, "a": 1}')]


VALID = _valid_events()


def _parse_ok(buf: bytes) -> None:
    try:
        ev = parse_event(buf)
    except MidasFormatError:
        return
    for bank in ev.banks.values():
        if isinstance(bank.data, np.ndarray):
            assert bank.data.nbytes == bank.size
    if ev.is_bor or ev.is_eor:
        with contextlib.suppress(MidasFormatError):
            ev.odb()


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_into_parse_event(data: bytes) -> None:
    _parse_ok(data)


@SETTINGS
@given(
    st.sampled_from(range(len(VALID))),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_events_into_parse_event(which: int, edits: list[tuple[int, int]]) -> None:
    buf = bytearray(VALID[which])
    for pos, value in edits:
        buf[pos % len(buf)] = value
    _parse_ok(bytes(buf))
    # a consistent header size around mutated content too
    struct.pack_into("<I", buf, 12, len(buf) - 16)
    _parse_ok(bytes(buf))


@SETTINGS
@given(
    st.lists(st.sampled_from(range(len(VALID))), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=6),
    st.integers(0, 64),
    st.booleans(),
)
def test_reader_on_mutated_streams(
    order: list[int], edits: list[tuple[int, int]], cut: int, resync: bool
) -> None:
    buf = bytearray(b"".join(VALID[i] for i in order))
    for pos, value in edits:
        buf[pos % len(buf)] = value
    data = bytes(buf[: len(buf) - cut])
    reader = MidasReader(io.BytesIO(data), resync=resync)
    try:
        events = list(reader)
    except MidasFormatError:
        assert not resync or reader.events_read == 0
        return
    assert reader.events_read == len(events)
    assert reader.bytes_read + reader.skipped_bytes <= len(data) + reader.skipped_bytes
    if resync:
        consumed = sum(e.nbytes for e in events)
        assert consumed + reader.skipped_bytes <= len(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_reader_on_random_bytes(data: bytes) -> None:
    reader = MidasReader(io.BytesIO(data))
    with contextlib.suppress(MidasFormatError):
        list(reader)


@SETTINGS
@given(st.text(max_size=200))
def test_random_odb_dumps(text: str) -> None:
    with contextlib.suppress(MidasFormatError):
        Odb.from_dump(text.encode())
