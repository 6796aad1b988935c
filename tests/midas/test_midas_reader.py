"""MidasReader and MidasWriter: real files, compression, truncation, resync,
big-endian, stdin, follow mode, byte compatibility."""

from __future__ import annotations

import collections
import gzip
import io
import struct
import subprocess
import sys
import threading
from pathlib import Path

import lz4.frame
import numpy as np
import pytest

from cygno_online.errors import MidasFormatError, TruncatedEventError, UnsupportedFormatError
from cygno_online.midas.compression import ByteStream, detect_compression
from cygno_online.midas.event import (
    BANK16,
    BANK32,
    BANK32A,
    EVENTID_BOR,
    MIDAS_MAGIC,
    TID_DOUBLE,
    TID_FLOAT,
    TID_UINT16,
    TID_UINT32,
    encode_event,
    parse_event,
)
from cygno_online.midas.reader import MidasReader, read_events
from cygno_online.midas.writer import MidasWriter
from cygno_online.testing.waiting import wait_for

REAL = {
    "run00010.mid.lz4": (10, {0x8000: 1, 1: 4, 5: 5, 7: 3, 0x8001: 1}, 2304),
    "run00011.mid.gz": (11, {0x8000: 1, 1: 6, 5: 7, 7: 5, 0x8001: 1}, 512),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files(shared_data: Path, name: str) -> None:
    run, counts, side = REAL[name]
    reader = MidasReader(shared_data / "midas" / name, resync=False)
    events = list(reader)
    assert collections.Counter(e.event_id for e in events) == counts
    assert events[0].is_bor and events[-1].is_eor and events[0].serial == run
    assert reader.problems == [] and not reader.truncated
    assert reader.compression == ("lz4" if name.endswith("lz4") else "gzip")
    assert reader.raw_bytes_read == (shared_data / "midas" / name).stat().st_size
    assert reader.bytes_read == sum(e.nbytes for e in events)
    cams = [e for e in events if e.event_id == 1]
    for ev in cams:
        cam = ev.banks["CAM0"].data
        assert cam.dtype == np.dtype("<u2") and cam.size == side * side
        buf = ev.payload.obj
        assert isinstance(buf, bytes | bytearray) and len(buf) == ev.nbytes
        assert np.shares_memory(cam, np.frombuffer(buf, np.uint8))
        assert not cam.flags.writeable
    # serials of each id count up from 0
    for eid in (1, 5, 7):
        assert [e.serial for e in events if e.event_id == eid] == list(range(counts[eid]))
    assert events[0].odb().get("/Configurations/Exposure") == 0.3


@pytest.mark.parametrize("name", sorted(REAL))
def test_reencode_real_events_byte_identical(shared_data: Path, name: str) -> None:
    """The byte-compatibility proof: encode_event rebuilds every event exactly."""
    n = 0
    for ev in MidasReader(shared_data / "midas" / name, resync=False):
        original = bytes(ev.payload.obj)
        if ev.is_special:
            continue
        banks = [
            (b.name, b.type_id, bytes(memoryview(b.data).cast("B"))) for b in ev.banks.values()
        ]
        again = encode_event(
            ev.event_id,
            ev.serial,
            banks,
            trigger_mask=ev.trigger_mask,
            time_stamp=ev.time_stamp,
            bank_format=ev.flags,
        )
        assert again == original
        n += 1
    assert n == sum(v for k, v in REAL[name][1].items() if k < 0x8000)


def _events() -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(6):
        img = rng.integers(0, 4096, size=(64, 64), dtype=np.uint16)
        out.append(
            encode_event(
                1,
                i,
                [("CAM0", TID_UINT16, img), ("DGH0", TID_UINT32, np.arange(5, dtype="<u4"))],
                bank_format=BANK32,
                time_stamp=1000 + i,
            )
        )
        out.append(
            encode_event(
                5, i, [("INPT", TID_FLOAT, rng.normal(size=24).astype("<f4"))], bank_format=BANK16
            )
        )
        out.append(
            encode_event(7, i, [("TCAM", TID_DOUBLE, np.array([i], "<f8"))], bank_format=BANK32A)
        )
    return out


def _write(path: Path, events: list[bytes], odb: dict | None = None) -> None:
    with MidasWriter(path) as w:
        w.write_bor(3, odb or {"Configurations": {"Exposure": 0.3}}, 999)
        for e in events:
            w.write_event(e)
        w.write_message("[fe,INFO] hello", 0, 1000)
        w.write_eor(3, odb or {"Configurations": {"Exposure": 0.3}}, 2000)


@pytest.mark.parametrize("ext", ["mid", "mid.gz", "mid.lz4", "mid.bz2"])
def test_write_read_round_trip(tmp_path: Path, ext: str) -> None:
    events = _events()
    path = tmp_path / f"run00003.{ext}"
    _write(path, events)
    got = list(read_events(path, resync=False))
    assert [bytes(e.payload.obj) for e in got[1:-2]] == events
    assert got[0].is_bor and got[0].odb().get("/Configurations/Exposure") == 0.3
    assert got[-2].message() == "[fe,INFO] hello"
    assert got[-1].is_eor and got[-1].time_stamp == 2000
    # compression decided by magic, not extension
    renamed = tmp_path / "data.bin"
    renamed.write_bytes(path.read_bytes())
    r = MidasReader(renamed)
    assert len(list(r)) == len(got)
    assert (
        r.compression == {"mid": "none", "mid.gz": "gzip", "mid.lz4": "lz4", "mid.bz2": "bz2"}[ext]
    )


def test_writer_lz4_frame_like_mlogger(tmp_path: Path, shared_data: Path) -> None:
    path = tmp_path / "a.mid.lz4"
    _write(path, _events())
    head = path.read_bytes()[:7]
    assert head == (shared_data / "midas" / "run00010.mid.lz4").read_bytes()[:7]
    assert lz4.frame.decompress(path.read_bytes())[:2] == struct.pack("<H", EVENTID_BOR)


def test_writer_event_objects_and_write(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "midas" / "run00011.mid.gz"
    out = tmp_path / "copy.mid"
    with MidasWriter(out) as w:
        for ev in MidasReader(src):
            w.write_event(ev)
        w.write(9, 0, [("ABCD", TID_UINT32, np.array([1, 2], "<u4"))], time_stamp=5)
    assert out.read_bytes()[: -(16 + 8 + 16 + 8)] == gzip.decompress(src.read_bytes())
    last = list(MidasReader(out))[-1]
    assert last.event_id == 9 and last.flags == BANK32A and list(last.banks["ABCD"].data) == [1, 2]


def test_concatenated_members_and_frames(tmp_path: Path) -> None:
    events = _events()
    gz = tmp_path / "multi.mid.gz"
    gz.write_bytes(gzip.compress(b"".join(events[:4])) + gzip.compress(b"".join(events[4:])))
    assert [bytes(e.payload.obj) for e in MidasReader(gz)] == events
    lz = tmp_path / "multi.mid.lz4"
    lz.write_bytes(
        lz4.frame.compress(b"".join(events[:5])) + lz4.frame.compress(b"".join(events[5:]))
    )
    assert [bytes(e.payload.obj) for e in MidasReader(lz)] == events


@pytest.mark.parametrize("ext", ["mid", "mid.gz", "mid.lz4"])
@pytest.mark.parametrize("cut", [1, 100, 3000])
def test_truncated_file(
    tmp_path: Path, ext: str, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    events = _events()
    full = tmp_path / f"full.{ext}"
    _write(full, events)
    data = full.read_bytes()
    part = tmp_path / f"part.{ext}"
    part.write_bytes(data[:-cut])
    reader = MidasReader(part, resync=False)
    got = list(reader)  # no exception, even with resync=False
    assert reader.truncated
    assert len(reader.problems) == 1 and isinstance(reader.problems[0], TruncatedEventError)
    # a cut gzip trailer loses no event; a cut LZ4 block (4 MiB) loses the block
    assert len(got) <= len(events) + 3
    if ext == "mid":
        ends = np.cumsum([e.nbytes for e in MidasReader(full)])
        assert len(got) == int(np.sum(ends <= len(data) - cut)) > 0
    # everything before the cut is intact
    everything = list(MidasReader(full))
    assert [bytes(e.payload.obj) for e in got] == [
        bytes(e.payload.obj) for e in everything[: len(got)]
    ]
    assert "ends inside" in caplog.text


def _corrupt(data: bytes, offset: int, garbage: bytes) -> bytes:
    return data[:offset] + garbage + data[offset + len(garbage) :]


def test_resync_after_corrupt_header(tmp_path: Path) -> None:
    events = _events()
    blob = b"".join(events)
    # smash the header of the 4th event (index 3)
    off = sum(len(e) for e in events[:3])
    bad = _corrupt(blob, off, b"\xff" * 16)
    path = tmp_path / "bad.mid"
    path.write_bytes(bad)
    seen: list[MidasFormatError] = []
    reader = MidasReader(path, on_problem=seen.append)
    got = [bytes(e.payload.obj) for e in reader]
    assert got == events[:3] + events[4:]
    assert reader.skipped_bytes == len(events[3])
    assert len(reader.problems) == 1 and reader.problems[0].offset == off
    assert seen == reader.problems and not reader.truncated
    with pytest.raises(MidasFormatError) as info:
        list(MidasReader(path, resync=False))
    assert info.value.offset == off and info.value.source == str(path)


def test_resync_after_garbage_insert_and_bad_bank(tmp_path: Path) -> None:
    events = _events()
    garbage = bytes(np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8))
    off = sum(len(e) for e in events[:2])
    bank_bad = bytearray(events[4])  # id 5, 16-bit banks
    struct.pack_into("<HH", bank_bad, 24 + 4, TID_FLOAT, 4000)  # bank overrun
    blob = (
        b"".join(events[:2])
        + garbage
        + b"".join(events[2:4])
        + bytes(bank_bad)
        + b"".join(events[5:])
    )
    path = tmp_path / "bad.mid.gz"
    path.write_bytes(gzip.compress(blob))
    reader = MidasReader(path)
    got = [bytes(e.payload.obj) for e in reader]
    assert got == events[:4] + events[5:]
    assert reader.skipped_bytes == len(garbage) + len(bank_bad)
    assert [p.offset for p in reader.problems] == [
        off,
        off + len(garbage) + sum(len(e) for e in events[2:4]),
    ]
    assert reader.problems[1].serial == 1


def test_garbage_only_and_impossible_size(tmp_path: Path) -> None:
    path = tmp_path / "g.mid"
    path.write_bytes(struct.pack("<HHIII", 1, 0, 0, 0, 0x7FFFFFFF) + b"\0" * 64)
    reader = MidasReader(path)
    assert list(reader) == []
    assert "impossible data_size" in str(reader.problems[0])
    assert reader.skipped_bytes == 80


def test_corrupt_compressed_stream(tmp_path: Path) -> None:
    path = tmp_path / "c.mid.gz"
    data = bytearray(gzip.compress(b"".join(_events())))
    data[200:260] = b"\x00" * 60
    path.write_bytes(bytes(data))
    reader = MidasReader(path)
    list(reader)
    assert reader.problems and all(isinstance(p, MidasFormatError) for p in reader.problems)
    with pytest.raises(MidasFormatError):
        list(MidasReader(path, resync=False))
    # following a damaged stream ends too (nothing more can ever be decoded)
    follower = MidasReader(path, follow=True, stop=threading.Event(), poll_s=0.01)
    list(follower)
    assert follower.problems


def test_big_endian_rejected(tmp_path: Path) -> None:
    path = tmp_path / "be.mid"
    payload = b'{"a": 1}'
    path.write_bytes(struct.pack(">HHIII", EVENTID_BOR, MIDAS_MAGIC, 1, 0, len(payload)) + payload)
    for resync in (True, False):
        with pytest.raises(UnsupportedFormatError, match="big-endian"):
            list(MidasReader(path, resync=resync))


def test_binary_file_object_and_stdin(tmp_path: Path) -> None:
    events = _events()
    blob = gzip.compress(b"".join(events))
    assert [bytes(e.payload.obj) for e in MidasReader(io.BytesIO(blob))] == events
    code = (
        "from cygno_online.midas.reader import MidasReader\n"
        "r = MidasReader('-')\n"
        "print(sum(1 for _ in r), r.source, r.compression)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], input=blob, capture_output=True, check=True, timeout=60
    )
    assert res.stdout.decode().split() == [str(len(events)), "<stdin>", "gzip"]


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_follow_sees_appended_events(tmp_path: Path, compression: str) -> None:
    events = _events()
    path = tmp_path / "live.mid"
    f = open(path, "wb")  # noqa: SIM115 - closed below
    if compression == "lz4":
        c = lz4.frame.LZ4FrameCompressor(auto_flush=True)
        f.write(c.begin())

        def put(b: bytes) -> None:
            f.write(c.compress(b))
            f.flush()
    else:

        def put(b: bytes) -> None:
            f.write(b)
            f.flush()

    put(events[0])
    put(events[1][:10])  # the logger is in the middle of an event
    stop = threading.Event()
    reader = MidasReader(path, follow=True, stop=stop, poll_s=0.01)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.extend(bytes(e.payload.obj) for e in reader))
    t.start()
    try:
        wait_for(lambda: len(got) == 1, what="first event")
        put(events[1][10:])
        for e in events[2:5]:
            put(e)
        wait_for(lambda: len(got) == 5, what="appended events")
    finally:
        stop.set()
        t.join(10)
        f.close()
    assert not t.is_alive()
    assert got == events[:5]
    assert reader.problems == []


def test_byte_stream_detection() -> None:
    assert detect_compression(b"\x1f\x8b\x08") == "gzip"
    assert detect_compression(b"\x04\x22\x4d\x18") == "lz4"
    assert detect_compression(b"BZh9") == "bz2"
    assert detect_compression(b"\x00\x80MI") == "none"
    s = ByteStream(io.BytesIO(b""))
    assert s.read() is None


def test_parse_event_accepts_memoryview_slice() -> None:
    e = _events()[0]
    ev = parse_event(memoryview(b"xx" + e)[2:])
    assert ev.banks["CAM0"].data.shape == (64 * 64,)


@pytest.mark.parametrize("name", sorted(REAL))
def test_held_events_are_never_recycled(shared_data: Path, name: str, tmp_path: Path) -> None:
    """Big-event buffers are recycled only when nobody holds the event: events
    kept in a list keep their content while the reader goes on."""
    import hashlib

    def digest(ev) -> str:
        return hashlib.sha1(ev.payload).hexdigest()

    streamed = [digest(ev) for ev in MidasReader(shared_data / "midas" / name)]
    held = list(MidasReader(shared_data / "midas" / name))
    cams = [ev.banks["CAM0"].data for ev in held if ev.event_id == 1]
    del held[1:]  # bank views alone must keep their buffers too
    assert [digest(e) for e in held] == streamed[:1]
    again = list(MidasReader(shared_data / "midas" / name))
    assert [digest(e) for e in again] == streamed
    firsts = [ev.banks["CAM0"].data for ev in again if ev.event_id == 1]
    for a, b in zip(cams, firsts, strict=True):
        np.testing.assert_array_equal(a, b)
    # plain copy: big events go through the direct-read path
    plain = tmp_path / "plain.mid"
    with MidasWriter(plain, compression="none") as w:
        for ev in again:
            w.write_event(ev)
    assert [digest(e) for e in MidasReader(plain)] == streamed
    kept = list(MidasReader(plain))
    assert [digest(e) for e in kept] == streamed


def _big_events() -> list[bytes]:
    img = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512)
    return [
        encode_event(1, i, [("CAM0", TID_UINT16, img + i)], bank_format=BANK32) for i in range(3)
    ]


def test_plain_big_event_truncated(tmp_path: Path) -> None:
    events = _big_events()
    path = tmp_path / "big.mid"
    path.write_bytes(b"".join(events)[: -len(events[-1]) // 2])
    reader = MidasReader(path, resync=False)
    got = [bytes(e.payload.obj) for e in reader]
    assert got == events[:2]
    assert reader.truncated and isinstance(reader.problems[0], TruncatedEventError)
    assert reader.problems[0].serial == 2


def test_follow_big_event_written_in_pieces(tmp_path: Path) -> None:
    events = _big_events()
    path = tmp_path / "live_big.mid"
    f = open(path, "wb")  # noqa: SIM115 - closed below

    def put(b: bytes) -> None:
        f.write(b)
        f.flush()

    put(events[0] + events[1][:1000])
    stop = threading.Event()
    reader = MidasReader(path, follow=True, stop=stop, poll_s=0.01)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.extend(bytes(e.payload.obj) for e in reader))
    t.start()
    try:
        wait_for(lambda: len(got) == 1, what="first event")
        put(events[1][1000:300_000])
        wait_for(lambda: reader.raw_bytes_read >= len(events[0]) + 300_000, what="partial read")
        put(events[1][300_000:] + events[2])
        wait_for(lambda: len(got) == 3, what="appended events")
    finally:
        stop.set()
        t.join(10)
        f.close()
    assert not t.is_alive()
    assert got == events
    assert reader.problems == [] and not reader.truncated


def test_reader_iterates_once(tmp_path: Path) -> None:
    path = tmp_path / "once.mid"
    path.write_bytes(b"".join(_events()))
    reader = MidasReader(path)
    assert len(list(reader)) == 18
    with pytest.raises(RuntimeError, match="only once"):
        list(reader)
