"""The disk spool: order, checkpoint replay, rotation, corruption, bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cygno_online.sinks.spool import Spool, SpoolLockedError


def lines(start: int, n: int) -> list[bytes]:
    return [f"m,t=a v={i}.0 {i}".encode() for i in range(start, start + n)]


def drain(sp: Spool, max_lines: int = 1000) -> list[bytes]:
    out = []
    while (b := sp.read_batch(max_lines)) is not None:
        out.extend(b.lines)
        assert sp.commit(b)
    return out


def test_append_read_commit_in_order(tmp_path: Path):
    sp = Spool(tmp_path, segment_bytes=4096, max_record_lines=50)
    sp.open()
    for k in range(10):
        assert sp.append(lines(k * 100, 100)) == 100
    assert sp.pending_points == 1000
    assert sp.segment_count() > 3  # rotation happened
    got = drain(sp, 300)
    assert got == lines(0, 1000)
    assert sp.pending_points == 0 and sp.pending_bytes() == 0
    # finished segments are deleted, only the one being written is left
    assert len(list(tmp_path.glob("*.seg"))) == 1
    sp.close()


def test_batches_respect_max_lines(tmp_path: Path):
    sp = Spool(tmp_path, max_record_lines=10)
    sp.open()
    sp.append(lines(0, 95))
    b = sp.read_batch(30)
    assert b is not None and len(b.lines) == 30 and b.npoints == 30
    sp.close()


def test_uncommitted_batch_is_replayed_after_reopen(tmp_path: Path):
    sp = Spool(tmp_path, max_record_lines=10)
    sp.open()
    sp.append(lines(0, 40))
    b1 = sp.read_batch(20)
    assert sp.commit(b1)
    b2 = sp.read_batch(20)  # read but never acknowledged
    assert b2 is not None
    sp.close()
    ck = json.loads((tmp_path / "checkpoint").read_text())
    assert ck["offset"] > 0
    sp2 = Spool(tmp_path, max_record_lines=10)
    sp2.open()
    assert sp2.pending_points == 20
    assert drain(sp2) == lines(20, 20)
    sp2.close()


def test_rewind_rereads(tmp_path: Path):
    sp = Spool(tmp_path)
    sp.open()
    sp.append(lines(0, 5))
    b = sp.read_batch(100)
    assert sp.read_batch(100) is None
    sp.rewind()
    assert sp.read_batch(100).lines == b.lines
    sp.close()


def test_second_process_cannot_open(tmp_path: Path):
    sp = Spool(tmp_path)
    sp.open()
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path).open()
    sp.close()
    Spool(tmp_path).open()


def _two_segments(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=1 << 20, max_record_lines=10)
    sp.open()
    sp.append(lines(0, 30))  # 3 records in segment 1
    sp.close()
    sp = Spool(tmp_path, segment_bytes=1 << 20, max_record_lines=10)
    sp.open()  # a new process starts segment 2
    sp.append(lines(30, 10))
    sp.close()


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_corrupt_tail_recovers_up_to_damage(tmp_path: Path, damage: str, caplog):
    _two_segments(tmp_path)
    seg1 = tmp_path / "00000001.seg"
    data = bytearray(seg1.read_bytes())
    if damage == "truncate":
        data = data[:-7]  # the last record is torn
    else:
        data[-3] ^= 0xFF  # CRC of the last record no longer matches
    seg1.write_bytes(bytes(data))
    sp = Spool(tmp_path, max_record_lines=10)
    with caplog.at_level("ERROR"):
        sp.open()
    assert sp.stats["corrupt_records"] == 1
    assert sp.stats["corrupt_bytes"] > 0
    assert "damaged" in caplog.text and "00000001.seg" in caplog.text
    got = drain(sp)
    # the first two records of segment 1, then all of segment 2
    assert got == lines(0, 20) + lines(30, 10)
    sp.close()


def test_garbage_in_the_middle_loses_only_the_damaged_record(tmp_path: Path):
    _two_segments(tmp_path)
    seg1 = tmp_path / "00000001.seg"
    data = bytearray(seg1.read_bytes())
    data[4] ^= 0x55  # CRC of the first record
    seg1.write_bytes(bytes(data))
    sp = Spool(tmp_path)
    sp.open()
    assert sp.stats["corrupt_records"] == 1
    # the spool resynchronises on the second record of segment 1
    assert sp.pending_points == 30
    assert drain(sp) == lines(10, 20) + lines(30, 10)
    sp.close()


def _records(tmp_path: Path) -> tuple[Path, bytes, list[int]]:
    """Segment 1 with five records of 8 points; returns path, bytes and the
    record start offsets."""
    sp = Spool(tmp_path, max_record_lines=8)
    sp.open()
    for k in range(5):
        sp.append(lines(8 * k, 8))
    sp.close()
    seg = tmp_path / "00000001.seg"
    data = seg.read_bytes()
    starts, off = [], 0
    while off < len(data):
        starts.append(off)
        off += 8 + int.from_bytes(data[off : off + 4], "little")
    assert len(starts) == 5
    return seg, data, starts


@pytest.mark.parametrize("mode", ["flip", "zero"])
def test_corruption_at_every_byte_of_a_record_loses_only_that_record(tmp_path: Path, mode):
    """Damage each byte of the middle record (header and payload) in turn:
    the spool recovers every intact record before and after it."""
    base = tmp_path / "base"
    _seg, data, starts = _records(base)
    first, end = starts[2], starts[3]
    want = lines(0, 16) + lines(24, 16)
    for pos in range(first, end):
        d = tmp_path / f"at{pos}"
        d.mkdir()
        bad = bytearray(data)
        bad[pos] = bad[pos] ^ 0xFF if mode == "flip" else (0 if bad[pos] else 1)
        (d / "00000001.seg").write_bytes(bytes(bad))
        sp = Spool(d, max_record_lines=8)
        sp.open()
        assert sp.stats["corrupt_records"] == 1, pos
        assert sp.pending_points == 32, pos
        assert drain(sp) == want, pos
        sp.close()


def test_damage_seen_while_reading_resynchronises(tmp_path: Path):
    sp = Spool(tmp_path, segment_bytes=1 << 20, max_record_lines=10)
    sp.open()
    sp.append(lines(0, 50))  # five records in the write segment
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    data = bytearray(seg.read_bytes())
    rec = 8 + int.from_bytes(data[0:4], "little")
    data[rec + 20] ^= 0xFF  # the second record goes bad on disk
    seg.write_bytes(bytes(data))
    assert drain(sp, 100) == lines(0, 10) + lines(20, 30)
    assert sp.stats["corrupt_records"] == 1 and sp.pending_points == 0
    sp.close()


def test_repeated_damage_and_drops_are_summarised_not_logged_each(tmp_path: Path, caplog):
    from cygno_online.logs import flush_summaries

    _seg, data, starts = _records(tmp_path / "src")
    bad = bytearray(data)
    for s in starts[::2]:
        bad[s + 10] ^= 0xFF  # three damaged records (0, 2, 4) in one segment
    (tmp_path / "00000001.seg").write_bytes(bytes(bad))
    with caplog.at_level("WARNING", "cygno_online.sinks.spool"):
        sp = Spool(tmp_path, max_record_lines=8, max_bytes=300, segment_bytes=200)
        sp.open()
        assert sp.stats["corrupt_records"] == 3 and sp.pending_points == 16
        for k in range(50):  # a full spool: drops on every append
            sp.append(lines(k, 8))
        flush_summaries(force=True)
        sp.close()
    mine = [m for m in (r.getMessage() for r in caplog.records) if str(tmp_path) in m]
    damage = [m for m in mine if "damaged" in m]
    drops = [m for m in mine if "full (max_bytes)" in m]
    assert len(damage) == 2 and "2 more" in damage[1]
    assert sp.stats["dropped"] > 8
    assert len(drops) == 2 and "more in the last" in drops[1]


def test_max_bytes_drops_oldest_first_and_counts(tmp_path: Path):
    drops = []
    sp = Spool(
        tmp_path,
        max_bytes=20_000,
        segment_bytes=4096,
        max_record_lines=20,
        on_drop=lambda n, reason: drops.append((n, reason)),
    )
    sp.open()
    total = 0
    for k in range(150):
        total += sp.append(lines(k * 20, 20))
    assert total == 3000  # every append is accepted...
    assert sp.pending_bytes() <= 20_000  # ...the bound holds
    dropped = sp.stats["dropped"]
    assert dropped > 0 and sum(n for n, _ in drops) == dropped
    assert {r for _, r in drops} == {"max_bytes"}
    assert sp.stats["dropped_by_reason"] == {"max_bytes": dropped}
    got = drain(sp)
    # what is left is the newest data, contiguous and in order
    assert got == lines(3000 - len(got), len(got))
    assert len(got) + dropped == 3000
    sp.close()


def test_max_age_drops_old_segments(tmp_path: Path):
    drops = []
    sp = Spool(tmp_path, max_age_s=60, on_drop=lambda n, r: drops.append((n, r)))
    sp.open()
    sp.append(lines(0, 10))
    now = sp._segments[-1].last_append_ns
    assert sp.enforce_age(now + int(30e9)) == 0
    assert sp.enforce_age(now + int(61e9)) == 10
    assert drops == [(10, "max_age")]
    assert sp.pending_points == 0
    sp.append(lines(10, 5))
    assert drain(sp) == lines(10, 5)
    sp.close()


def test_drop_overtakes_in_flight_batch(tmp_path: Path):
    sp = Spool(tmp_path, max_bytes=8192, segment_bytes=2048, max_record_lines=10)
    sp.open()
    sp.append(lines(0, 10))
    batch = sp.read_batch(100)
    for k in range(1, 80):
        sp.append(lines(k * 10, 10))
    assert sp.stats["dropped"] > 0
    assert not sp.commit(batch)  # the batch's data was dropped meanwhile
    got = drain(sp)
    assert len(got) + sp.stats["dropped"] == 800
    sp.close()


def test_fsync_always_and_never(tmp_path: Path):
    for policy in ("always", "never"):
        d = tmp_path / policy
        sp = Spool(d, fsync=policy)
        sp.open()
        sp.append(lines(0, 3))
        sp.sync()
        assert drain(sp) == lines(0, 3)
        sp.close()
    with pytest.raises(ValueError):
        Spool(tmp_path, fsync="sometimes")


def test_disk_error_counts_drop_and_recovers(tmp_path: Path):
    drops = []
    sp = Spool(tmp_path, on_drop=lambda n, r: drops.append((n, r)))
    sp.open()
    sp.append(lines(0, 5))

    class Full:
        def __init__(self, real):
            self.real = real

        def write(self, data):
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.real, name)

    sp._wfile = Full(sp._wfile)
    assert sp.append(lines(5, 3)) == 0  # no exception into the producer
    assert drops == [(3, "spool_io_error")]
    assert sp.stats["io_errors"] == 1
    assert sp.append(lines(8, 2)) == 2  # a fresh segment takes over
    assert drain(sp) == lines(0, 5) + lines(8, 2)
    sp.close()


def test_restarts_do_not_pile_up_segments(tmp_path: Path):
    for k in range(5):
        sp = Spool(tmp_path)
        sp.open()
        sp.append(lines(k * 10, 10))
        assert drain(sp) == lines(k * 10, 10)
        sp.close()
    assert len(list(tmp_path.glob("*.seg"))) == 1
    sp = Spool(tmp_path)
    sp.open()
    assert sp.pending_points == 0 and sp.read_batch(10) is None
    sp.append(lines(100, 3))
    assert drain(sp) == lines(100, 3)
    sp.close()


def test_unsent_data_after_an_idle_restart_survives_a_crash(tmp_path: Path):
    sp = Spool(tmp_path)
    sp.open()
    sp.append(lines(0, 10))
    drain(sp)
    sp.close()
    sp = Spool(tmp_path)
    sp.open()  # nothing pending: the old segment is removed
    sp.append(lines(10, 7))
    sp.close()  # "crash": never acknowledged
    sp = Spool(tmp_path)
    sp.open()
    assert sp.pending_points == 7
    assert drain(sp) == lines(10, 7)
    sp.close()
    numbers = [int(p.stem) for p in tmp_path.glob("*.seg")]
    assert numbers and min(numbers) > 2  # numbering never restarts


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 40)),
        st.tuples(st.just("send"), st.integers(1, 60)),
        st.tuples(st.just("lose"), st.integers(1, 60)),  # read, never acknowledged
        st.tuples(st.just("restart"), st.just(0)),
    ),
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_any_history_delivers_everything_in_order(tmp_path_factory, ops):
    """Whatever happens (sends, lost acks, restarts), every appended line is
    delivered, in order, at least once, and nothing after its acknowledgement."""
    d = tmp_path_factory.mktemp("prop")
    sp = Spool(d, segment_bytes=1024, max_record_lines=7)
    sp.open()
    appended: list[bytes] = []
    delivered: list[bytes] = []
    for op, n in ops:
        if op == "append":
            new = lines(len(appended), n)
            assert sp.append(new) == n
            appended += new
        elif op == "send":
            b = sp.read_batch(n)
            if b is not None:
                delivered += b.lines
                assert sp.commit(b)
        elif op == "lose":
            sp.read_batch(n)
            sp.rewind()
        else:
            sp.close()
            sp = Spool(d, segment_bytes=1024, max_record_lines=7)
            sp.open()
    delivered += drain(sp)
    sp.close()
    assert delivered == appended  # acknowledged lines are never sent again here


def test_has_unread_after_rotation(tmp_path: Path):
    sp = Spool(tmp_path, segment_bytes=4096, max_record_lines=10)
    sp.open()
    assert not sp.has_unread()
    while sp.segment_count() < 2:
        sp.append(lines(0, 10))
    assert sp.has_unread()
    drain(sp)
    # reader at the end of everything, with an empty write segment after it
    assert not sp.has_unread()
    sp.append(lines(0, 1))
    assert sp.has_unread()
    sp.close()


def test_same_object_reopened(tmp_path: Path):
    sp = Spool(tmp_path)
    sp.open()
    sp.append(lines(0, 4))
    sp.close()
    sp.open()
    sp.append(lines(4, 2))
    assert sp.pending_points == 6
    assert drain(sp) == lines(0, 6)
    sp.close()


def test_damage_appearing_while_running(tmp_path: Path):
    sp = Spool(tmp_path, segment_bytes=1 << 20, max_record_lines=10)
    sp.open()
    sp.append(lines(0, 30))  # three records in the write segment
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    data = bytearray(seg.read_bytes())
    data[-2] ^= 0xFF  # the third record goes bad on disk
    seg.write_bytes(bytes(data))
    got = drain(sp, 100)
    assert got == lines(0, 20)
    assert sp.stats["corrupt_records"] == 1
    assert sp.pending_points == 0
    sp.append(lines(30, 5))  # writing goes on in a fresh segment
    assert drain(sp) == lines(30, 5)
    assert sp.pending_points == 0
    sp.close()
