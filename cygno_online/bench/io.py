"""``cygno-online bench io``: MIDAS file read+parse throughput against the
physical limit of just reading/decompressing the same file.

The same events (LIME-sized 2304x2304 uint16 camera frames with digitizer
banks, plus slow-control events) are written as plain, gzip and LZ4 files.
For each file, *fast* = iterate :class:`MidasReader` and touch every bank
(the whole read+parse path), *reference* = decompress the file and discard
the bytes. ``overhead_pct`` in each row is how much slower parsing is than
the reference (the design target is below 20 %).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from cygno_online.bench.harness import Case, Report, run_cases

BENCH = "io"
HELP = "MIDAS read+parse throughput (plain/gzip/lz4) vs raw decompression"

SIDE = 2304


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=int, default=20, help="camera events per file (default 20, ~10.6 MB each)"
    )
    parser.add_argument(
        "--dir", metavar="DIR", help="write the test files here and keep them (default: a temp dir)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per case (default 5)")


def _frames(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """A few camera-like frames (pedestal ~100 ADC with Gaussian noise and
    some bright pixels): as compressible as real frames, cheap to make."""
    base = rng.normal(100.0, 3.0, size=(SIDE, SIDE)).astype(np.uint16)
    frames = []
    for i in range(n):
        f = np.roll(base, 17 * i, axis=1)
        hot = rng.integers(0, SIDE * SIDE, size=2000)
        f.reshape(-1)[hot] += rng.integers(50, 2000, size=hot.size, dtype=np.uint16)
        frames.append(f)
    return frames


def write_files(directory: Path, events: int, seed: int = 0) -> dict[str, Path]:
    """The same run as ``bench.mid``, ``bench.mid.gz`` and ``bench.mid.lz4``."""
    from cygno_online.midas.event import BANK16, BANK32, TID_FLOAT, TID_UINT16, TID_UINT32
    from cygno_online.midas.writer import MidasWriter

    rng = np.random.default_rng(seed)
    frames = _frames(rng, min(events, 4))
    odb = {"Configurations": {"Exposure": 0.3}, "Runinfo": {"Run number": 1}}
    paths = {
        c: directory / f"bench.mid{ext}"
        for c, ext in (("plain", ""), ("gzip", ".gz"), ("lz4", ".lz4"))
    }
    writers = [MidasWriter(p) for p in paths.values()]
    try:
        for w in writers:
            w.write_bor(1, odb, 1_700_000_000)
        for i in range(events):
            wave = rng.integers(0, 4096, size=(8, 1024), dtype=np.uint16)
            trig = [
                ("CAM0", TID_UINT16, frames[i % len(frames)]),
                ("DGH0", TID_UINT32, np.arange(53, dtype="<u4")),
                ("DIG0", TID_UINT16, wave),
            ]
            sc = [("INPT", TID_FLOAT, rng.normal(size=24).astype("<f4"))]
            for w in writers:
                w.write(1, i, trig, time_stamp=1_700_000_000 + i, bank_format=BANK32)
                w.write(5, i, sc, time_stamp=1_700_000_000 + i, bank_format=BANK16)
        for w in writers:
            w.write_eor(1, odb, 1_700_000_000 + events)
    finally:
        for w in writers:
            w.close()
    return paths


def read_and_parse(path: Path) -> int:
    """Iterate every event and touch every bank; decompressed bytes read."""
    from cygno_online.midas.reader import MidasReader

    reader = MidasReader(path, resync=False)
    n = 0
    for ev in reader:
        for bank in ev.banks.values():
            n += bank.size
    if reader.problems:
        raise RuntimeError(f"{path}: unexpected problems {reader.problems}")
    return reader.bytes_read


def run(args: argparse.Namespace) -> Report:
    from cygno_online.midas.compression import decompress_all

    events = max(1, int(args.events))
    keep = args.dir is not None
    directory = Path(args.dir) if keep else Path(tempfile.mkdtemp(prefix="cygno-bench-io-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        paths = write_files(directory, events)
        total = read_and_parse(paths["plain"])
        cases = []
        for kind, path in paths.items():
            cases.append(
                Case(
                    name=f"read+parse {kind}",
                    fast=lambda p=path: read_and_parse(p),
                    reference=lambda p=path: decompress_all(p),
                    units=total / 1e6,
                    unit_name="MB",
                    repeat=max(1, int(args.repeat)),
                    warmup=1,
                )
            )
        sizes = {kind: p.stat().st_size for kind, p in paths.items()}
        report = run_cases(
            BENCH,
            cases,
            info={
                "events": f"{events} camera ({SIDE}x{SIDE} uint16) + {events} slow-control + BOR/EOR",
                "decompressed_MB": round(total / 1e6, 1),
                "file_MB": {k: round(v / 1e6, 1) for k, v in sizes.items()},
                "reference": "decompress/read the same file and discard the bytes",
                "files": str(directory) if keep else "temporary (deleted)",
            },
        )
        for row, kind in zip(report.rows, paths, strict=True):
            ref_ms = row.ref_median_ms or 0.0
            row.extra["reference_MB_s"] = round(total / 1e6 / (ref_ms / 1e3), 1) if ref_ms else None
            row.extra["overhead_pct"] = (
                round((row.median_ms / ref_ms - 1.0) * 100.0, 1) if ref_ms else None
            )
            row.extra["compression_ratio"] = round(total / sizes[kind], 2)
        return report
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
