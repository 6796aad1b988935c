"""Shipped analyzer plugins (installed as ``cygno_online.analyzers``).

Each sub-package is one self-contained plugin: its kernels, its plain
numpy/scipy reference, its ``sample.yaml`` and an ``ANALYZERS`` list.
"""
