"""The bench command's behaviour around its plain references."""

from __future__ import annotations


def test_bench_without_reference_extra_says_what_to_install(monkeypatch, capsys):
    import argparse

    from cygno_online.commands import bench

    class NeedsScipy:
        @staticmethod
        def run(args):
            raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    args = argparse.Namespace(_bench=NeedsScipy, bench="pmt", json=False)
    assert bench.run(args) == 2
    assert "pip install -e '.[reference]'" in capsys.readouterr().err


def test_harness_cpu_median_is_of_the_same_calls():
    """run_case gives the median CPU time of this thread in the calls it
    times by the wall clock: a call that sleeps costs wall time but almost no
    CPU, so the CPU median is below the wall one (two loops at different
    moments could give any order on a shared machine)."""
    import time

    from cygno_online.bench.harness import Case, run_case

    def sleepy():
        time.sleep(0.002)
        sum(range(1000))

    row = run_case(Case("sleepy", sleepy, repeat=5))
    assert row.runs == 5 and row.cpu_median_ms is not None
    assert 0 < row.cpu_median_ms < row.median_ms and row.median_ms >= 2.0
