"""Every shipped plugin's sample.yaml is valid and lists every parameter the
analyzer reads (Telegraf-style: a plugin ships its own sample config)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from cygno_online.analysis.plugin import AnalyzerEnv, discover
from cygno_online.params import Params

PLUGINS = discover()


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_sample_yaml_configures_cleanly_and_documents_every_parameter(name, tmp_path):
    cls = PLUGINS[name]
    sample = Path(sys.modules[cls.__module__].__file__).parent / "sample.yaml"
    (entry,) = yaml.safe_load(sample.read_text())["analyzers"]
    assert entry["plugin"] == name
    analyzer = cls()
    p = Params(entry["params"], "analyzers[0].params")
    analyzer.configure(p, AnalyzerEnv(state_dir=tmp_path))
    p.finish()
    assert sorted(p._seen) == sorted(entry["params"])
