"""The bad files of issue 11: empty, unreadable, integrity errors (gzip CRC,
damaged and truncated streams). Each is a problem naming the file and the
offset, the data before the damage are still read, and inspect/summary exit
non-zero (0 clean, 1 problems, 2 a file could not be opened)."""

from __future__ import annotations

import gzip
import random
import zlib

import numpy as np
import pytest

from cygno_online import cli
from cygno_online.midas import compression
from cygno_online.midas.compression import ByteStream
from cygno_online.midas.reader import MidasReader

GZ = "midas/run00011.mid.gz"


def read_all(path):
    r = MidasReader(path, resync=True)
    events = [(e.header.event_id, e.header.serial_number) for e in r]
    return r, events


def stream_bytes(path):
    out = []
    with ByteStream(path) as s:
        while True:
            try:
                chunk = s.read()
            except Exception as exc:  # the damage, after the salvaged data
                return b"".join(out), exc
            if chunk is None:
                return b"".join(out), None
            out.append(chunk)


@pytest.mark.parametrize(
    "size", [100, compression.MAX_OUT - 1, compression.MAX_OUT, 3 * compression.MAX_OUT + 17]
)
def test_bad_crc_keeps_every_byte_before_the_check(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 4, size, dtype=np.uint8).tobytes()
    gz = bytearray(gzip.compress(data, compresslevel=1))
    gz[-8] ^= 0x55  # CRC-32 of the member
    path = tmp_path / "crc.gz"
    path.write_bytes(gz)
    got, exc = stream_bytes(path)
    assert got == data
    assert exc is not None and exc.kind == "integrity" and "CRC-32" in str(exc)
    assert exc.offset == size and str(path) in str(exc)


def test_damage_inside_the_deflate_data_keeps_what_comes_before(tmp_path):
    rng = random.Random(5)
    data = rng.randbytes(200_000) + bytes(3_000_000)
    gz = bytearray(gzip.compress(data, compresslevel=1))
    cut = len(gz) // 2
    gz[cut : cut + 64] = bytes(64)
    path = tmp_path / "mid.gz"
    path.write_bytes(gz)
    got, exc = stream_bytes(path)
    assert exc is not None and exc.kind == "integrity"
    # deflate notices a damage only some bytes after it: what comes before it
    # is intact, what lies between may be garbage (the problem says so)
    assert got[:50_000] == data[:50_000]
    assert exc.offset == len(got) and "may be damaged" in str(exc)


def test_real_gzip_file_with_a_bad_crc_keeps_all_events_and_the_eor(shared_data, tmp_path, capsys):
    good = (shared_data / GZ).read_bytes()
    bad = bytearray(good)
    bad[-8] ^= 0xFF
    path = tmp_path / "run00011.mid.gz"
    path.write_bytes(bad)
    _, want = read_all(shared_data / GZ)
    r, got = read_all(path)
    assert got == want and got[-1][0] == 0x8001  # every event, the EOR included
    [problem] = r.problems
    assert problem.kind == "integrity" and problem.offset == len(gzip.decompress(good))
    assert str(path) in str(problem) and "nothing after offset" in str(problem)
    assert cli.main(["inspect", str(path)]) == 1
    assert "[integrity]" in capsys.readouterr().out
    code = cli.main(["summary", str(path)])
    cap = capsys.readouterr()
    assert code == 1
    assert "CRC-32" in cap.err and "20 events read and analysed" in cap.err
    assert "Run 11" in cap.out and "[complete]" in cap.out
    assert "without an end-of-run" not in cap.out  # the EOR was not lost


def test_truncated_gzip_file_says_where_it_ends(shared_data, tmp_path, capsys):
    good = (shared_data / GZ).read_bytes()
    path = tmp_path / "cut.mid.gz"
    path.write_bytes(good[: len(good) * 2 // 3])
    r, events = read_all(path)
    assert events and r.truncated
    assert r.problems[-1].kind == "truncated" and r.problems[-1].offset is not None
    assert cli.main(["summary", str(path)]) == 1
    assert "stream ends inside an event" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content", [b"", gzip.compress(b""), zlib.compress(b"")[:0]], ids=["zero", "gzip-empty", "none"]
)
def test_empty_files_are_a_problem(tmp_path, capsys, content):
    path = tmp_path / "empty.mid"
    path.write_bytes(content)
    r, events = read_all(path)
    assert events == [] and [p.kind for p in r.problems] == ["empty"]
    assert cli.main(["inspect", str(path)]) == 1
    assert "empty file" in capsys.readouterr().out
    assert cli.main(["summary", str(path)]) == 1
    assert "empty file: no MIDAS data at all" in capsys.readouterr().err


def test_unreadable_files_exit_2_and_the_others_are_still_summarised(shared_data, tmp_path, capsys):
    directory = tmp_path / "not-a-file.mid"
    directory.mkdir()
    code = cli.main(["summary", str(directory), str(shared_data / GZ)])
    cap = capsys.readouterr()
    assert code == 2
    assert f"error: {directory}: Is a directory" in cap.err
    assert "11" in cap.out  # the good file's run summary is printed
    assert cli.main(["inspect", str(directory)]) == 2


def test_garbage_is_a_problem(tmp_path, capsys):
    path = tmp_path / "garbage.mid"
    path.write_bytes(random.Random(1).randbytes(5000))
    assert cli.main(["summary", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: 1 problem(s), 5000 bytes skipped" in err
