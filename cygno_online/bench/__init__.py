"""Benchmarks: one module per hot path, each exposing ``BENCH`` (its name),
``HELP``, ``add_arguments(parser)`` and ``run(args) -> harness.Report``."""
