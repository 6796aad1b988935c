"""``cygno-online bench camera`` runs on a small shape: the numba chain and
the reference agree (the bench refuses to time a wrong answer) and every row
reports its wall-clock and CPU medians, the full chain also with cold caches
(numbers are reported, never asserted)."""

from __future__ import annotations

import argparse

from cygno_online.bench import camera


def test_bench_camera_small():
    parser = argparse.ArgumentParser()
    camera.add_arguments(parser)
    args = parser.parse_args(
        ["--shape", "256x256", "--frames", "2", "--reference-repeat", "1", "--no-subprocess"]
    )
    report = camera.run(args)
    names = [r.name for r in report.rows]
    assert names[0].startswith("floor") and names[-1] == "full chain"
    assert {"frame pass (+stats, boxes)", "directional (vs numpy)"} <= set(names)
    for row in report.rows:
        assert row.median_ms > 0 and row.extra["cpu ms"] > 0
    full = report.rows[-1]
    assert full.extra["cold cpu ms"] > 0 and full.speedup > 0
    # the frame and per row the packed byte or the 2-byte mean and the cut offset
    n_packed = report.info["floor_packed_rows"]
    assert 0 <= n_packed <= 256
    assert report.info["floor_bytes_per_pixel"] == round(
        2 + (n_packed + 3 * (256 - n_packed)) / 256, 2
    )
    assert "cold caches" in report.info["cpu_ms"]
