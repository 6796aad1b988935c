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
