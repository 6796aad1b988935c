"""Analysed simulated events of the shipped configurations, shared by the
alarm and catalogue tests (the analysis is the slow part: once per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import limestream

#: analysed triggers per configuration (cycled in the long streams)
K = {"lime.yaml": 6, "cygno04.yaml": 2, "demo.yaml": 4}
_CACHE: dict[str, limestream.Templates] = {}


def templates(name: str) -> limestream.Templates:
    if name not in _CACHE:
        _CACHE[name] = limestream.analyse(name, K[name])
    return _CACHE[name]


@pytest.fixture(scope="session")
def shipped_templates():
    yield templates
    for tpl in _CACHE.values():
        tpl.chain.close()
