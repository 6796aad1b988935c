"""`cygno-online bench pmt` runs and checks its own numbers."""

from __future__ import annotations

import argparse

from cygno_online.bench import pmt


def test_bench_pmt_small():
    parser = argparse.ArgumentParser()
    pmt.add_arguments(parser)
    args = parser.parse_args(["--triggers", "2", "--repeat", "1"])
    report = pmt.run(args)
    names = [r.name for r in report.rows]
    assert names[0].startswith("features image (2 trg") and len(names) == 3
    assert report.rows[0].speedup is not None and report.rows[0].ref_median_ms > 0
    assert float(report.info["max_abs_diff_vs_reference"]) < 1e-9
    assert report.info["peaks_differing_otherwise"] == 0
    assert report.info["peaks_found"] > 0
