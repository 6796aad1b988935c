"""`cygno-online inspect` (human and --json output, exit codes) and `bench io`."""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from cygno_online.cli import main
from cygno_online.midas.event import BANK16, BANK32, TID_FLOAT, TID_UINT16, encode_event
from cygno_online.midas.writer import MidasWriter


def _make(path: Path, *, corrupt: bool = False, cut: int = 0, bor: bool = True) -> None:
    events = [
        encode_event(1, i, [("CAM0", TID_UINT16, np.full(64, i, "<u2"))], bank_format=BANK32)
        for i in range(4)
    ] + [encode_event(5, 0, [("INPT", TID_FLOAT, np.zeros(3, "<f4"))], bank_format=BANK16)]
    if corrupt:
        bad = bytearray(events[2])
        struct.pack_into("<I", bad, 12, 0x7FFFFFF0)  # impossible data_size
        events[2] = bytes(bad)
    odb = {
        "Configurations": {"Exposure": 0.3, "Pedestal": False},
        "Experiment": {"Run Parameters": {"Run description": "inspect test"}},
        "Runinfo": {"Start time": "Wed Nov 25 04:41:09 2026", "Start time binary": 1795581669},
    }
    with MidasWriter(path, compression="none") as w:
        if bor:
            w.write_bor(77, odb, 100)
        for e in events:
            w.write_event(e)
        w.write_message("[fe,INFO] hi", 0, 101)
        w.write_eor(77, odb, 102)
    if cut:
        data = path.read_bytes()
        path.write_bytes(data[:-cut])


def test_inspect_real_files_human(shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    files = [str(shared_data / "midas" / n) for n in ("run00010.mid.lz4", "run00011.mid.gz")]
    assert main(["inspect", *files]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "run 10" in out and "run 11" in out
    assert "BOR: 1, 1: 4, 5: 5, 7: 3, EOR: 1" in out
    assert "BOR: 1, 1: 6, 5: 7, 7: 5, EOR: 1" in out
    assert "CAM0 UINT16" in out and "10616832" in out and "524288" in out
    assert "exposure 0.3 s" in out and "problems: none" in out


def test_inspect_json_clean(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "run00077.mid"
    _make(path)
    assert main(["inspect", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    (f,) = doc["files"]
    assert f["path"] == str(path) and f["compression"] == "none"
    assert f["bytes"] == path.stat().st_size and f["run"] == 77 and f["run_from"] == "BOR"
    assert f["events"] == {"BOR": 1, "1": 4, "5": 1, "MSG": 1, "EOR": 1}
    assert list(f["events"]) == ["BOR", "1", "5", "MSG", "EOR"]
    cam = next(b for b in f["banks"] if b["bank"] == "CAM0")
    assert cam == {
        "event_id": 1,
        "bank": "CAM0",
        "type": "UINT16",
        "count": 4,
        "min_size": 128,
        "max_size": 128,
        "formats": ["BANK32"],
    }
    assert f["odb"]["exposure_s"] == 0.3 and f["odb"]["pedestal"] is False
    assert f["odb"]["description"] == "inspect test"
    assert f["problems"] == [] and f["truncated"] is False


def test_inspect_problems_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.mid"
    _make(bad, corrupt=True)
    cut = tmp_path / "run00123.mid"
    _make(cut, cut=20, bor=False)
    missing = tmp_path / "nope.mid"
    rc = main(["inspect", "--json", str(bad), str(missing), str(cut)])
    captured = capsys.readouterr()
    assert rc == 2
    assert "nope.mid" in captured.err
    doc = json.loads(captured.out)
    f_bad, f_missing, f_cut = doc["files"]
    assert f_missing["error"]
    assert f_bad["events"]["1"] == 3
    (p,) = f_bad["problems"]
    assert p["kind"] == "format" and p["serial"] == 2 and "data_size" in p["message"]
    assert p["offset"] > 0 and f_bad["skipped_bytes"] > 0
    assert f_cut["truncated"] is True and f_cut["run"] == 123 and f_cut["run_from"] == "file name"
    assert f_cut["problems"][0]["kind"] == "truncated"
    assert main(["inspect", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "problems: 1" in out and "[format]" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_inspect_big_endian(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "be.mid"
    path.write_bytes(struct.pack(">HHIII", 0x8000, 0x494D, 1, 0, 2) + b"{}")
    assert main(["inspect", "--json", str(path)]) == 1
    (f,) = json.loads(capsys.readouterr().out)["files"]
    assert f["problems"][0]["kind"] == "unsupported"
    assert "big-endian" in f["problems"][0]["message"]


def test_bench_io_smoke(tmp_path: Path) -> None:
    from cygno_online.bench import io as bench_io

    report = bench_io.run(argparse.Namespace(events=1, dir=str(tmp_path), repeat=1))
    assert [r.name for r in report.rows] == [
        "read+parse plain",
        "read+parse gzip",
        "read+parse lz4",
    ]
    for row in report.rows:
        assert row.throughput > 0 and row.ref_median_ms > 0
        assert isinstance(row.extra["overhead_pct"], float)
    assert (tmp_path / "bench.mid.lz4").exists()
    assert report.info["decompressed_MB"] > 10
