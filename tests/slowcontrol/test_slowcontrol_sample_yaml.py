"""The plugin's sample.yaml is valid and lists every parameter's default."""

from __future__ import annotations

from pathlib import Path

import cygno_online.analyzers.slowcontrol as plugin
import yaml

from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.params import Params


def test_sample_yaml_configures_cleanly():
    text = (Path(plugin.__file__).parent / "sample.yaml").read_text()
    (entry,) = yaml.safe_load(text)["analyzers"]
    assert entry["plugin"] == plugin.SlowControlAnalyzer.name
    a = plugin.SlowControlAnalyzer()
    p = Params(entry["params"], "analyzers[0].params")
    a.configure(p, AnalyzerEnv())
    p.finish()
    # every key the analyzer reads is documented in the sample
    assert sorted(p._seen) == sorted(entry["params"])
